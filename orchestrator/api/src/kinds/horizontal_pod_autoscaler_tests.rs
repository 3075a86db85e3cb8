use serde_json::json;

use super::*;

fn decode(value: serde_json::Value) -> HorizontalPodAutoscaler {
    let mut object = (HORIZONTAL_POD_AUTOSCALER.decode)(&value).unwrap();
    (HORIZONTAL_POD_AUTOSCALER.defaults)(&mut object);
    object.downcast_ref::<HorizontalPodAutoscaler>().unwrap().clone()
}

fn errors(spec: serde_json::Value) -> Vec<String> {
    let hpa = decode(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                            "metadata": {"name": "web"}, "spec": spec}),
    );
    let mut errors = Vec::new();
    validate_spec(&hpa.spec, &mut errors);
    errors
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect()
}

fn target() -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
}

#[test]
fn defaults_are_kubernetes_v2_defaults() {
    let hpa = decode(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": target(), "maxReplicas": 4,
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}}}),
    );
    assert_eq!(hpa.spec.min_replicas, Some(1));
    assert_eq!(hpa.spec.metrics, Some(vec![resource_metric("cpu", 80)]));
    let behavior = hpa.spec.behavior.unwrap();
    assert_eq!(behavior.scale_up, Some(default_scale_up()));
    let down = behavior.scale_down.unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(10), "what was given stays");
    assert_eq!(down.policies, default_scale_down().policies);
    assert_eq!(down.select_policy.as_deref(), Some("Max"));
}

#[test]
fn a_well_formed_autoscaler_passes() {
    let spec = json!({"scaleTargetRef": target(), "minReplicas": 1, "maxReplicas": 5,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}}
        ],
        "behavior": {"scaleUp": {"selectPolicy": "Disabled"},
                     "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}});
    assert_eq!(errors(spec), Vec::<String>::new());
}

#[test]
fn replicas_and_the_target_are_checked() {
    assert_eq!(
        errors(json!({"scaleTargetRef": {"kind": "", "name": ""}, "minReplicas": 0, "maxReplicas": 0})),
        [
            "spec.scaleTargetRef.kind: Required value",
            "spec.scaleTargetRef.name: Required value",
            "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
            "spec.maxReplicas: Invalid value: 0: must be greater than 0",
        ]
    );
    assert_eq!(
        errors(json!({"scaleTargetRef": target(), "minReplicas": 3, "maxReplicas": 2})),
        ["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
    );
}

#[test]
fn metrics_other_than_resource_ones_are_refused_by_name() {
    for kind in ["Pods", "Object", "External", "ContainerResource"] {
        let found = errors(json!({"scaleTargetRef": target(), "maxReplicas": 2, "metrics": [{"type": kind}]}));
        assert_eq!(found.len(), 1, "{kind}: {found:?}");
        assert!(
            found[0].starts_with(&format!("spec.metrics[0].type: Unsupported value: \"{kind}\"")),
            "{found:?}"
        );
    }
    let found = errors(json!({"scaleTargetRef": target(), "maxReplicas": 2, "metrics": [
        {"type": "Resource", "resource": {"name": "ephemeral-storage", "target": {"type": "Utilization", "averageUtilization": 5}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Value", "value": "1"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue"}}},
        {"type": "Resource"}
    ]}));
    assert_eq!(
        found,
        [
            "spec.metrics[0].resource.name: Unsupported value: \"ephemeral-storage\": supported values: \"cpu\", \"memory\"",
            "spec.metrics[1].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
            "spec.metrics[2].resource.target.type: Unsupported value: \"Value\": a resource metric's target is averaged over pods: supported values: \"AverageValue\", \"Utilization\"",
            "spec.metrics[3].resource.target.averageValue: Required value: must set either a target raw value or a target utilization",
            "spec.metrics[4].resource: Required value: must populate information for the given metric source",
        ]
    );
}

#[test]
fn behavior_rules_are_checked() {
    let found = errors(json!({"scaleTargetRef": target(), "maxReplicas": 2, "behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 4000, "selectPolicy": "Most", "tolerance": "0.05"},
        "scaleDown": {"policies": [{"type": "Replicas", "value": 0, "periodSeconds": 0}]}
    }}));
    assert_eq!(
        found,
        [
            "spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: 4000: must be between 0 and 3600 seconds",
            "spec.behavior.scaleUp.tolerance: Forbidden: berth uses Kubernetes' fixed tolerance of 10%",
            "spec.behavior.scaleUp.selectPolicy: Unsupported value: \"Most\": supported values: \"Disabled\", \"Max\", \"Min\"",
            "spec.behavior.scaleDown.policies[0].type: Unsupported value: \"Replicas\": supported values: \"Percent\", \"Pods\"",
            "spec.behavior.scaleDown.policies[0].value: Invalid value: 0: must be greater than zero",
            "spec.behavior.scaleDown.policies[0].periodSeconds: Invalid value: 0: must be greater than zero and less than or equal to 1800",
        ]
    );
}

#[test]
fn targets_read_as_kubectl_prints_them() {
    let hpa = decode(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": target(), "maxReplicas": 4, "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}}
        ]},
        "status": {"desiredReplicas": 1, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 42, "averageValue": "42m"}}}
        ]}}),
    );
    assert_eq!(targets(&hpa.spec, &hpa.status), "cpu: 42%/50%, memory: <unknown>/64Mi");
}
