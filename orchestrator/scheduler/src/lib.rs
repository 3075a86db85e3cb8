//! The scheduler's core: a pure function from a snapshot of nodes and a pod to a
//! placement, or to an explanation of why no node fits ("0/2 nodes are available:
//! 1 Insufficient memory, 1 node(s) were not ready."). The binding transaction that commits a
//! placement (comparing the revisions the snapshot was read at) is the caller's.
//!
//! ```text
//!  pod ──► filters (ready, schedulable, node affinity (node_affinity.rs), taints,
//!          runtime handler, volume binding (volumes.rs reads the pod's claims first),
//!          host ports, resources; then, counted over every node, topology spread
//!          (topology_spread.rs) and inter-pod affinity (pod_affinity.rs))
//!              │ nodes that pass                       │ rejections, counted by reason
//!              ▼                                        ▼
//!          score (score.rs: resources with non-zero     "0/N nodes are available: …."
//!                 defaults, least | most allocated;
//!                 topology spread, the pod's own or
//!                 the default one of the pods of a
//!                 ReplicaSet or a Service; preferred
//!                 node and pod affinity;
//!                 PreferNoSchedule taints) ──► best node
//! ```

mod filter;
mod node_affinity;
mod pod_affinity;
pub mod preemption;
pub mod run;
mod score;
mod snapshot;
mod topology_spread;
mod volumes;

pub use filter::{FILTERS, Filter, Reason};
pub use score::ZONE_LABEL;
pub use snapshot::{DEFAULT_CPU_MILLIS, DEFAULT_MEMORY_BYTES, NodeInfo, PlacedPod, PodRequest, WaitingClaim};

use std::collections::BTreeMap;

/// How to choose among the nodes that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The least allocated node first (Kubernetes' default).
    #[default]
    Spread,
    /// The most allocated node that still fits (pack nodes full).
    BinPack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub message: String,
}

/// Below this many nodes every node is filtered and scored (kube-scheduler's
/// `minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES: usize = 100;
/// The least share of the nodes a search looks for, in percent
/// (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_PERCENT: usize = 5;

/// How many fitting nodes the search for one pod stops at, as kube-scheduler's
/// adaptive `percentageOfNodesToScore`: every node below 100; then 50 % less one
/// point per 125 nodes, at least 5 % and at least 100 nodes (500 of 5000 nodes).
/// A search that finds fewer looks at every node.
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES {
        return all;
    }
    let percent = 50usize.saturating_sub(all / 125).max(MIN_FEASIBLE_PERCENT);
    (all * percent / 100).max(MIN_FEASIBLE_NODES)
}

/// A placement, and how many nodes its search looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    pub examined: usize,
}

/// Picks a node for `pod`, or says why none fits.
pub fn schedule(pod: &PodRequest, nodes: &[NodeInfo], strategy: Strategy) -> Result<String, Unschedulable> {
    schedule_from(pod, nodes, strategy, 0).map(|p| p.node)
}

/// [`schedule`], filtering the nodes from `start` round the list and stopping once
/// [`feasible_nodes_to_find`] fit, as kube-scheduler does: the caller starts the
/// next pod's search where this one stopped (`start + examined`), so that searches
/// go round every node. The filters that count over other nodes' pods (topology
/// spread, inter-pod affinity) still count every node; a pod that fits nowhere has
/// every node's reason.
pub fn schedule_from(
    pod: &PodRequest,
    nodes: &[NodeInfo],
    strategy: Strategy,
    start: usize,
) -> Result<Placement, Unschedulable> {
    let mut rejections: BTreeMap<Reason, usize> = BTreeMap::new();
    let mut fits = Vec::new();
    // Where each fitting node is in `nodes` (what sibling counts are indexed by).
    let mut positions = Vec::new();
    // The filters that look at other nodes' pods count them once for this pod.
    let spread = topology_spread::TopologySpread::new(pod, nodes);
    let inter_pod = pod_affinity::InterPodAffinity::new(pod, nodes);
    let wanted = feasible_nodes_to_find(nodes.len());
    let mut examined = 0;
    for i in 0..nodes.len() {
        let position = (start + i) % nodes.len();
        let node = &nodes[position];
        examined = i + 1;
        let rejection = FILTERS
            .iter()
            .find_map(|f| f.check(pod, node).err())
            .or_else(|| spread.check(pod, node).err().map(Reason::from))
            .or_else(|| inter_pod.check(pod, node).err().map(Reason::from));
        match rejection {
            Some(reason) => *rejections.entry(reason).or_default() += 1,
            None => {
                fits.push(node);
                positions.push(position);
            }
        }
        if fits.len() >= wanted {
            break;
        }
    }
    let scores = score::scores(pod, &fits, &positions, nodes, strategy);
    let best = fits.iter().zip(scores).max_by(|(a, sa), (b, sb)| {
        // Equal scores: the name decides, so the choice is deterministic.
        sa.cmp(sb).then_with(|| b.name.cmp(&a.name))
    });
    match best {
        Some((node, _)) => Ok(Placement {
            node: node.name.clone(),
            examined,
        }),
        None => {
            // As kube-scheduler words it: the reasons sorted, each with its count.
            let mut reasons: Vec<String> = rejections.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
            reasons.sort();
            let mut message = format!("0/{} nodes are available", nodes.len());
            if !reasons.is_empty() {
                message.push_str(": ");
                message.push_str(&reasons.join(", "));
            }
            message.push('.');
            Err(Unschedulable { message })
        }
    }
}

#[cfg(test)]
mod tests;
