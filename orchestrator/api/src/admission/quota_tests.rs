use serde_json::json;

use super::*;
use crate::kinds::Object;

fn object(value: serde_json::Value) -> Object {
    Object::from_value(value).unwrap()
}

fn pod(resources: serde_json::Value) -> Object {
    object(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "dev"},
        "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}}),
    )
}

fn quota(hard: serde_json::Value, used: serde_json::Value) -> ResourceQuota {
    serde_json::from_value(json!({"metadata": {"name": "q", "namespace": "dev"},
        "spec": {"hard": hard}, "status": {"hard": hard, "used": used}}))
    .unwrap()
}

#[test]
fn pods_count_their_compute_until_they_end() {
    let p = pod(json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "128Mi"}}));
    let usage = usage(&p);
    let text: Vec<String> = usage
        .iter()
        .map(|(k, v)| format!("{k}={}", amount::format(k, *v)))
        .collect();
    assert_eq!(
        text,
        [
            "count/pods=1",
            "cpu=250m",
            "limits.cpu=500m",
            "limits.memory=128Mi",
            "memory=128Mi",
            "pods=1",
            "requests.cpu=250m",
            "requests.memory=128Mi"
        ]
    );
    let mut ended = p.clone();
    ended.downcast_mut::<Pod>().unwrap().status.phase = Some("Succeeded".into());
    assert_eq!(super::usage(&ended).keys().collect::<Vec<_>>(), ["count/pods"]);
}

#[test]
fn services_claims_and_other_kinds_are_counted() {
    let service = object(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "dev"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}),
    );
    let usage_of = |o: &Object| usage(o).into_iter().map(|(k, v)| (k, v / 1000)).collect::<Vec<_>>();
    assert_eq!(
        usage_of(&service),
        [
            ("count/services".into(), 1),
            ("services".into(), 1),
            ("services.nodeports".into(), 2)
        ]
    );
    let claim = object(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c", "namespace": "dev"},
        "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}));
    let claimed = usage(&claim);
    assert_eq!(claimed["requests.storage"], (1i128 << 30) * 1000);
    assert_eq!(claimed["fast.storageclass.storage.k8s.io/persistentvolumeclaims"], 1000);
    let config =
        object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "dev"}}));
    assert_eq!(
        usage_of(&config),
        [("configmaps".into(), 1), ("count/configmaps".into(), 1)]
    );
}

#[test]
fn a_charge_past_the_hard_limit_is_refused_with_kubernetes_message() {
    let p = pod(json!({}));
    let full = quota(json!({"pods": "2"}), json!({"pods": "2"}));
    assert_eq!(
        charge(&full, &p, &usage(&p)).unwrap_err(),
        "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    let room = quota(
        json!({"pods": "2", "secrets": "1"}),
        json!({"pods": "1", "secrets": "1"}),
    );
    let used = charge(&room, &p, &usage(&p)).unwrap().unwrap();
    assert_eq!(used["pods"], 2000);
    assert_eq!(used["secrets"], 1000, "what the pod does not use stays");
    let other = quota(json!({"secrets": "0"}), json!({"secrets": "0"}));
    assert_eq!(
        charge(&other, &p, &usage(&p)),
        Ok(None),
        "a quota of other resources does not count pods"
    );
}

#[test]
fn compute_quota_needs_each_container_to_name_the_resource() {
    let q = quota(
        json!({"limits.cpu": "2", "requests.memory": "1Gi"}),
        json!({"limits.cpu": "0", "requests.memory": "0"}),
    );
    let bare = pod(json!({}));
    assert_eq!(
        charge(&q, &bare, &usage(&bare)).unwrap_err(),
        "failed quota: q: must specify limits.cpu for: c; requests.memory for: c"
    );
    let limited = pod(json!({"limits": {"cpu": "1", "memory": "512Mi"}}));
    let used = charge(&q, &limited, &usage(&limited)).unwrap().unwrap();
    assert_eq!(
        used["requests.memory"],
        (512i128 << 20) * 1000,
        "the limit stands for the request"
    );
    let big = pod(json!({"limits": {"cpu": "3", "memory": "512Mi"}}));
    assert_eq!(
        charge(&q, &big, &usage(&big)).unwrap_err(),
        "exceeded quota: q, requested: limits.cpu=3, used: limits.cpu=0, limited: limits.cpu=2"
    );
}

#[test]
fn a_quota_its_controller_has_not_seen_does_not_refuse_and_unknown_usage_does() {
    let p = pod(json!({}));
    let unseen: ResourceQuota =
        serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}})).unwrap();
    assert_eq!(charge(&unseen, &p, &usage(&p)), Ok(None));
    let unknown = quota(json!({"pods": "1"}), json!({}));
    assert_eq!(
        charge(&unknown, &p, &usage(&p)).unwrap_err(),
        "status unknown for quota: q, resources: pods"
    );
}

#[test]
fn the_status_sums_every_object_for_each_hard_resource() {
    let spec: ResourceQuotaSpec = serde_json::from_value(json!({"hard": {"pods": "5", "requests.cpu": "2"}})).unwrap();
    let mut ended = pod(json!({"requests": {"cpu": "1"}}));
    ended.downcast_mut::<Pod>().unwrap().status.phase = Some("Failed".into());
    let objects = [
        pod(json!({"requests": {"cpu": "250m"}})),
        pod(json!({"requests": {"cpu": "500m"}})),
        ended,
    ];
    let status = status_of(&spec, &objects);
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({"hard": {"pods": "5", "requests.cpu": "2"}, "used": {"pods": "2", "requests.cpu": "750m"}})
    );
}
