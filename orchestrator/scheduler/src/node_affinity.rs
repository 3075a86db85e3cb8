//! Kubernetes' NodeAffinity plugin: the nodes a pod may go to (its `nodeSelector`
//! and its required node affinity, both of which a node must satisfy) and the
//! nodes it prefers (the summed weights of the preferred terms a node matches).

use berth_api::objects::NodeSelector;
use berth_api::persistent_volumes::node_selector_matches;

use super::{NodeInfo, PodRequest};

/// Kubernetes' reason for a node that fails a pod's `nodeSelector` or required
/// node affinity.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether the node satisfies the pod's `nodeSelector` and the terms of its
/// `requiredDuringSchedulingIgnoredDuringExecution` (any term; within a term,
/// every expression and field).
pub fn matches(pod: &PodRequest, node: &NodeInfo) -> bool {
    let selector_matches = pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v));
    selector_matches && required(pod).is_none_or(|required| node_selector_matches(required, &node.name, &node.labels))
}

fn required(pod: &PodRequest) -> Option<&NodeSelector> {
    pod.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// The summed weights of the pod's preferred terms the node matches (a term
/// without expressions or fields matches no node).
pub fn preferred_weight(pod: &PodRequest, node: &NodeInfo) -> i64 {
    let Some(preferred) = pod
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())
    else {
        return 0;
    };
    preferred
        .iter()
        .filter(|term| {
            let selector = NodeSelector {
                node_selector_terms: vec![term.preference.clone()],
            };
            node_selector_matches(&selector, &node.name, &node.labels)
        })
        .map(|term| i64::from(term.weight))
        .sum()
}

#[cfg(test)]
#[path = "node_affinity_tests.rs"]
mod tests;
