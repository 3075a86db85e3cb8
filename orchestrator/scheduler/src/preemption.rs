//! Preemption, as kube-scheduler's DefaultPreemption: a pod that fits nowhere and
//! may preempt (`preemptionPolicy: PreemptLowerPriority`) looks for the node where
//! evicting pods of lower priority makes it fit, evicting as few and as unimportant
//! ones as it can. Pure: the scheduling loop (run.rs) gathers the pods on each node
//! and carries the choice out.
//!
//! ```text
//!  each node: remove every pod of lower priority ──► the pod passes every filter? ──no──► not a candidate
//!             (those that count other nodes' pods too: the victims counted out of them)
//!                 │ yes
//!                 ▼
//!  put them back while the pod still fits, those a PodDisruptionBudget protects
//!  first, then the rest, most important first: the others are the victims
//!
//!  candidates ──► the fewest budgets broken ──► the lowest highest victim priority
//!  ──► the lowest sum of victim priorities ──► the fewest victims ──► the latest
//!  start of the most important victims ──► the first node by name
//! ```
//!
//! Pods already being deleted are never victims (they will go by themselves), and
//! a pod that nominated a node where pods of lower priority are still going waits
//! for them rather than preempting again ([`may_preempt`]). A budget is broken, as
//! Kubernetes counts it, by a victim it selects once its `disruptionsAllowed` are
//! used up (pods it already counts as disrupted do not use them).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use berth_api::meta::{LabelSelector, selector_is_empty, selector_matches};

use super::pod_affinity::InterPodAffinity;
use super::topology_spread::TopologySpread;
use super::{FILTERS, NodeInfo, PlacedPod, PodRequest};

/// A PodDisruptionBudget, as preemption weighs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    pub namespace: String,
    pub selector: LabelSelector,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// The names in `status.disruptedPods`.
    pub disrupted: BTreeSet<String>,
}

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
    /// How many victims break a budget.
    pub budget_violations: usize,
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
/// `placed` lists the pods on each node as `(node, pod)`; `budgets` the cluster's
/// PodDisruptionBudgets.
pub fn select(
    pod: &PodRequest,
    priority: i32,
    nodes: &[NodeInfo],
    placed: &[(String, Placed)],
    budgets: &[Budget],
) -> Option<Preemption> {
    // Most pods that fit nowhere have nobody below them to evict: that costs no more.
    let is_victim = |p: &Placed| p.priority < priority && !p.is_deleting;
    if !placed.iter().any(|(_, p)| is_victim(p)) {
        return None;
    }
    let mut by_node: BTreeMap<&str, Vec<&Placed>> = BTreeMap::new();
    for (node, p) in placed {
        by_node.entry(node.as_str()).or_default().push(p);
    }
    // The rules that count other nodes' pods (topology spread, inter-pod affinity)
    // are counted once; each candidate's victims are counted out of them, and back
    // in as they are reprieved, as kube-scheduler's RemovePod and AddPod do: a pod
    // kept off a node only by pods of lower priority (their anti-affinity, or its
    // own against them) may evict them.
    let rules = Rules {
        spread: TopologySpread::new(pod, nodes),
        inter_pod: InterPodAffinity::new(pod, nodes),
    };
    let candidates: Vec<Preemption> = nodes
        .iter()
        .filter(|node| {
            by_node
                .get(node.name.as_str())
                .is_some_and(|on| on.iter().any(|p| is_victim(p)))
        })
        .filter_map(|node| {
            let on_node = by_node[node.name.as_str()].iter().copied();
            victims_on(pod, priority, node, on_node, budgets, &rules)
        })
        .collect();
    // Each criterion keeps the candidates that do best by it; the first left wins.
    let criteria: [&dyn Fn(&Preemption) -> i64; 5] = [
        &|c| -(c.budget_violations as i64),
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

/// The rules that count the pods of every node, for one pod.
#[derive(Clone)]
struct Rules<'a> {
    spread: TopologySpread<'a>,
    inter_pod: InterPodAffinity,
}

impl<'a> Rules<'a> {
    fn allow(&self, pod: &PodRequest, node: &NodeInfo) -> bool {
        self.spread.check(pod, node).is_ok() && self.inter_pod.check(pod, node).is_ok()
    }

    /// Counts `placed`, on `node`, in (1) or out (-1).
    fn count(&mut self, pod: &PodRequest, node: &'a NodeInfo, placed: &Placed, delta: i8) {
        if placed.is_deleting {
            return; // never counted: a pod being deleted no longer counts
        }
        let request = &placed.request;
        let placed = PlacedPod {
            namespace: request.namespace.clone(),
            labels: request.labels.clone(),
            // A namespace's labels are the same on every pod of it; the node's own
            // copy of this pod carries them (the scheduling loop fills them in).
            namespace_labels: (node.pods.iter())
                .find(|p| p.namespace == request.namespace)
                .map(|p| p.namespace_labels.clone())
                .unwrap_or_default(),
            affinity: request.affinity.clone(),
        };
        self.spread.count(pod, node, &placed, i64::from(delta));
        self.inter_pod.count(pod, node, &placed, isize::from(delta));
    }
}

/// The pods to evict on `node` for `pod` to fit, most important first; `None` when
/// it would not fit even without every pod of lower priority, or fits already.
fn victims_on<'a>(
    pod: &PodRequest,
    priority: i32,
    node: &'a NodeInfo,
    on_node: impl Iterator<Item = &'a Placed>,
    budgets: &[Budget],
    rules: &Rules<'a>,
) -> Option<Preemption> {
    let fits =
        |info: &NodeInfo, rules: &Rules| FILTERS.iter().all(|f| f.check(pod, info).is_ok()) && rules.allow(pod, node);
    let mut rules = rules.clone();
    if fits(node, &rules) {
        return None;
    }
    let mut lower: Vec<&Placed> = on_node.filter(|p| p.priority < priority && !p.is_deleting).collect();
    let mut info = node.clone();
    for victim in &lower {
        uncharge(&mut info, &victim.request);
        rules.count(pod, node, victim, -1);
    }
    if !fits(&info, &rules) {
        return None;
    }
    // Most important first: higher priority, then the earlier start (as Kubernetes'
    // MoreImportantPod), then the name so the choice is deterministic.
    let importance = |p: &Placed| (Reverse(p.priority), p.started.unwrap_or(i64::MAX), p.key.clone());
    lower.sort_by_key(|p| importance(p));
    // Those a budget protects are put back first, so as few as can be are evicted.
    let protected = breaks_budget(&lower, budgets);
    let (breaking, free): (Vec<_>, Vec<_>) = lower.iter().zip(protected).partition(|(_, breaks)| *breaks);
    let mut victims = Vec::new();
    let mut budget_violations = 0;
    for (candidate, breaks) in breaking.into_iter().chain(free) {
        info.charge(&candidate.request);
        rules.count(pod, node, candidate, 1);
        if !fits(&info, &rules) {
            uncharge(&mut info, &candidate.request);
            rules.count(pod, node, candidate, -1);
            victims.push((*candidate).clone());
            budget_violations += usize::from(breaks);
        }
    }
    victims.sort_by_key(importance);
    (!victims.is_empty()).then(|| Preemption {
        node: node.name.clone(),
        victims,
        budget_violations,
    })
}

/// For each pod (in order), whether evicting it, and those before it, breaks a
/// budget that selects it (Kubernetes' filterPodsWithPDBViolation). Pure.
fn breaks_budget(pods: &[&Placed], budgets: &[Budget]) -> Vec<bool> {
    let mut allowed: Vec<i32> = budgets.iter().map(|b| b.disruptions_allowed).collect();
    pods.iter()
        .map(|pod| {
            let request = &pod.request;
            let mut breaks = false;
            if request.labels.is_empty() {
                return false;
            }
            for (budget, allowed) in budgets.iter().zip(allowed.iter_mut()) {
                let selects = budget.namespace == request.namespace
                    && !selector_is_empty(&budget.selector)
                    && selector_matches(&budget.selector, &request.labels);
                if !selects || budget.disrupted.contains(&request.name) {
                    continue;
                }
                *allowed -= 1;
                breaks |= *allowed < 0;
            }
            breaks
        })
        .collect()
}

/// `NodeInfo::charge` undone, as far as the per-node filters read it (the pod list
/// is left: the rules that count pods are kept apart, in [`Rules`]).
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
