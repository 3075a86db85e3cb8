//! Kubernetes' PodTopologySpread plugin for a pod's own `topologySpreadConstraints`
//! (the system default constraints, for pods without any, are in score.rs).
//!
//! Each constraint counts, per domain (a value of its `topologyKey`), the pods of
//! the pod's namespace its selector matches (`labelSelector`, narrowed by the pod's
//! values of `matchLabelKeys`), over the nodes that have every constraint's key
//! and that its inclusion policies admit (`nodeAffinityPolicy`: Honor by default,
//! only nodes the pod's node selection allows; `nodeTaintsPolicy`: Ignore by
//! default, or Honor, only nodes whose NoSchedule/NoExecute taints it tolerates).
//!
//! - `DoNotSchedule` (a filter): placing the pod must keep its domain within
//!   `maxSkew` of the least populated domain (taken as 0 while there are fewer
//!   domains than `minDomains`); a node without the key does not fit.
//! - `ScheduleAnyway` (a score): per node, `count × ln(domains + 2) + maxSkew − 1`
//!   summed over the constraints, the fewest scoring 100; a node without a key
//!   scores 0.

use std::collections::BTreeMap;

use berth_api::meta::{LabelSelector, LabelSelectorRequirement, selector_matches};
use berth_api::persistent_volumes::HOSTNAME_LABEL;

use super::score::MAX_SCORE;
use super::{NodeInfo, PlacedPod, PodRequest, filter, node_affinity};

pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL_REASON: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

/// One of the pod's constraints, ready to count with.
#[derive(Debug, Clone)]
struct Constraint<'a> {
    key: &'a str,
    max_skew: i64,
    /// `None`: no `labelSelector`, which selects no pod.
    selector: Option<LabelSelector>,
    min_domains: usize,
    honors_node_affinity: bool,
    honors_taints: bool,
}

impl Constraint<'_> {
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_some_and(|s| selector_matches(s, labels))
    }

    /// Whether the node's pods count, by the inclusion policies.
    fn counts_node(&self, pod: &PodRequest, node: &NodeInfo) -> bool {
        let affinity_allows = !self.honors_node_affinity || node_affinity::matches(pod, node);
        let taints_allow = !self.honors_taints
            || node
                .taints
                .iter()
                .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                .all(|t| filter::tolerates(&pod.tolerations, t));
        affinity_allows && taints_allow
    }

    /// The pods on the node this constraint counts.
    fn matching(&self, pod: &PodRequest, node: &NodeInfo) -> i64 {
        let counted = node
            .pods
            .iter()
            .filter(|p| p.namespace == pod.namespace && self.selects(&p.labels));
        counted.count() as i64
    }
}

/// The pod's constraints with `whenUnsatisfiable` = `when`.
fn constraints<'a>(pod: &'a PodRequest, when: &str) -> Vec<Constraint<'a>> {
    pod.topology_spread_constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| {
            let selector = c.label_selector.clone().map(|mut selector| {
                for key in c.match_label_keys.iter().flatten() {
                    if let Some(value) = pod.labels.get(key) {
                        selector
                            .match_expressions
                            .get_or_insert_default()
                            .push(LabelSelectorRequirement {
                                key: key.clone(),
                                operator: "In".into(),
                                values: Some(vec![value.clone()]),
                            });
                    }
                }
                selector
            });
            Constraint {
                key: &c.topology_key,
                max_skew: i64::from(c.max_skew),
                selector,
                min_domains: c.min_domains.map_or(1, |m| m.max(1) as usize),
                honors_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honors_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn has_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints.iter().all(|c| node.labels.contains_key(c.key))
}

/// The `DoNotSchedule` constraints and their counts per domain, counted once over
/// every node for one pod, and kept as preemption takes placed pods away and puts
/// them back ([`TopologySpread::count`]).
#[derive(Debug, Clone)]
pub struct TopologySpread<'a> {
    constraints: Vec<Constraint<'a>>,
    counts: Vec<BTreeMap<&'a str, i64>>,
}

impl<'a> TopologySpread<'a> {
    pub fn new(pod: &'a PodRequest, nodes: &'a [NodeInfo]) -> Self {
        let constraints = constraints(pod, "DoNotSchedule");
        let mut counts = vec![BTreeMap::new(); constraints.len()];
        for node in nodes.iter().filter(|n| has_keys(n, &constraints)) {
            for (c, counts) in constraints.iter().zip(&mut counts) {
                if c.counts_node(pod, node) {
                    *counts.entry(node.labels[c.key].as_str()).or_default() += c.matching(pod, node);
                }
            }
        }
        TopologySpread { constraints, counts }
    }

    /// Counts `placed`, a pod on `node`, in (`delta` 1) or out (-1), where the
    /// constraints count the node's pods.
    pub fn count(&mut self, pod: &PodRequest, node: &'a NodeInfo, placed: &PlacedPod, delta: i64) {
        if !has_keys(node, &self.constraints) || placed.namespace != pod.namespace {
            return;
        }
        for (c, counts) in self.constraints.iter().zip(&mut self.counts) {
            if c.counts_node(pod, node) && c.selects(&placed.labels) {
                *counts.entry(node.labels[c.key].as_str()).or_default() += delta;
            }
        }
    }

    pub fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        for (c, counts) in self.constraints.iter().zip(&self.counts) {
            let Some(value) = node.labels.get(c.key) else {
                return Err(MISSING_LABEL_REASON);
            };
            let least = if counts.len() < c.min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
            let here = counts.get(value.as_str()).copied().unwrap_or(0);
            let skew = here + i64::from(c.selects(&pod.labels)) - least;
            if skew > c.max_skew {
                return Err(REASON);
            }
        }
        Ok(())
    }
}

/// The score of each fitting node by the pod's `ScheduleAnyway` constraints;
/// `None` when it has none.
pub fn scores(pod: &PodRequest, fits: &[&NodeInfo], nodes: &[NodeInfo]) -> Option<Vec<i64>> {
    let constraints = constraints(pod, "ScheduleAnyway");
    if constraints.is_empty() {
        return None;
    }
    let scored: Vec<&NodeInfo> = fits.iter().copied().filter(|n| has_keys(n, &constraints)).collect();
    // The domains are those of the nodes scored; pods elsewhere count in them.
    let mut counts: Vec<BTreeMap<&str, i64>> = constraints
        .iter()
        .map(|c| scored.iter().map(|n| (n.labels[c.key].as_str(), 0)).collect())
        .collect();
    for node in nodes.iter().filter(|n| has_keys(n, &constraints)) {
        for (c, counts) in constraints.iter().zip(&mut counts) {
            if c.key != HOSTNAME_LABEL
                && c.counts_node(pod, node)
                && let Some(count) = counts.get_mut(node.labels[c.key].as_str())
            {
                *count += c.matching(pod, node);
            }
        }
    }
    let raw: Vec<Option<i64>> = fits
        .iter()
        .map(|node| {
            if !has_keys(node, &constraints) {
                return None;
            }
            let mut score = 0.0;
            for (c, counts) in constraints.iter().zip(&counts) {
                let (count, domains) = if c.key == HOSTNAME_LABEL {
                    (c.matching(pod, node), scored.len())
                } else {
                    (counts[node.labels[c.key].as_str()], counts.len())
                };
                score += count as f64 * ((domains + 2) as f64).ln() + (c.max_skew - 1) as f64;
            }
            Some(score.round() as i64)
        })
        .collect();
    let valid = raw.iter().flatten().copied();
    let (min, max) = (valid.clone().min().unwrap_or(0), valid.max().unwrap_or(0));
    Some(
        raw.iter()
            .map(|s| match s {
                None => 0,
                Some(_) if max == 0 => MAX_SCORE,
                Some(s) => MAX_SCORE * (max + min - s) / max,
            })
            .collect(),
    )
}

#[cfg(test)]
#[path = "topology_spread_tests.rs"]
mod tests;
