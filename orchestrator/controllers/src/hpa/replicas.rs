//! How many replicas one resource metric asks for (pure), as Kubernetes' replica
//! calculator works it out:
//!
//! ```text
//! pods of the target ─► grouped: ignored (deleting, Failed), unready (Pending; for
//!   cpu: not Ready, or still starting and without a full window of metrics since
//!   it became Ready), missing (no metrics), ready
//! usage ratio = (metrics of ready pods) / target     (utilization: over requests)
//! within 10 % of 1 and nothing missing or unready to account for ─► no change
//! else: missing pods count as 100 % of their request (the target, if higher) when
//!   scaling down and 0 when scaling up; unready pods as 0 when scaling up; if that
//!   flips the direction or lands within the tolerance ─► no change,
//!   else ceil(ratio × pods counted)
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Kubernetes' `--horizontal-pod-autoscaler-tolerance`.
pub const TOLERANCE: f64 = 0.1;
/// Kubernetes' `--horizontal-pod-autoscaler-cpu-initialization-period`.
pub const CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
/// Kubernetes' `--horizontal-pod-autoscaler-initial-readiness-delay`.
pub const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// One pod of the target, as the calculation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub name: String,
    pub phase: String,
    pub deleting: bool,
    /// The Ready condition: its status and when it last changed.
    pub ready: Option<(bool, SystemTime)>,
    pub start_time: Option<SystemTime>,
    /// The sum of the app containers' requests of the resource (millicores for cpu,
    /// bytes for memory); `Err` names the container without one.
    pub request: Result<i64, String>,
    /// The pod's usage (the same units) and the end and length of its window.
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub value: i64,
    pub timestamp: SystemTime,
    pub window: Duration,
}

/// What the target is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Percent of the pods' requests.
    Utilization(i32),
    /// A value per pod (millicores or bytes).
    AverageValue(i64),
}

/// One metric's proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub replicas: i32,
    /// The utilization (percent of requests) before missing and unready pods were
    /// accounted for; None for an AverageValue target.
    pub utilization: Option<i32>,
    /// The average usage per ready pod with metrics.
    pub average: i64,
}

#[derive(Debug, Default)]
struct Groups {
    ready: usize,
    unready: Vec<String>,
    missing: Vec<String>,
}

fn group(pods: &[PodSample], is_cpu: bool, now: SystemTime) -> Groups {
    let mut groups = Groups::default();
    for pod in pods {
        if pod.deleting || pod.phase == "Failed" {
            continue;
        }
        if pod.phase == "Pending" {
            groups.unready.push(pod.name.clone());
            continue;
        }
        let Some(usage) = pod.usage else {
            groups.missing.push(pod.name.clone());
            continue;
        };
        if is_cpu {
            let unready = match (pod.ready, pod.start_time) {
                (Some((is_ready, changed)), Some(started)) => {
                    if started + CPU_INITIALIZATION_PERIOD > now {
                        !is_ready || usage.timestamp < changed + usage.window
                    } else {
                        !is_ready && started + INITIAL_READINESS_DELAY > changed
                    }
                }
                _ => true,
            };
            if unready {
                groups.unready.push(pod.name.clone());
                continue;
            }
        }
        groups.ready += 1;
    }
    groups
}

/// The ratio of usage to target over `usage` (pod name → value), and the
/// utilization and average behind it.
fn ratio(usage: &BTreeMap<&str, i64>, requests: &BTreeMap<&str, i64>, target: Target) -> (f64, i32, i64) {
    let count = usage.len().max(1) as i64;
    let total: i64 = usage.values().sum();
    match target {
        Target::Utilization(percent) => {
            let (mut used, mut requested) = (0i64, 0i64);
            for (pod, value) in usage {
                if let Some(request) = requests.get(pod) {
                    used += value;
                    requested += request;
                }
            }
            let utilization = if requested > 0 {
                (used * 100 / requested) as i32
            } else {
                0
            };
            (f64::from(utilization) / f64::from(percent), utilization, total / count)
        }
        Target::AverageValue(per_pod) => {
            let average = total / count;
            (average as f64 / per_pod as f64, 0, average)
        }
    }
}

/// The replicas `target` asks for, from `current` replicas and their pods; `Err`
/// says why nothing can be computed.
pub fn proposal(
    current: i32,
    pods: &[PodSample],
    resource: &str,
    target: Target,
    now: SystemTime,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group(pods, resource == "cpu", now);
    let mut usage: BTreeMap<&str, i64> = pods
        .iter()
        .filter(|p| !groups.unready.contains(&p.name))
        .filter(|p| !p.deleting && p.phase != "Failed")
        .filter_map(|p| Some((p.name.as_str(), p.usage?.value)))
        .collect();
    if usage.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let mut requests = BTreeMap::new();
    if let Target::Utilization(_) = target {
        for pod in pods {
            match &pod.request {
                Ok(request) => {
                    requests.insert(pod.name.as_str(), *request);
                }
                Err(container) => {
                    return Err(format!(
                        "missing request for {resource} in container {container} of Pod {}",
                        pod.name
                    ));
                }
            }
        }
    }
    let (first_ratio, utilization, average) = ratio(&usage, &requests, target);
    let report = |replicas| Proposal {
        replicas,
        utilization: matches!(target, Target::Utilization(_)).then_some(utilization),
        average,
    };
    let scale_up_with_unready = !groups.unready.is_empty() && first_ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if (1.0 - first_ratio).abs() <= TOLERANCE {
            return Ok(report(current));
        }
        return Ok(report((first_ratio * groups.ready as f64).ceil() as i32));
    }
    if first_ratio < 1.0 {
        for name in &groups.missing {
            let stand_in = match target {
                Target::Utilization(percent) => {
                    requests.get(name.as_str()).copied().unwrap_or(0) * i64::from(percent.max(100)) / 100
                }
                Target::AverageValue(per_pod) => per_pod,
            };
            usage.insert(name.as_str(), stand_in);
        }
    } else if first_ratio > 1.0 {
        for name in &groups.missing {
            usage.insert(name.as_str(), 0);
        }
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            usage.insert(name.as_str(), 0);
        }
    }
    let (new_ratio, _, _) = ratio(&usage, &requests, target);
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (first_ratio < 1.0 && new_ratio > 1.0)
        || (first_ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(report(current));
    }
    let replicas = (new_ratio * usage.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(report(current));
    }
    Ok(report(replicas))
}
