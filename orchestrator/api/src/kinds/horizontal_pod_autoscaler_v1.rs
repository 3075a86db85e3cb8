//! `autoscaling/v1` HorizontalPodAutoscalers: the same objects as `autoscaling/v2`
//! (stored in that form), seen through v1's fields, as Kubernetes serves both.
//!
//! ```text
//! v2 spec.metrics: cpu Utilization N   ◄──► v1 spec.targetCPUUtilizationPercentage N
//!        any other metric, behavior    ◄──► annotations autoscaling.alpha.kubernetes.io/
//!                                           metrics, behavior (JSON), as Kubernetes keeps them
//! v2 status.currentMetrics: cpu        ◄──► v1 status.currentCPUUtilizationPercentage
//!        other current metrics, conditions ◄──► annotations .../current-metrics, conditions
//! ```
//!
//! So a v1 client that reads, changes `maxReplicas` and writes back loses nothing a
//! v2 client set.

use serde_json::{Map, Value, json};

use super::horizontal_pod_autoscaler::{COLUMNS, HORIZONTAL_POD_AUTOSCALER};
use super::{Conversion, KindDescriptor, Object};

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

pub static HORIZONTAL_POD_AUTOSCALER_V1: KindDescriptor = KindDescriptor {
    version: "v1",
    // A served object is read by converting it to the stored form first.
    decode: |value| {
        Object::decode::<super::horizontal_pod_autoscaler::HorizontalPodAutoscalerSpec>(&to_v2(value.clone()))
    },
    conversion: Some(Conversion {
        from_storage: to_v1,
        to_storage: to_v2,
    }),
    schema: |generator| generator.subschema_for::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(),
    printer_columns: COLUMNS,
    ..HORIZONTAL_POD_AUTOSCALER
};

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric.pointer("/resource/name") == Some(&json!("cpu"))
        && metric.pointer("/resource/target/type") == Some(&json!("Utilization"))
}

fn is_cpu_current(metric: &Value) -> bool {
    metric["type"] == "Resource" && metric.pointer("/resource/name") == Some(&json!("cpu"))
}

fn take(object: &mut Map<String, Value>, field: &str) -> Map<String, Value> {
    match object.remove(field) {
        Some(Value::Object(fields)) => fields,
        _ => Map::new(),
    }
}

fn annotations(object: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let metadata = object.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    let annotations = metadata
        .as_object_mut()
        .expect("an object")
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations.as_object_mut().expect("an object")
}

fn annotate(object: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    let Some(value) = value.filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())) else {
        return;
    };
    annotations(object).insert(key.into(), Value::String(value.to_string()));
}

/// Removes an annotation and reads its JSON (an unreadable one is dropped).
fn unannotate(object: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let text = annotations(object).remove(key)?;
    serde_json::from_str(text.as_str()?).ok()
}

/// Drops an `annotations: {}` left empty by the conversion.
fn tidy(object: &mut Map<String, Value>) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && metadata
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        metadata.remove("annotations");
    }
}

/// The stored (v2) form as v1 shows it.
pub fn to_v1(value: Value) -> Value {
    let Value::Object(mut object) = value else {
        return value;
    };
    object.insert("apiVersion".into(), "autoscaling/v1".into());
    let mut spec = take(&mut object, "spec");
    let mut v1_spec = Map::new();
    for field in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.remove(field) {
            v1_spec.insert(field.into(), v);
        }
    }
    let metrics = match spec.remove("metrics") {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    let (cpu, others): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    if let Some(target) = cpu
        .first()
        .and_then(|m| m.pointer("/resource/target/averageUtilization"))
    {
        v1_spec.insert("targetCPUUtilizationPercentage".into(), target.clone());
    }
    annotate(&mut object, METRICS, Some(Value::Array(others)));
    annotate(&mut object, BEHAVIOR, spec.remove("behavior"));
    object.insert("spec".into(), Value::Object(v1_spec));

    let mut status = take(&mut object, "status");
    let mut v1_status = Map::new();
    for field in [
        "observedGeneration",
        "lastScaleTime",
        "currentReplicas",
        "desiredReplicas",
    ] {
        if let Some(v) = status.remove(field) {
            v1_status.insert(field.into(), v);
        }
    }
    v1_status.entry("currentReplicas").or_insert(0.into());
    v1_status.entry("desiredReplicas").or_insert(0.into());
    let current = match status.remove("currentMetrics") {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    let (cpu, others): (Vec<Value>, Vec<Value>) = current.into_iter().partition(is_cpu_current);
    if let Some(now) = cpu
        .first()
        .and_then(|m| m.pointer("/resource/current/averageUtilization"))
    {
        v1_status.insert("currentCPUUtilizationPercentage".into(), now.clone());
    }
    annotate(&mut object, CURRENT_METRICS, Some(Value::Array(others)));
    annotate(&mut object, CONDITIONS, status.remove("conditions"));
    object.insert("status".into(), Value::Object(v1_status));
    tidy(&mut object);
    Value::Object(object)
}

/// A v1 object in the stored (v2) form.
pub fn to_v2(value: Value) -> Value {
    let Value::Object(mut object) = value else {
        return value;
    };
    object.insert("apiVersion".into(), "autoscaling/v2".into());
    let mut spec = take(&mut object, "spec");
    let mut metrics = match unannotate(&mut object, METRICS) {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
        metrics.insert(
            0,
            json!({"type": "Resource", "resource": {"name": "cpu",
                   "target": {"type": "Utilization", "averageUtilization": target}}}),
        );
    }
    if !metrics.is_empty() {
        spec.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(behavior) = unannotate(&mut object, BEHAVIOR) {
        spec.insert("behavior".into(), behavior);
    }
    object.insert("spec".into(), Value::Object(spec));

    let mut status = take(&mut object, "status");
    let mut current = match unannotate(&mut object, CURRENT_METRICS) {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    if let Some(now) = status.remove("currentCPUUtilizationPercentage") {
        current.insert(
            0,
            json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": now}}}),
        );
    }
    if !current.is_empty() {
        status.insert("currentMetrics".into(), Value::Array(current));
    }
    if let Some(conditions) = unannotate(&mut object, CONDITIONS) {
        status.insert("conditions".into(), conditions);
    }
    object.insert("status".into(), Value::Object(status));
    tidy(&mut object);
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_object_reads_the_same_after_a_trip_through_v1() {
        let v2 = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70, "averageValue": "70m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}]
            }
        });
        let v1 = to_v1(v2.clone());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(
            v1["spec"],
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                   "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50})
        );
        assert_eq!(
            v1["status"],
            json!({"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 70})
        );
        let annotations = v1["metadata"]["annotations"].as_object().unwrap();
        assert!(annotations[METRICS].as_str().unwrap().contains("100Mi"));
        assert!(annotations[CONDITIONS].as_str().unwrap().contains("AbleToScale"));
        assert_eq!(annotations["team"], "a");
        let back = to_v2(v1);
        assert_eq!(back["spec"], v2["spec"]);
        assert_eq!(back["metadata"], v2["metadata"]);
        assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
        assert_eq!(
            back["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            70
        );
    }

    #[test]
    fn kubectl_autoscale_in_v1_reads_as_a_cpu_target() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
        let v2 = to_v2(v1);
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}])
        );
        assert_eq!(v2["metadata"], json!({"name": "web"}));
        let decoded = (HORIZONTAL_POD_AUTOSCALER_V1.decode)(&to_v1(v2)).unwrap();
        assert_eq!(decoded.to_value()["spec"]["maxReplicas"], 5);
    }
}
