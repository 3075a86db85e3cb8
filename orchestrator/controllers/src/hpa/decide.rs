//! One autoscaler's pass (pure): from its target's scale and its pods' samples to
//! the replicas to set, the status and the Events, as Kubernetes'
//! `reconcileAutoscaler` decides them.
//!
//! ```text
//! target's replicas 0 (and minReplicas > 0) ─► scaling disabled, nothing set
//! replicas above max / below min            ─► max / min
//! else each metric's proposal (replicas.rs), the largest wins; a metric that
//!   cannot be computed: ScalingActive False, unless others can (then no scale-down)
//!   ─► behavior.rs (stabilization, rate limits, min/max)
//! a change ─► SuccessfulRescale "New size: N; reason: <metric> above target"
//! ```

use std::time::SystemTime;

use berth_api::conditions::set_condition;
use berth_api::kinds::horizontal_pod_autoscaler::{
    ABLE_TO_SCALE, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricStatus, MetricValueStatus, ResourceMetricStatus, SCALING_ACTIVE, SCALING_LIMITED,
};
use berth_api::objects::Quantity;
use berth_api::time::from_system_time;
use berth_client::events::EventType;

use super::behavior::{self, Memory};
use super::replicas::{PodSample, Target, proposal};

/// The pods' samples for each resource a metric names.
pub trait Samples {
    fn of(&self, resource: &str) -> Vec<PodSample>;
}

/// What the pass decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The replicas to set on the target, when they change.
    pub rescale: Option<i32>,
    pub status: HorizontalPodAutoscalerStatus,
    pub events: Vec<(EventType, &'static str, String)>,
}

fn condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    is_true: bool,
    reason: &str,
    message: &str,
    now: SystemTime,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let new = <HorizontalPodAutoscalerCondition as berth_api::conditions::Condition>::new(
        type_,
        if is_true { "True" } else { "False" },
        reason,
        message,
    );
    set_condition(conditions, new, &from_system_time(now));
}

/// How a metric is named in messages (Kubernetes' words).
fn metric_name(resource: &str, target: Target) -> String {
    match target {
        Target::Utilization(_) => format!("{resource} resource utilization (percentage of request)"),
        Target::AverageValue(_) => format!("{resource} resource"),
    }
}

fn quantity(resource: &str, value: i64) -> Quantity {
    let value = value.max(0) as u64;
    Quantity(if resource == "cpu" {
        berth_api::quantity::format_cpu_millis(value)
    } else {
        berth_api::metrics::format_memory(value)
    })
}

/// The metrics' targets: (resource, target); an unreadable AverageValue is an error.
fn targets(hpa: &HorizontalPodAutoscaler) -> Vec<(String, Result<Target, String>)> {
    hpa.spec
        .metrics
        .iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .map(|r| {
            let target = match (
                r.target.type_.as_str(),
                r.target.average_utilization,
                &r.target.average_value,
            ) {
                ("Utilization", Some(percent), _) => Ok(Target::Utilization(percent)),
                ("AverageValue", _, Some(value)) => {
                    let parsed = if r.name == "cpu" {
                        berth_api::quantity::parse_cpu_millis(&value.0).map_err(|e| e.to_string())
                    } else {
                        berth_api::quantity::parse_memory_bytes(&value.0).map_err(|e| e.to_string())
                    };
                    parsed.map(|v| Target::AverageValue(v as i64))
                }
                _ => Err(format!("the {} target is incomplete", r.name)),
            };
            (r.name.clone(), target)
        })
        .collect()
}

/// Decides one pass of `hpa`. `scale`: the target's replicas, or why they cannot be
/// read.
pub fn decide(
    hpa: &HorizontalPodAutoscaler,
    scale: Result<i32, String>,
    samples: &dyn Samples,
    memory: &mut Memory,
    now: SystemTime,
) -> Decision {
    let mut status = hpa.status.clone();
    status.observed_generation = hpa.metadata.generation;
    let mut events = Vec::new();
    let current = match scale {
        Ok(replicas) => replicas,
        Err(why) => {
            let message = format!("the HPA controller was unable to get the target's current scale: {why}");
            condition(&mut status, ABLE_TO_SCALE, false, "FailedGetScale", &message, now);
            events.push((EventType::Warning, "FailedGetScale", why));
            return Decision {
                rescale: None,
                status,
                events,
            };
        }
    };
    let min = hpa.spec.min_replicas.unwrap_or(1);
    let max = hpa.spec.max_replicas;
    let (up, down) = behavior::rules(hpa.spec.behavior.as_ref());
    let mut desired;
    let mut reason = String::new();
    let mut current_metrics = status.current_metrics.take();
    if current == 0 && min != 0 {
        condition(
            &mut status,
            SCALING_ACTIVE,
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
            now,
        );
        desired = 0;
    } else if current > max {
        reason = "Current number of replicas above Spec.MaxReplicas".into();
        desired = max;
        condition(
            &mut status,
            SCALING_LIMITED,
            true,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
            now,
        );
    } else if current < min {
        reason = "Current number of replicas below Spec.MinReplicas".into();
        desired = min;
        condition(
            &mut status,
            SCALING_LIMITED,
            true,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
            now,
        );
    } else {
        let mut best: Option<(i32, String)> = None;
        let mut metric_statuses = Vec::new();
        let mut failures = Vec::new();
        for (resource, target) in targets(hpa) {
            let found = target.and_then(|target| {
                let pods = samples.of(&resource);
                proposal(current, &pods, &resource, target, now).map(|p| (p, target))
            });
            match found {
                Ok((p, target)) => {
                    metric_statuses.push(MetricStatus {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricStatus {
                            name: resource.clone(),
                            current: MetricValueStatus {
                                average_utilization: p.utilization,
                                average_value: Some(quantity(&resource, p.average)),
                                value: None,
                            },
                        }),
                        ..Default::default()
                    });
                    if best.as_ref().is_none_or(|(replicas, _)| p.replicas > *replicas) {
                        best = Some((p.replicas, metric_name(&resource, target)));
                    }
                }
                Err(why) => failures.push(format!("failed to get {resource} utilization: {why}")),
            }
        }
        let metric_count = hpa.spec.metrics.as_ref().map_or(0, Vec::len);
        match best {
            Some((proposed, name)) if failures.is_empty() || proposed >= current => {
                condition(
                    &mut status,
                    SCALING_ACTIVE,
                    true,
                    "ValidMetricFound",
                    &format!("the HPA was able to successfully calculate a replica count from {name}"),
                    now,
                );
                current_metrics = Some(metric_statuses);
                desired = proposed;
                reason = if desired > current {
                    format!("{name} above target")
                } else {
                    "All metrics below target".into()
                };
                let normalized = behavior::normalize(memory, current, desired, min, max, &up, &down, now);
                let (is_true, able_reason, able_message) = normalized.able_to_scale;
                condition(&mut status, ABLE_TO_SCALE, is_true, able_reason, able_message, now);
                let (is_true, limited_reason, limited_message) = normalized.scaling_limited;
                condition(
                    &mut status,
                    SCALING_LIMITED,
                    is_true,
                    limited_reason,
                    limited_message,
                    now,
                );
                desired = normalized.replicas;
            }
            _ => {
                let why = if failures.is_empty() {
                    format!("{metric_count} metrics are not resource metrics berth reads")
                } else {
                    failures.join("; ")
                };
                let message = format!("the HPA was unable to compute the replica count: {why}");
                condition(
                    &mut status,
                    SCALING_ACTIVE,
                    false,
                    "FailedGetResourceMetric",
                    &message,
                    now,
                );
                events.push((EventType::Warning, "FailedGetResourceMetric", why.clone()));
                events.push((
                    EventType::Warning,
                    "FailedComputeMetricsReplicas",
                    format!(
                        "invalid metrics ({} invalid out of {metric_count}), first error is: {why}",
                        failures.len().max(1)
                    ),
                ));
                status.current_replicas = Some(current);
                status.desired_replicas = current;
                status.current_metrics = current_metrics;
                return Decision {
                    rescale: None,
                    status,
                    events,
                };
            }
        }
    }
    status.current_replicas = Some(current);
    status.desired_replicas = desired;
    status.current_metrics = current_metrics;
    let rescale = (desired != current && !(current == 0 && min != 0)).then_some(desired);
    if let Some(replicas) = rescale {
        status.last_scale_time = Some(from_system_time(now));
        condition(
            &mut status,
            ABLE_TO_SCALE,
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {replicas}"),
            now,
        );
        events.push((
            EventType::Normal,
            "SuccessfulRescale",
            format!("New size: {replicas}; reason: {reason}"),
        ));
    }
    Decision {
        rescale,
        status,
        events,
    }
}
