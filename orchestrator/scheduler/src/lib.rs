//! The scheduler's core: a pure function from a snapshot of nodes and a pod to a
//! placement, or to an explanation of why no node fits ("0/2 nodes available: 1
//! insufficient memory, 1 not ready"). The binding transaction that commits a
//! placement (comparing the revisions the snapshot was read at) is the caller's.
//!
//! ```text
//!  pod ──► filters (ready, schedulable, selector, taints, runtime handler, volume
//!          binding (volumes.rs reads the pod's claims first), host ports, resources)
//!              │ nodes that pass                       │ rejections, counted by reason
//!              ▼                                        ▼
//!          score (score.rs: resources with non-zero     "0/N nodes available: …"
//!                 defaults, least | most allocated;
//!                 default topology spread of the
//!                 pods of a ReplicaSet or a
//!                 Service) ──► best node
//! ```

mod filter;
pub mod preemption;
pub mod run;
mod score;
mod snapshot;
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
    for node in nodes {
        match FILTERS.iter().find_map(|f| f.check(pod, node).err()) {
            Some(reason) => *rejections.entry(reason).or_default() += 1,
            None => fits.push(node),
        }
    }
    let scores = score::scores(pod, &fits, strategy);
    let best = fits.iter().zip(scores).max_by(|(a, sa), (b, sb)| {
        // Equal scores: the name decides, so the choice is deterministic.
        sa.cmp(sb).then_with(|| b.name.cmp(&a.name))
    });
    match best {
        Some((node, _)) => Ok(node.name.clone()),
        None => {
            let reasons: Vec<String> = rejections.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
            let mut message = format!("0/{} nodes available", nodes.len());
            if !reasons.is_empty() {
                message.push_str(": ");
                message.push_str(&reasons.join(", "));
            }
            Err(Unschedulable { message })
        }
    }
}

#[cfg(test)]
mod tests;
