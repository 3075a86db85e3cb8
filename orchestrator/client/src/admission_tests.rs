use serde_json::json;

use super::*;
use berth_api::objects::Resource;

fn pod(name: &str, value: serde_json::Value) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "dev"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    }))
    .unwrap();
    if let Some(spec) = value.get("spec") {
        pod.spec = serde_json::from_value(spec.clone()).unwrap();
    }
    Resource::new(pod.metadata, pod.spec)
}

async fn put(kv: &Kv, key: &str, value: serde_json::Value) {
    kv.put(key, serde_json::to_vec(&value).unwrap(), 0).await.unwrap();
}

/// A quota with its controller's status: `hard` as the spec, nothing used.
async fn quota(kv: &Kv, hard: serde_json::Value) {
    let used: serde_json::Map<String, serde_json::Value> = hard
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), json!("0")))
        .collect();
    put(
        kv,
        "/registry/resourcequotas/dev/q",
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "dev"},
               "spec": {"hard": hard}, "status": {"hard": hard, "used": used}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_racing_for_the_last_slot_of_a_quota_cannot_both_pass() {
    let t = crate::testing::store().await;
    quota(&t.kv, json!({"pods": "1"})).await;
    let admission = Admission::default();
    let (first, second) = (pod("a", json!({})), pod("b", json!({})));
    let (a, b) = tokio::join!(
        admission.create_pod(&t.kv, &first, None),
        admission.create_pod(&t.kv, &second, None)
    );
    let refused: Vec<&Refusal> = [&a, &b].into_iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        refused,
        [&Refusal::Forbidden(
            "exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1".into()
        )],
        "{a:?} {b:?}"
    );
    let stored = Registry::new(t.kv.clone())
        .get::<ResourceQuotaSpec>("dev", "q")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::to_value(&stored.status.used).unwrap(), json!({"pods": "1"}));
    let (pods, _) = Registry::new(t.kv.clone())
        .list::<berth_api::objects::PodSpec>(Some("dev"))
        .await
        .unwrap();
    assert_eq!(pods.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_labels_ranges_and_the_default_level_decide_a_pod() {
    let t = crate::testing::store().await;
    let privileged = pod(
        "p",
        json!({"spec": {"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": true}}]}}),
    );
    put(
        &t.kv,
        "/registry/namespaces/dev",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}),
    )
    .await;
    let refused = Admission::default()
        .create_pod(&t.kv, &privileged, None)
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        Refusal::Forbidden(
            "violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set \
             securityContext.privileged=true)"
                .into()
        )
    );
    let open = Admission {
        pod_security_default: Level::Privileged,
        ..Default::default()
    };
    assert!(open.create_pod(&t.kv, &privileged, None).await.is_ok());
    put(
        &t.kv,
        "/registry/limitranges/dev/l",
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "dev"},
               "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}, "default": {"cpu": "1"}}]}}),
    )
    .await;
    let mut plain = pod("q", json!({}));
    plain.status.qos_class = Some("BestEffort".into());
    let created = Admission::default().create_pod(&t.kv, &plain, None).await.unwrap();
    assert_eq!(
        serde_json::to_value(&created.spec.containers[0].resources).unwrap(),
        json!({"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}})
    );
    assert_eq!(created.status.qos_class.as_deref(), Some("Burstable"));
    let big = pod(
        "r",
        json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "2"}}}]}}),
    );
    assert_eq!(
        Admission::default().create_pod(&t.kv, &big, None).await.unwrap_err(),
        Refusal::Forbidden("maximum cpu usage per Container is 1, but limit is 2".into())
    );
}

/// The controllers' path admits a pod's ServiceAccount as the API server's does:
/// a missing account refuses it with Kubernetes' words, an existing one lends it
/// its pull secrets, and the token volume comes only where tokens are mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_as_an_account_that_exists() {
    let t = crate::testing::store().await;
    let admission = Admission {
        service_accounts: true,
        ..Default::default()
    };
    let refused = admission
        .create_pod(&t.kv, &pod("a", json!({})), None)
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        Refusal::Forbidden("error looking up service account dev/default: serviceaccount \"default\" not found".into())
    );
    put(
        &t.kv,
        "/registry/serviceaccounts/dev/default",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "dev"},
               "imagePullSecrets": [{"name": "reg"}]}),
    )
    .await;
    let created = admission.create_pod(&t.kv, &pod("a", json!({})), None).await.unwrap();
    assert_eq!(created.spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(created.spec.image_pull_secrets.unwrap()[0].name, "reg");
    assert!(created.spec.volumes.is_none(), "tokens are not mounted unless asked");
    let mounting = Admission {
        mount_service_account_tokens: true,
        ..admission
    };
    let created = mounting.create_pod(&t.kv, &pod("b", json!({})), None).await.unwrap();
    let volume = &created.spec.volumes.unwrap()[0];
    assert!(
        volume.name.starts_with("kube-api-access-") && volume.name.len() == 21,
        "{}",
        volume.name
    );
}

/// A batch's creates share their serializable reads: what the first read is what
/// the batch admits by (a LimitRange changed meanwhile is seen by the next batch
/// only), and a quota still admits no more than its room, the store's compare
/// catching the charges made from one shared read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_creates_reads_once_and_still_keeps_to_its_quota() {
    use crate::admission_reads::SharedReads;
    let t = crate::testing::store().await;
    let range = |cpu: &str| {
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "dev"},
               "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": cpu}}]}})
    };
    put(&t.kv, "/registry/limitranges/dev/l", range("100m")).await;
    quota(&t.kv, json!({"pods": "4"})).await;
    let admission = Admission::default();
    let requested = |pod: &Pod| {
        let resources = pod.spec.containers[0].resources.as_ref().unwrap();
        resources.requests.as_ref().unwrap()["cpu"].0.clone()
    };

    let batch = SharedReads::default();
    let (a, b) = (pod("a", json!({})), pod("b", json!({})));
    let first = admission
        .create_pod_sharing(&t.kv, &a, None, Some(&batch))
        .await
        .unwrap();
    assert_eq!(requested(&first), "100m");
    put(&t.kv, "/registry/limitranges/dev/l", range("200m")).await;
    let same = admission
        .create_pod_sharing(&t.kv, &b, None, Some(&batch))
        .await
        .unwrap();
    assert_eq!(requested(&same), "100m", "read once for the batch");
    let direct = admission.create_pod(&t.kv, &pod("c", json!({})), None).await.unwrap();
    assert_eq!(requested(&direct), "200m", "a create alone reads the store");

    // The quota has room for one more; a batch of three reads it once, together,
    // and all three charge it from that read: one write wins, the others are
    // charged again from the store and refused.
    let next = SharedReads::default();
    let pods: Vec<Pod> = ["d", "e", "f"].iter().map(|n| pod(n, json!({}))).collect();
    let creates = (pods.iter()).map(|p| admission.create_pod_sharing(&t.kv, p, None, Some(&next)));
    let outcomes = futures::future::join_all(creates).await;
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(Refusal::Forbidden(_))))
        .count();
    assert_eq!(refused, 2, "{outcomes:?}");
    let (stored, _) = Registry::new(t.kv.clone())
        .list::<berth_api::objects::PodSpec>(Some("dev"))
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
}
