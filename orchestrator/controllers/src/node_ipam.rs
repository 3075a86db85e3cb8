//! Node IPAM: gives each Node without `spec.podCIDR` the lowest free block of
//! `--node-cidr-mask-size` bits from `--cluster-cidr` (Kubernetes' range allocator),
//! writing `spec.podCIDR` and `spec.podCIDRs`. The agent on that node builds its pod
//! bridge over the block, and every other agent routes the block to the node.
//!
//! Never twice: the blocks in use are derived from the Nodes in the cache, so a new
//! leader (or a restarted one) knows them from its first list. A block this leader
//! has written but its cache has not seen yet is kept as "assumed" until the cache
//! reaches the write's revision: without that, a pass on a stale cache could hand
//! the same block to a node it had not seen at the first pass. A Node that is
//! deleted frees its block. Each write is conditional on the Node's resourceVersion
//! (an agent's status write in between makes it retry) and fenced like every write
//! of the leader.
//!
//! A node whose podCIDR lies outside the cluster CIDR (set by hand) keeps it; its
//! block still counts as used where it overlaps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use berth_api::cidr::Ipv4Cidr;
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, NodeSpec, key};
use berth_client::events::{EventType, reference};
use berth_client::kv::KvError;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

/// Kubernetes' event reason when the cluster CIDR has no block left.
pub const REASON_CIDR_NOT_AVAILABLE: &str = "CIDRNotAvailable";

/// How the control plane carves the cluster CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIpamSettings {
    /// `--cluster-cidr` (default 10.244.0.0/16, as kubeadm's flannel set-ups use).
    pub cluster_cidr: Ipv4Cidr,
    /// `--node-cidr-mask-size` (default 24: 254 pods a node).
    pub node_cidr_mask_size: u8,
}

impl Default for NodeIpamSettings {
    fn default() -> Self {
        NodeIpamSettings {
            cluster_cidr: "10.244.0.0/16".parse().expect("a valid CIDR"),
            node_cidr_mask_size: 24,
        }
    }
}

impl NodeIpamSettings {
    /// Refuses a mask size the cluster CIDR cannot be carved by (kube-controller-manager
    /// refuses the same at start), or that leaves no room for pods.
    pub fn validate(&self) -> Result<(), String> {
        let mask = self.node_cidr_mask_size;
        if mask < self.cluster_cidr.prefix_len() || mask > 30 {
            return Err(format!(
                "--node-cidr-mask-size {mask}: must be between the cluster CIDR's prefix length ({}) and 30",
                self.cluster_cidr.prefix_len()
            ));
        }
        Ok(())
    }
}

/// What the nodes without a block need.
#[derive(Debug, Default, PartialEq)]
pub struct Allocation {
    /// (node name, its new block), in node name order.
    pub assign: Vec<(String, Ipv4Cidr)>,
    /// Nodes left without a block: the cluster CIDR is full.
    pub exhausted: Vec<String>,
}

/// The blocks a node holds (`podCIDRs`, whose first is `podCIDR`, or the single
/// `podCIDR` alone); unparsable ones are ignored (they block nothing, and the agent
/// refuses them itself).
pub fn node_cidrs(node: &Node) -> Vec<Ipv4Cidr> {
    let listed = node.spec.pod_cidrs.as_deref().unwrap_or_default();
    let blocks: Vec<&String> = if listed.is_empty() {
        node.spec.pod_cidr.iter().collect()
    } else {
        listed.iter().collect()
    };
    blocks.into_iter().filter_map(|c| c.parse().ok()).collect()
}

/// Which block each node without one gets: the lowest block that overlaps neither a
/// node's block nor an `assumed` one. `assumed` pairs a node with the block written
/// to it: that node (shown without a block by a cache that has not seen the write
/// yet) gets nothing new, so a stale pass neither skips a block nor hands out a
/// second one. Pure.
pub fn allocate<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    assumed: impl IntoIterator<Item = (String, Ipv4Cidr)>,
    settings: &NodeIpamSettings,
) -> Allocation {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let (assigned, assumed_blocks): (Vec<String>, Vec<Ipv4Cidr>) = assumed.into_iter().unzip();
    let mut used: Vec<Ipv4Cidr> = nodes.iter().flat_map(|n| node_cidrs(n)).chain(assumed_blocks).collect();
    let mask = settings.node_cidr_mask_size;
    let count = settings.cluster_cidr.subnet_count(mask).unwrap_or(0);
    let mut next = 0u32;
    let mut allocation = Allocation::default();
    let mut wanting: Vec<&Node> = nodes
        .into_iter()
        .filter(|n| node_cidrs(n).is_empty() && !n.metadata.is_deleting())
        .filter(|n| !assigned.iter().any(|name| name == n.metadata.name()))
        .collect();
    wanting.sort_by(|a, b| a.metadata.name().cmp(b.metadata.name()));
    for node in wanting {
        let free = (next..count)
            .filter_map(|i| settings.cluster_cidr.subnet(mask, i).map(|c| (i, c)))
            .find(|(_, candidate)| !used.iter().any(|u| u.overlaps(candidate)));
        match free {
            Some((index, block)) => {
                used.push(block);
                next = index + 1;
                allocation.assign.push((node.metadata.name().to_string(), block));
            }
            None => {
                next = count;
                allocation.exhausted.push(node.metadata.name().to_string());
            }
        }
    }
    allocation
}

/// The node with `block` as its pod CIDR.
pub fn with_pod_cidr(node: &Node, block: Ipv4Cidr) -> Node {
    let mut node = node.clone();
    node.spec.pod_cidr = Some(block.to_string());
    node.spec.pod_cidrs = Some(vec![block.to_string()]);
    node
}

/// Blocks written by this leader that its cache may not show yet: the node each
/// went to and the revision of the write.
#[derive(Default)]
struct Assumed(Mutex<BTreeMap<Ipv4Cidr, (String, i64)>>);

impl Assumed {
    /// The (node, block) pairs still assumed once the cache is at `revision`.
    fn current(&self, revision: i64) -> Vec<(String, Ipv4Cidr)> {
        let mut assumed = self.0.lock().expect("assumed blocks lock");
        assumed.retain(|_, (_, written)| *written > revision);
        assumed
            .iter()
            .map(|(block, (node, _))| (node.clone(), *block))
            .collect()
    }

    fn insert(&self, node: &str, block: Ipv4Cidr, revision: i64) {
        self.0
            .lock()
            .expect("assumed blocks lock")
            .insert(block, (node.to_string(), revision));
    }
}

/// Runs node IPAM until fenced.
pub async fn run(ctx: Context, settings: NodeIpamSettings, resync: Duration) {
    ctx.caches.nodes.wait_synced().await;
    let assumed = Assumed::default();
    let reported = Mutex::new(BTreeSet::new());
    let triggers = vec![ctx.caches.nodes.subscribe()];
    drive("node-ipam", triggers, resync, || {
        pass(&ctx, &settings, &assumed, &reported)
    })
    .await;
}

/// `reported`: the nodes already told there is no block for them (once each, as
/// Kubernetes' allocator records it when it fails, not on every pass).
async fn pass(
    ctx: &Context,
    settings: &NodeIpamSettings,
    assumed: &Assumed,
    reported: &Mutex<BTreeSet<String>>,
) -> Result<Requeue, KvError> {
    let nodes = ctx.caches.nodes.snapshot();
    let allocation = allocate(nodes.iter(), assumed.current(nodes.revision), settings);
    let mut requeue = None;
    for (name, block) in &allocation.assign {
        let Some(node) = nodes.get(&key::<NodeSpec>("", name)) else {
            continue;
        };
        match benign(ctx.registry.update(&with_pod_cidr(node, *block), ctx.fence()).await)? {
            Some(written) => {
                let revision = written.metadata.resource_version().parse().unwrap_or(i64::MAX);
                assumed.insert(name, *block, revision);
                // Logged, not an event: Kubernetes' allocator records only failures.
                tracing::info!(node = %name, pod_cidr = %block, "assigned the node's pod CIDR");
            }
            // The node changed (its agent wrote its status): look again.
            None => requeue = sooner(requeue, Some(RETRY_SOON)),
        }
    }
    let newly_exhausted: Vec<&String> = {
        let exhausted: BTreeSet<&String> = allocation.exhausted.iter().collect();
        let mut reported = reported.lock().expect("reported nodes lock");
        reported.retain(|name| exhausted.contains(name));
        (allocation.exhausted.iter())
            .filter(|name| reported.insert(name.to_string()))
            .collect()
    };
    for name in newly_exhausted {
        let Some(node) = nodes.get(&key::<NodeSpec>("", name)) else {
            continue;
        };
        tracing::warn!(node = %name, cluster_cidr = %settings.cluster_cidr, "no pod CIDR left for the node");
        ctx.recorder("cidrAllocator").emit(
            reference(node),
            EventType::Normal,
            REASON_CIDR_NOT_AVAILABLE,
            format!("Node {name} status is now: {REASON_CIDR_NOT_AVAILABLE}"),
        );
    }
    Ok(requeue)
}

#[cfg(test)]
#[path = "node_ipam_tests.rs"]
mod tests;
