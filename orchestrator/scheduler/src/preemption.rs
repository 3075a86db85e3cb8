//! Preemption, as kube-scheduler's DefaultPreemption: a pod that fits nowhere and
//! may preempt (`preemptionPolicy: PreemptLowerPriority`) looks for the node where
//! evicting pods of lower priority makes it fit, evicting as few and as unimportant
//! ones as it can. Pure: the scheduling loop (run.rs) gathers the pods on each node
//! and carries the choice out.
//!
//! ```text
//!  each node: remove every pod of lower priority ──► the pod passes every filter? ──no──► not a candidate
//!                 │ yes
//!                 ▼
//!  put them back, most important first, while the pod still fits: the rest are the victims
//!
//!  candidates ──► the lowest highest victim priority ──► the lowest sum of victim
//!  priorities ──► the fewest victims ──► the latest start of the most important
//!  victims ──► the first node by name
//! ```
//!
//! Pods already being deleted are never victims (they will go by themselves), and
//! a pod that nominated a node where pods of lower priority are still going waits
//! for them rather than preempting again ([`may_preempt`]). PodDisruptionBudgets
//! are not weighed (Kubernetes prefers candidates that break none).

use std::cmp::Reverse;

use super::{FILTERS, NodeInfo, PodRequest};

/// The policy that lets a pod preempt (the default); `Never` does not.
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";

/// A pod on a node, as preemption weighs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placed {
    /// The pod's store key, as the caller names it back.
    pub key: String,
    pub priority: i32,
    /// When it started (`status.startTime`, seconds since the epoch); `None`: not yet.
    pub started: Option<i64>,
    pub is_deleting: bool,
    pub request: PodRequest,
}

/// The node chosen and the pods to evict there, most important first.
#[derive(Debug, Clone, PartialEq)]
pub struct Preemption {
    pub node: String,
    pub victims: Vec<Placed>,
}

/// Whether `pod` may preempt now: its policy allows it, and, when it already
/// nominated a node, no pod of lower priority is still being deleted there (the
/// room it made is on its way).
pub fn may_preempt(policy: Option<&str>, priority: i32, nominated: Option<&str>, placed: &[(String, Placed)]) -> bool {
    if policy.unwrap_or(PREEMPT_LOWER_PRIORITY) != PREEMPT_LOWER_PRIORITY {
        return false;
    }
    let Some(nominated) = nominated.filter(|n| !n.is_empty()) else {
        return true;
    };
    !placed
        .iter()
        .any(|(node, p)| node == nominated && p.is_deleting && p.priority < priority)
}

/// The node where `pod` (of `priority`) fits once the fewest, least important pods
/// of lower priority are gone, and those pods; `None` when no eviction makes it fit.
/// `placed` lists the pods on each node as `(node, pod)`.
pub fn select(pod: &PodRequest, priority: i32, nodes: &[NodeInfo], placed: &[(String, Placed)]) -> Option<Preemption> {
    let candidates: Vec<Preemption> = nodes
        .iter()
        .filter_map(|node| {
            let on_node = placed.iter().filter(|(n, _)| *n == node.name).map(|(_, p)| p);
            victims_on(pod, priority, node, on_node).map(|victims| Preemption {
                node: node.name.clone(),
                victims,
            })
        })
        .collect();
    // Each criterion keeps the candidates that do best by it; the first left wins.
    let criteria: [&dyn Fn(&Preemption) -> i64; 4] = [
        &|c| -highest_priority(c),
        &|c| {
            -c.victims
                .iter()
                .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
                .sum::<i64>()
        },
        &|c| -(c.victims.len() as i64),
        &|c| earliest_start_of_most_important(c),
    ];
    let mut left: Vec<&Preemption> = candidates.iter().collect();
    for criterion in criteria {
        let best = left.iter().map(|c| criterion(c)).max()?;
        left.retain(|c| criterion(c) == best);
        if left.len() == 1 {
            break;
        }
    }
    left.first().map(|c| (*c).clone())
}

fn highest_priority(candidate: &Preemption) -> i64 {
    candidate
        .victims
        .iter()
        .map(|v| i64::from(v.priority))
        .max()
        .unwrap_or(i64::MIN)
}

/// The earliest start among the victims of the highest priority (a node whose most
/// important victims started later loses less work); unstarted ones count as now.
fn earliest_start_of_most_important(candidate: &Preemption) -> i64 {
    let highest = highest_priority(candidate);
    candidate
        .victims
        .iter()
        .filter(|v| i64::from(v.priority) == highest)
        .map(|v| v.started.unwrap_or(i64::MAX))
        .min()
        .unwrap_or(i64::MIN)
}

/// The pods to evict on `node` for `pod` to fit, most important first; `None` when
/// it would not fit even without every pod of lower priority, or fits already.
fn victims_on<'a>(
    pod: &PodRequest,
    priority: i32,
    node: &NodeInfo,
    on_node: impl Iterator<Item = &'a Placed>,
) -> Option<Vec<Placed>> {
    let fits = |info: &NodeInfo| FILTERS.iter().all(|f| f.check(pod, info).is_ok());
    if fits(node) {
        return None;
    }
    let mut lower: Vec<&Placed> = on_node.filter(|p| p.priority < priority && !p.is_deleting).collect();
    let mut info = node.clone();
    for victim in &lower {
        uncharge(&mut info, &victim.request);
    }
    if !fits(&info) {
        return None;
    }
    // Most important first: higher priority, then the earlier start (as Kubernetes'
    // MoreImportantPod), then the name so the choice is deterministic.
    lower.sort_by_key(|p| (Reverse(p.priority), p.started.unwrap_or(i64::MAX), p.key.clone()));
    let mut victims = Vec::new();
    for candidate in lower {
        info.charge(&candidate.request);
        if !fits(&info) {
            uncharge(&mut info, &candidate.request);
            victims.push(candidate.clone());
        }
    }
    (!victims.is_empty()).then_some(victims)
}

/// `NodeInfo::charge` undone, as far as the filters read it (spreading's pod list
/// is left: no filter reads it).
fn uncharge(info: &mut NodeInfo, pod: &PodRequest) {
    info.used_cpu_millis = info.used_cpu_millis.saturating_sub(pod.cpu_millis);
    info.used_memory_bytes = info.used_memory_bytes.saturating_sub(pod.memory_bytes);
    info.nonzero_used_cpu_millis = info.nonzero_used_cpu_millis.saturating_sub(pod.nonzero_cpu_millis);
    info.nonzero_used_memory_bytes = info.nonzero_used_memory_bytes.saturating_sub(pod.nonzero_memory_bytes);
    for port in &pod.host_ports {
        info.used_host_ports.remove(port);
    }
}

#[cfg(test)]
#[path = "preemption_tests.rs"]
mod tests;
