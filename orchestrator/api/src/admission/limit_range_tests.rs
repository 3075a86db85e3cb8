use serde_json::json;

use super::*;

fn ranges(limits: serde_json::Value) -> Vec<LimitRange> {
    vec![serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"limits": limits}})).unwrap()]
}

fn pod(containers: serde_json::Value) -> PodSpec {
    serde_json::from_value(json!({"containers": containers})).unwrap()
}

#[test]
fn missing_requests_and_limits_get_the_defaults_and_a_limit_stands_for_its_request() {
    let ranges = ranges(json!([{"type": "Container",
        "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
    let mut spec = pod(json!([
        {"name": "bare", "image": "i"},
        {"name": "limited", "image": "i", "resources": {"limits": {"cpu": "200m"}}},
        {"name": "asked", "image": "i", "resources": {"requests": {"memory": "64Mi"}}}
    ]));
    assert!(apply_defaults(&ranges, &mut spec));
    let resources: Vec<serde_json::Value> = spec
        .containers
        .iter()
        .map(|c| serde_json::to_value(&c.resources).unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}),
            json!({"limits": {"cpu": "200m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}}),
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}}),
        ]
    );
    assert!(!apply_defaults(&ranges, &mut spec), "a second pass changes nothing");
}

#[test]
fn bounds_are_refused_with_kubernetes_messages() {
    let ranges = ranges(json!([
        {"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "2"}},
        {"type": "Pod", "max": {"cpu": "1"}}
    ]));
    let spec = pod(json!([
        {"name": "a", "image": "i", "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "500m", "memory": "2Gi"}}},
        {"name": "b", "image": "i", "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "600m", "memory": "1Gi"}}}
    ]));
    assert_eq!(
        pod_errors(&ranges, &spec),
        [
            "minimum cpu usage per Container is 100m, but request is 50m",
            "maximum memory usage per Container is 1Gi, but limit is 2Gi",
            "cpu max limit to request ratio per Container is 2, but provided ratio is 10.000000",
            "maximum cpu usage per Pod is 1, but limit is 1100m",
        ]
    );
    let bare = pod(json!([{"name": "c", "image": "i"}]));
    assert_eq!(
        aggregate(&pod_errors(&ranges, &bare)).unwrap(),
        "[minimum cpu usage per Container is 100m.  No request is specified, \
         maximum memory usage per Container is 1Gi.  No limit is specified, \
         cpu max limit to request ratio per Container is 2, but no request is specified or request is 0, \
         maximum cpu usage per Pod is 1.  No limit is specified]"
    );
}

#[test]
fn claims_are_held_to_their_storage_bounds() {
    let ranges =
        ranges(json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]));
    let claim = |size: &str| -> PersistentVolumeClaimSpec {
        serde_json::from_value(json!({"resources": {"requests": {"storage": size}}})).unwrap()
    };
    assert!(claim_errors(&ranges, &claim("5Gi")).is_empty());
    assert_eq!(
        claim_errors(&ranges, &claim("20Gi")),
        ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
    );
    assert_eq!(
        claim_errors(&ranges, &claim("500Mi")),
        ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
    );
}

#[test]
fn a_pod_totals_its_containers_or_its_largest_init_container() {
    let spec: PodSpec = serde_json::from_value(json!({
        "initContainers": [{"name": "init", "image": "i", "resources": {"requests": {"cpu": "2"}}}],
        "containers": [
            {"name": "a", "image": "i", "resources": {"requests": {"cpu": "500m"}}},
            {"name": "b", "image": "i", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}
        ]
    }))
    .unwrap();
    let totals = pod_totals(&spec, false);
    assert_eq!(totals["cpu"], 2000);
    assert_eq!(totals["memory"], (1i128 << 30) * 1000);
}
