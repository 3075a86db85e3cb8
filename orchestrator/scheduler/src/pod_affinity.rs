//! Kubernetes' InterPodAffinity plugin: where a pod may go, and which nodes it
//! prefers, by the pods already placed in each topology domain (the nodes sharing a
//! value of a term's `topologyKey`).
//!
//! Filter, counted once over every node for the pod being placed:
//! - its required affinity: every term's domain on the node must hold a pod that
//!   matches all its terms, unless no pod anywhere does and the pod matches its
//!   own terms (the first pod of a group that wants to be together);
//! - its required anti-affinity: no term's domain on the node may hold a pod the
//!   term matches;
//! - the placed pods' required anti-affinity (symmetry): the node is in no domain
//!   of a placed pod whose term matches this pod.
//!
//! Score: preferred terms add (affinity) or take away (anti-affinity) their
//! weight in every domain holding a matching pod, both ways (this pod's terms over
//! placed pods, placed pods' terms over this pod, their required affinity weighing
//! 1), normalized to 0..=100 over the nodes that fit.

use std::collections::BTreeMap;

use berth_api::meta::selector_matches;
use berth_api::objects::{Affinity, PodAffinityTerm, WeightedPodAffinityTerm};

use super::{NodeInfo, PlacedPod, PodRequest};

pub const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY_REASON: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// The weight of a placed pod's required affinity term in the score
/// (kube-scheduler's default `hardPodAffinityWeight`).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// A topology domain: a topology key and a node's value for it.
type Domain = (String, String);

/// The pod that has a term: its namespace (the term's default) and its labels
/// (which `matchLabelKeys` and `mismatchLabelKeys` read).
struct Owner<'a> {
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
}

/// A pod a term may select: its namespace, the namespace's labels and its own.
struct Target<'a> {
    namespace: &'a str,
    namespace_labels: &'a BTreeMap<String, String>,
    labels: &'a BTreeMap<String, String>,
}

/// Whether a term selects a pod: the pod's namespace is among the term's
/// (`namespaces`, or those `namespaceSelector` matches, or the owner's own when
/// neither is given) and `labelSelector` (none selects nothing) matches its labels,
/// narrowed as the API server narrows it on create: each key of `matchLabelKeys`
/// the owner has as `key in (owner's value)`, of `mismatchLabelKeys` as
/// `key notin (owner's value)`.
fn selects(term: &PodAffinityTerm, owner: &Owner, target: &Target) -> bool {
    let names = term.namespaces.as_deref().unwrap_or_default();
    let in_namespaces = match &term.namespace_selector {
        None if names.is_empty() => target.namespace == owner.namespace,
        selector => {
            names.iter().any(|n| n == target.namespace)
                || selector
                    .as_ref()
                    .is_some_and(|s| selector_matches(s, target.namespace_labels))
        }
    };
    let value = |k: &str| target.labels.get(k).map(String::as_str);
    let same = owner_values(term.match_label_keys.as_deref(), owner.labels).all(|(k, v)| value(k) == Some(v));
    let different = owner_values(term.mismatch_label_keys.as_deref(), owner.labels).all(|(k, v)| value(k) != Some(v));
    in_namespaces
        && same
        && different
        && term
            .label_selector
            .as_ref()
            .is_some_and(|s| selector_matches(s, target.labels))
}

/// The owner's values of the keys it has.
fn owner_values<'a>(
    keys: Option<&'a [String]>,
    labels: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let keys = keys.unwrap_or_default().iter();
    keys.filter_map(|k| labels.get(k).map(|v| (k.as_str(), v.as_str())))
}

/// Whether `term`, a term of the incoming pod, selects a placed pod.
fn selects_placed(term: &PodAffinityTerm, pod: &PodRequest, placed: &PlacedPod) -> bool {
    let owner = Owner {
        namespace: &pod.namespace,
        labels: &pod.labels,
    };
    selects(term, &owner, &placed_target(placed))
}

/// Whether `term`, a placed pod's term, selects the incoming pod.
fn selects_incoming(term: &PodAffinityTerm, placed: &PlacedPod, pod: &PodRequest) -> bool {
    let owner = Owner {
        namespace: &placed.namespace,
        labels: &placed.labels,
    };
    selects(term, &owner, &incoming_target(pod))
}

/// Whether `term`, a term of the incoming pod, selects that pod itself.
fn selects_itself(term: &PodAffinityTerm, pod: &PodRequest) -> bool {
    let owner = Owner {
        namespace: &pod.namespace,
        labels: &pod.labels,
    };
    selects(term, &owner, &incoming_target(pod))
}

fn placed_target(placed: &PlacedPod) -> Target<'_> {
    Target {
        namespace: &placed.namespace,
        namespace_labels: &placed.namespace_labels,
        labels: &placed.labels,
    }
}

fn incoming_target(pod: &PodRequest) -> Target<'_> {
    Target {
        namespace: &pod.namespace,
        namespace_labels: &pod.namespace_labels,
        labels: &pod.labels,
    }
}

fn required_affinity(affinity: Option<&Affinity>) -> &[PodAffinityTerm] {
    let terms = affinity.and_then(|a| a.pod_affinity.as_ref());
    terms
        .and_then(|t| t.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

fn required_anti_affinity(affinity: Option<&Affinity>) -> &[PodAffinityTerm] {
    let terms = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
    terms
        .and_then(|t| t.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

/// The preferred affinity and anti-affinity terms of an affinity.
fn preferred(affinity: Option<&Affinity>) -> (&[WeightedPodAffinityTerm], &[WeightedPodAffinityTerm]) {
    let affinity_terms = affinity
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|t| t.preferred_during_scheduling_ignored_during_execution.as_deref());
    let anti_terms = affinity
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|t| t.preferred_during_scheduling_ignored_during_execution.as_deref());
    (affinity_terms.unwrap_or_default(), anti_terms.unwrap_or_default())
}

/// The node's domain for a topology key, if it has the label.
fn domain(node: &NodeInfo, key: &str) -> Option<Domain> {
    node.labels.get(key).map(|value| (key.to_string(), value.clone()))
}

/// What the filter needs, counted once over every node for one pod, and kept as
/// preemption takes placed pods away and puts them back ([`InterPodAffinity::count`]).
/// A domain's entry goes when its count falls to 0.
#[derive(Debug, Default, Clone)]
pub struct InterPodAffinity {
    /// Per domain of the pod's required affinity terms: the placed pods there that
    /// match all of them.
    affinity_counts: BTreeMap<Domain, usize>,
    /// Per domain of the pod's required anti-affinity terms: the placed pods there
    /// a term matches.
    anti_affinity_counts: BTreeMap<Domain, usize>,
    /// The domains of placed pods whose required anti-affinity matches the pod,
    /// with how many such terms each.
    repelled_by_placed: BTreeMap<Domain, usize>,
}

/// Adds `delta` (±1) to the domain's count, its entry gone at 0.
fn bump(counts: &mut BTreeMap<Domain, usize>, domain: Domain, delta: isize) {
    if delta >= 0 {
        *counts.entry(domain).or_default() += delta.unsigned_abs();
    } else if let Some(count) = counts.get_mut(&domain) {
        *count = count.saturating_sub(delta.unsigned_abs());
        if *count == 0 {
            counts.remove(&domain);
        }
    }
}

impl InterPodAffinity {
    pub fn new(pod: &PodRequest, nodes: &[NodeInfo]) -> Self {
        let mut state = InterPodAffinity::default();
        let affinity = required_affinity(pod.affinity.as_deref());
        let anti_affinity = required_anti_affinity(pod.affinity.as_deref());
        // Without terms of its own, only the placed pods' terms matter.
        let all = !affinity.is_empty() || !anti_affinity.is_empty();
        for node in nodes {
            for placed in node.pods_for_affinity(all) {
                state.count(pod, node, placed, 1);
            }
        }
        state
    }

    /// Counts `placed`, a pod on `node`, in (`delta` 1) or out (-1): what
    /// kube-scheduler's AddPod and RemovePod do to this state for preemption.
    pub fn count(&mut self, pod: &PodRequest, node: &NodeInfo, placed: &PlacedPod, delta: isize) {
        let affinity = required_affinity(pod.affinity.as_deref());
        if !affinity.is_empty() && affinity.iter().all(|t| selects_placed(t, pod, placed)) {
            for term in affinity {
                if let Some(d) = domain(node, &term.topology_key) {
                    bump(&mut self.affinity_counts, d, delta);
                }
            }
        }
        let anti_affinity = required_anti_affinity(pod.affinity.as_deref());
        for term in anti_affinity.iter().filter(|t| selects_placed(t, pod, placed)) {
            if let Some(d) = domain(node, &term.topology_key) {
                bump(&mut self.anti_affinity_counts, d, delta);
            }
        }
        for term in required_anti_affinity(placed.affinity.as_deref()) {
            if selects_incoming(term, placed, pod)
                && let Some(d) = domain(node, &term.topology_key)
            {
                bump(&mut self.repelled_by_placed, d, delta);
            }
        }
    }

    /// `Err(reason)` when the node breaks one of the pod's required terms, or a
    /// placed pod's required anti-affinity.
    pub fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        let affinity = required_affinity(pod.affinity.as_deref());
        if !affinity.is_empty() {
            let mut all_domains_hold_one = true;
            for term in affinity {
                let Some(d) = domain(node, &term.topology_key) else {
                    return Err(AFFINITY_REASON);
                };
                if self.affinity_counts.get(&d).copied().unwrap_or(0) == 0 {
                    all_domains_hold_one = false;
                }
            }
            // The first pod of a group: nothing matches anywhere yet, and the pod
            // itself would.
            let is_first = self.affinity_counts.is_empty() && affinity.iter().all(|t| selects_itself(t, pod));
            if !all_domains_hold_one && !is_first {
                return Err(AFFINITY_REASON);
            }
        }
        for term in required_anti_affinity(pod.affinity.as_deref()) {
            if let Some(d) = domain(node, &term.topology_key)
                && self.anti_affinity_counts.get(&d).copied().unwrap_or(0) > 0
            {
                return Err(ANTI_AFFINITY_REASON);
            }
        }
        if self
            .repelled_by_placed
            .keys()
            .any(|(key, value)| node.labels.get(key) == Some(value))
        {
            return Err(EXISTING_ANTI_AFFINITY_REASON);
        }
        Ok(())
    }
}

/// The InterPodAffinity score of each fitting node, 0..=100, counted over the pods
/// on every node.
pub fn scores(pod: &PodRequest, fits: &[&NodeInfo], nodes: &[NodeInfo]) -> Vec<i64> {
    let mut by_domain: BTreeMap<Domain, i64> = BTreeMap::new();
    let (own_affinity, own_anti) = preferred(pod.affinity.as_deref());
    let all = !own_affinity.is_empty() || !own_anti.is_empty();
    for node in nodes {
        let mut add = |key: &str, weight: i64| {
            if let Some(d) = domain(node, key) {
                *by_domain.entry(d).or_default() += weight;
            }
        };
        for placed in node.pods_for_affinity(all) {
            for weighted in own_affinity {
                if selects_placed(&weighted.pod_affinity_term, pod, placed) {
                    add(&weighted.pod_affinity_term.topology_key, i64::from(weighted.weight));
                }
            }
            for weighted in own_anti {
                if selects_placed(&weighted.pod_affinity_term, pod, placed) {
                    add(&weighted.pod_affinity_term.topology_key, -i64::from(weighted.weight));
                }
            }
            for term in required_affinity(placed.affinity.as_deref()) {
                if selects_incoming(term, placed, pod) {
                    add(&term.topology_key, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            let (their_affinity, their_anti) = preferred(placed.affinity.as_deref());
            for weighted in their_affinity {
                if selects_incoming(&weighted.pod_affinity_term, placed, pod) {
                    add(&weighted.pod_affinity_term.topology_key, i64::from(weighted.weight));
                }
            }
            for weighted in their_anti {
                if selects_incoming(&weighted.pod_affinity_term, placed, pod) {
                    add(&weighted.pod_affinity_term.topology_key, -i64::from(weighted.weight));
                }
            }
        }
    }
    let raw: Vec<i64> = fits
        .iter()
        .map(|node| {
            by_domain
                .iter()
                .filter(|((key, value), _)| node.labels.get(key) == Some(value))
                .map(|(_, weight)| weight)
                .sum()
        })
        .collect();
    let (min, max) = (
        raw.iter().copied().min().unwrap_or(0),
        raw.iter().copied().max().unwrap_or(0),
    );
    raw.iter()
        .map(|s| {
            if max > min {
                super::score::MAX_SCORE * (s - min) / (max - min)
            } else {
                0
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "pod_affinity_tests.rs"]
mod tests;
