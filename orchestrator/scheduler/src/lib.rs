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

pub use filter::{FILTERS, Filter};
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

/// Picks a node for `pod`, or says why none fits.
pub fn schedule(pod: &PodRequest, nodes: &[NodeInfo], strategy: Strategy) -> Result<String, Unschedulable> {
    let mut rejections: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut fits = Vec::new();
    // The filters that look at other nodes' pods count them once for this pod.
    let spread = topology_spread::TopologySpread::new(pod, nodes);
    let inter_pod = pod_affinity::InterPodAffinity::new(pod, nodes);
    for node in nodes {
        let rejection = FILTERS
            .iter()
            .find_map(|f| f.check(pod, node).err())
            .or_else(|| spread.check(pod, node).err())
            .or_else(|| inter_pod.check(pod, node).err());
        match rejection {
            Some(reason) => *rejections.entry(reason).or_default() += 1,
            None => fits.push(node),
        }
    }
    let scores = score::scores(pod, &fits, nodes, strategy);
    let best = fits.iter().zip(scores).max_by(|(a, sa), (b, sb)| {
        // Equal scores: the name decides, so the choice is deterministic.
        sa.cmp(sb).then_with(|| b.name.cmp(&a.name))
    });
    match best {
        Some((node, _)) => Ok(node.name.clone()),
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
