//! HorizontalPodAutoscalers (`autoscaling/v2`, also served as `autoscaling/v1`,
//! see `horizontal_pod_autoscaler_v1`): the number of replicas of a workload with a
//! scale subresource, kept between `minReplicas` and `maxReplicas` so that its
//! pods' CPU or memory use meets a target. The controller is
//! `berth-controllers::hpa`.
//!
//! berth reads resource metrics only (`type: Resource`, cpu and memory, from the
//! agents); the other metric types are refused by name rather than ignored.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::Spec;
use crate::validation::FieldError;
pub use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus, MetricSpec,
    MetricStatus, MetricTarget, MetricValueStatus, ResourceMetricSource, ResourceMetricStatus,
};

pub type HorizontalPodAutoscaler = crate::objects::Resource<HorizontalPodAutoscalerSpec>;

pub(super) const COLUMNS: &[PrinterColumn] = &[
    PrinterColumn::NAME,
    PrinterColumn::new(
        "Reference",
        "string",
        "",
        "The kind and name of the workload the autoscaler scales.",
    ),
    PrinterColumn::new("Targets", "string", "", "The current and target values of each metric."),
    PrinterColumn::new("MinPods", "string", "", "The lower limit of the number of replicas."),
    PrinterColumn::new(
        "MaxPods",
        "integer",
        ".spec.maxReplicas",
        "The upper limit of the number of replicas.",
    ),
    PrinterColumn::new(
        "Replicas",
        "integer",
        ".status.currentReplicas",
        "The number of replicas the autoscaler last saw.",
    ),
    PrinterColumn::AGE,
];

pub static HORIZONTAL_POD_AUTOSCALER: KindDescriptor = KindDescriptor {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    short_names: &["hpa"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &["all"],
    subresources: Subresources {
        status: true,
        scale: false,
    },
    printer_columns: COLUMNS,
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<HorizontalPodAutoscalerSpec>,
    defaults,
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(),
};

impl Spec for HorizontalPodAutoscalerSpec {
    type Status = HorizontalPodAutoscalerStatus;
    const DESCRIPTOR: &'static KindDescriptor = &HORIZONTAL_POD_AUTOSCALER;
}

/// The conditions the controller keeps, and their reasons (Kubernetes' words).
pub const ABLE_TO_SCALE: &str = "AbleToScale";
pub const SCALING_ACTIVE: &str = "ScalingActive";
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// The CPU utilization target when no metric is given (Kubernetes' default).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// `selectPolicy` values.
pub const MAX_CHANGE: &str = "Max";
pub const MIN_CHANGE: &str = "Min";
pub const DISABLED: &str = "Disabled";

/// Kubernetes' scale-up rules when a behavior leaves them out: no stabilization,
/// the larger of doubling and four pods every 15 s.
pub fn default_scale_up() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some(MAX_CHANGE.into()),
        policies: Some(vec![policy("Percent", 100, 15), policy("Pods", 4, 15)]),
        tolerance: None,
    }
}

/// Kubernetes' scale-down rules: the highest recommendation of the last 5 minutes,
/// then down to it at once.
pub fn default_scale_down() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(300),
        select_policy: Some(MAX_CHANGE.into()),
        policies: Some(vec![policy("Percent", 100, 15)]),
        tolerance: None,
    }
}

fn policy(type_: &str, value: i32, period_seconds: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds,
    }
}

/// Rules as given, their left-out fields filled in from `default`.
fn complete(rules: Option<HPAScalingRules>, default: HPAScalingRules) -> HPAScalingRules {
    let Some(rules) = rules else {
        return default;
    };
    HPAScalingRules {
        stabilization_window_seconds: rules
            .stabilization_window_seconds
            .or(default.stabilization_window_seconds),
        select_policy: rules.select_policy.or(default.select_policy),
        policies: rules.policies.or(default.policies),
        tolerance: rules.tolerance,
    }
}

/// Kubernetes' v2 defaults: `minReplicas: 1`, a CPU utilization target of 80 %
/// without metrics, and a given `behavior` completed with the default rules.
pub fn defaults(object: &mut Object) {
    if let Some(hpa) = object.downcast_mut::<HorizontalPodAutoscaler>() {
        set_defaults(&mut hpa.spec);
    }
}

pub fn set_defaults(spec: &mut HorizontalPodAutoscalerSpec) {
    spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        spec.metrics = Some(vec![resource_metric("cpu", DEFAULT_CPU_UTILIZATION)]);
    }
    if let Some(behavior) = spec.behavior.as_mut() {
        behavior.scale_up = Some(complete(behavior.scale_up.take(), default_scale_up()));
        behavior.scale_down = Some(complete(behavior.scale_down.take(), default_scale_down()));
    }
}

/// A `Resource` metric with a utilization target.
pub fn resource_metric(resource: &str, utilization: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(utilization),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(hpa) = object.downcast_ref::<HorizontalPodAutoscaler>() {
        validate_spec(&hpa.spec, errors);
    }
}

/// Kubernetes' rules, and berth's limits (resource metrics of cpu and memory).
pub fn validate_spec(spec: &HorizontalPodAutoscalerSpec, errors: &mut Vec<FieldError>) {
    let mut error = |field: String, message: String| errors.push(FieldError { field, message });
    let target = &spec.scale_target_ref;
    if target.kind.is_empty() {
        error("spec.scaleTargetRef.kind".into(), "Required value".into());
    }
    if target.name.is_empty() {
        error("spec.scaleTargetRef.name".into(), "Required value".into());
    }
    let min = spec.min_replicas.unwrap_or(1);
    if min < 1 {
        error(
            "spec.minReplicas".into(),
            format!("Invalid value: {min}: must be greater than or equal to 1"),
        );
    }
    if spec.max_replicas < 1 {
        error(
            "spec.maxReplicas".into(),
            format!("Invalid value: {}: must be greater than 0", spec.max_replicas),
        );
    } else if spec.max_replicas < min {
        error(
            "spec.maxReplicas".into(),
            format!(
                "Invalid value: {}: must be greater than or equal to `minReplicas`",
                spec.max_replicas
            ),
        );
    }
    for (i, metric) in spec.metrics.iter().flatten().enumerate() {
        let at = format!("spec.metrics[{i}]");
        match metric.type_.as_str() {
            "Resource" => {}
            kind @ ("Pods" | "Object" | "External" | "ContainerResource") => {
                error(
                    format!("{at}.type"),
                    format!(
                        "Unsupported value: {kind:?}: berth serves resource metrics only: supported values: \"Resource\""
                    ),
                );
                continue;
            }
            other => {
                error(
                    format!("{at}.type"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\""
                    ),
                );
                continue;
            }
        }
        for (field, set) in [
            ("pods", metric.pods.is_some()),
            ("object", metric.object.is_some()),
            ("external", metric.external.is_some()),
            ("containerResource", metric.container_resource.is_some()),
        ] {
            if set {
                error(
                    format!("{at}.{field}"),
                    "Forbidden: must populate the given metric source only".into(),
                );
            }
        }
        let Some(resource) = &metric.resource else {
            error(
                format!("{at}.resource"),
                "Required value: must populate information for the given metric source".into(),
            );
            continue;
        };
        if !["cpu", "memory"].contains(&resource.name.as_str()) {
            error(
                format!("{at}.resource.name"),
                format!(
                    "Unsupported value: {:?}: supported values: \"cpu\", \"memory\"",
                    resource.name
                ),
            );
        }
        validate_target(&format!("{at}.resource.target"), &resource.target, &mut error);
    }
    if let Some(behavior) = &spec.behavior {
        for (field, rules) in [
            ("spec.behavior.scaleUp", &behavior.scale_up),
            ("spec.behavior.scaleDown", &behavior.scale_down),
        ] {
            if let Some(rules) = rules {
                validate_rules(field, rules, &mut error);
            }
        }
    }
}

fn validate_target(at: &str, target: &MetricTarget, error: &mut impl FnMut(String, String)) {
    let positive = |q: &Option<crate::objects::Quantity>| {
        q.as_ref().map(|q| {
            crate::quantity::parse_cpu_millis(&q.0).is_ok_and(|m| m > 0)
                || crate::quantity::parse_memory_bytes(&q.0).is_ok_and(|b| b > 0)
        })
    };
    match target.type_.as_str() {
        "Utilization" => match target.average_utilization {
            Some(n) if n > 0 => {}
            Some(n) => error(
                format!("{at}.averageUtilization"),
                format!("Invalid value: {n}: must be greater than 0"),
            ),
            None => error(
                format!("{at}.averageUtilization"),
                "Required value: must set either a target raw value or a target utilization".into(),
            ),
        },
        "AverageValue" => match positive(&target.average_value) {
            Some(true) => {}
            Some(false) => error(
                format!("{at}.averageValue"),
                "Invalid value: must be positive".into(),
            ),
            None => error(
                format!("{at}.averageValue"),
                "Required value: must set either a target raw value or a target utilization".into(),
            ),
        },
        "Value" => error(
            format!("{at}.type"),
            "Unsupported value: \"Value\": a resource metric's target is averaged over pods: supported values: \"AverageValue\", \"Utilization\"".into(),
        ),
        other => error(
            format!("{at}.type"),
            format!("Unsupported value: {other:?}: supported values: \"AverageValue\", \"Utilization\""),
        ),
    }
    if target.type_ != "Utilization" && target.average_utilization.is_some() {
        error(
            format!("{at}.averageUtilization"),
            "Forbidden: may only be set with type Utilization".into(),
        );
    }
}

fn validate_rules(at: &str, rules: &HPAScalingRules, error: &mut impl FnMut(String, String)) {
    if let Some(window) = rules.stabilization_window_seconds
        && !(0..=3600).contains(&window)
    {
        error(
            format!("{at}.stabilizationWindowSeconds"),
            format!("Invalid value: {window}: must be between 0 and 3600 seconds"),
        );
    }
    if rules.tolerance.is_some() {
        error(
            format!("{at}.tolerance"),
            "Forbidden: berth uses Kubernetes' fixed tolerance of 10%".into(),
        );
    }
    match rules.select_policy.as_deref() {
        None | Some(MAX_CHANGE | MIN_CHANGE | DISABLED) => {}
        Some(other) => error(
            format!("{at}.selectPolicy"),
            format!("Unsupported value: {other:?}: supported values: \"Disabled\", \"Max\", \"Min\""),
        ),
    }
    let policies = rules.policies.as_deref().unwrap_or_default();
    if rules.policies.is_some() && policies.is_empty() {
        error(
            format!("{at}.policies"),
            "Required value: must specify at least one Policy".into(),
        );
    }
    for (i, policy) in policies.iter().enumerate() {
        let at = format!("{at}.policies[{i}]");
        if !["Pods", "Percent"].contains(&policy.type_.as_str()) {
            error(
                format!("{at}.type"),
                format!(
                    "Unsupported value: {:?}: supported values: \"Percent\", \"Pods\"",
                    policy.type_
                ),
            );
        }
        if policy.value <= 0 {
            error(
                format!("{at}.value"),
                format!("Invalid value: {}: must be greater than zero", policy.value),
            );
        }
        if !(1..=1800).contains(&policy.period_seconds) {
            error(
                format!("{at}.periodSeconds"),
                format!(
                    "Invalid value: {}: must be greater than zero and less than or equal to 1800",
                    policy.period_seconds
                ),
            );
        }
    }
}

/// `cpu: 42%/50%`, as `kubectl get hpa` prints each metric: the current value (or
/// `<unknown>`) over the target; more than two read `..., + N more...`.
pub fn targets(spec: &HorizontalPodAutoscalerSpec, status: &HorizontalPodAutoscalerStatus) -> String {
    let metrics = spec.metrics.as_deref().unwrap_or_default();
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current = status.current_metrics.as_deref().unwrap_or_default();
    let mut shown: Vec<String> = Vec::new();
    for metric in metrics.iter().take(2) {
        let Some(resource) = &metric.resource else {
            shown.push(format!("<{}>", metric.type_));
            continue;
        };
        let now = current
            .iter()
            .filter_map(|c| c.resource.as_ref())
            .find(|c| c.name == resource.name)
            .map(|c| &c.current);
        let (now, target) = match resource.target.type_.as_str() {
            "Utilization" => (
                now.and_then(|c| c.average_utilization).map(|u| format!("{u}%")),
                format!("{}%", resource.target.average_utilization.unwrap_or_default()),
            ),
            _ => (
                now.and_then(|c| c.average_value.as_ref()).map(|q| q.0.clone()),
                resource
                    .target
                    .average_value
                    .as_ref()
                    .map(|q| q.0.clone())
                    .unwrap_or_default(),
            ),
        };
        shown.push(format!(
            "{}: {}/{target}",
            resource.name,
            now.unwrap_or_else(|| "<unknown>".into())
        ));
    }
    let mut text = shown.join(", ");
    if metrics.len() > 2 {
        text.push_str(&format!(" + {} more...", metrics.len() - 2));
    }
    text
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(hpa) = object.downcast_ref::<HorizontalPodAutoscaler>() else {
        return vec![Value::Null; COLUMNS.len()];
    };
    let reference = format!("{}/{}", hpa.spec.scale_target_ref.kind, hpa.spec.scale_target_ref.name);
    let min = hpa.spec.min_replicas.map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        cells::name(object),
        reference.into(),
        targets(&hpa.spec, &hpa.status).into(),
        min.into(),
        hpa.spec.max_replicas.into(),
        hpa.status.current_replicas.unwrap_or(0).into(),
        cells::age(object, now),
    ]
}

#[cfg(test)]
#[path = "horizontal_pod_autoscaler_tests.rs"]
mod tests;
