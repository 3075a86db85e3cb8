//! The scheduler's core: a pure function from a snapshot of nodes and a pod to a
//! placement, or to an explanation of why no node fits ("0/2 nodes available: 1
//! insufficient memory, 1 not ready"). The binding transaction that commits a
//! placement (comparing the revisions the snapshot was read at) is the caller's.
//!
//! ```text
//!  pod ──► filters (ready, schedulable, selector, taints, host ports, resources)
//!              │ nodes that pass                       │ rejections, counted by reason
//!              ▼                                        ▼
//!          score (spread | bin-pack) ──► best node   "0/N nodes available: …"
//! ```

mod filter;
pub mod run;
mod snapshot;

pub use filter::{FILTERS, Filter};
pub use snapshot::{NodeInfo, PodRequest};

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
    let best = fits.into_iter().max_by(|a, b| {
        let (sa, sb) = (score(pod, a, strategy), score(pod, b, strategy));
        // Equal scores: the name decides, so the choice is deterministic.
        sa.total_cmp(&sb).then_with(|| b.name.cmp(&a.name))
    });
    match best {
        Some(node) => Ok(node.name.clone()),
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

/// The fraction of the node that would be free after placing the pod (spread) or
/// used (bin-pack), averaged over CPU and memory.
fn score(pod: &PodRequest, node: &NodeInfo, strategy: Strategy) -> f64 {
    let fraction = |used: u64, request: u64, capacity: u64| {
        if capacity == 0 {
            1.0
        } else {
            (used + request) as f64 / capacity as f64
        }
    };
    let used = (fraction(node.used_cpu_millis, pod.cpu_millis, node.allocatable_cpu_millis)
        + fraction(node.used_memory_bytes, pod.memory_bytes, node.allocatable_memory_bytes))
        / 2.0;
    match strategy {
        Strategy::Spread => 1.0 - used,
        Strategy::BinPack => used,
    }
}

#[cfg(test)]
mod tests;
