//! Scoring the nodes that fit, as Kubernetes' default plugins do, each on 0..=100:
//!
//! - resources (`NodeResourcesFit`, weight 1): the least allocated node (spread) or
//!   the most allocated (bin-pack), averaged over CPU and memory, counting a
//!   container without requests as 100m CPU and 200 MiB (the non-zero defaults), so
//!   that pods without requests weigh on a node too;
//! - spreading (`PodTopologySpread` with its system default constraints, weight 2,
//!   spread strategy only): a pod of a ReplicaSet or a Service prefers the node
//!   (hostname, maxSkew 3) and the zone (`topology.kubernetes.io/zone`, maxSkew 5)
//!   with the fewest of its siblings, the pods its spread selector matches (see
//!   `run::spread_selector`); both constraints are ScheduleAnyway, so they rank
//!   nodes and never exclude one. A pod with constraints of its own is spread by
//!   its `ScheduleAnyway` ones instead (topology_spread.rs), under either strategy;
//! - node affinity (`NodeAffinity`, weight 2): the summed weights of the preferred
//!   terms a node matches, the highest scoring 100;
//! - inter-pod affinity (`InterPodAffinity`, weight 2; pod_affinity.rs);
//! - PreferNoSchedule taints (`TaintToleration`, weight 3): the fewer a node has
//!   that the pod does not tolerate, the better.

use berth_api::meta::{LabelSelector, selector_matches};

use super::{NodeInfo, PodRequest, Strategy, filter, node_affinity, pod_affinity, topology_spread};

/// The highest score a plugin gives (Kubernetes' `MaxNodeScore`).
pub const MAX_SCORE: i64 = 100;
/// How much each plugin counts (kube-scheduler's default plugin weights).
const SPREAD_WEIGHT: i64 = 2;
const RESOURCES_WEIGHT: i64 = 1;
const NODE_AFFINITY_WEIGHT: i64 = 2;
const INTER_POD_AFFINITY_WEIGHT: i64 = 2;
const TAINT_TOLERATION_WEIGHT: i64 = 3;

/// The zone label the default zone constraint reads.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The default constraints' maxSkew: per node, per zone.
const HOSTNAME_MAX_SKEW: i64 = 3;
const ZONE_MAX_SKEW: i64 = 5;

/// Every fitting node's total score, in the order given; `positions` are where
/// each is in `nodes`, all the nodes, whose pods count for spreading and
/// inter-pod affinity.
pub fn scores(
    pod: &PodRequest,
    fits: &[&NodeInfo],
    positions: &[usize],
    nodes: &[NodeInfo],
    strategy: Strategy,
) -> Vec<i64> {
    let resources = fits
        .iter()
        .map(|node| resources(pod, node, strategy) * RESOURCES_WEIGHT);
    let spread = match (strategy, &pod.spread_selector) {
        _ if !pod.topology_spread_constraints.is_empty() => {
            topology_spread::scores(pod, fits, nodes).unwrap_or_else(|| vec![0; fits.len()])
        }
        (Strategy::Spread, Some(selector)) => spread(pod, selector, fits, positions),
        _ => vec![0; fits.len()],
    };
    let node_affinity = node_affinity_scores(pod, fits);
    let inter_pod = pod_affinity::scores(pod, fits, nodes);
    let taints = taint_scores(pod, fits);
    let mut totals: Vec<i64> = resources.zip(spread).map(|(r, s)| r + s * SPREAD_WEIGHT).collect();
    for (i, total) in totals.iter_mut().enumerate() {
        *total += node_affinity[i] * NODE_AFFINITY_WEIGHT
            + inter_pod[i] * INTER_POD_AFFINITY_WEIGHT
            + taints[i] * TAINT_TOLERATION_WEIGHT;
    }
    totals
}

/// `NodeAffinity`'s score: the preferred terms' weights a node matches, scaled so
/// the highest scores 100 (all 0 when no node matches any).
fn node_affinity_scores(pod: &PodRequest, fits: &[&NodeInfo]) -> Vec<i64> {
    let raw: Vec<i64> = fits.iter().map(|n| node_affinity::preferred_weight(pod, n)).collect();
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|s| if max > 0 { MAX_SCORE * s / max } else { 0 })
        .collect()
}

/// `TaintToleration`'s score: the PreferNoSchedule taints a node has that the pod
/// does not tolerate (by its tolerations without an effect or with
/// PreferNoSchedule), the fewest scoring 100.
fn taint_scores(pod: &PodRequest, fits: &[&NodeInfo]) -> Vec<i64> {
    let raw: Vec<i64> = fits
        .iter()
        .map(|node| {
            let preferred_not = node.taints.iter().filter(|t| t.effect == "PreferNoSchedule");
            preferred_not
                .filter(|t| !filter::tolerates(&pod.tolerations, t))
                .count() as i64
        })
        .collect();
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|s| {
            if max > 0 {
                MAX_SCORE - MAX_SCORE * s / max
            } else {
                MAX_SCORE
            }
        })
        .collect()
}

/// `NodeResourcesFit` with LeastAllocated (spread) or MostAllocated (bin-pack).
fn resources(pod: &PodRequest, node: &NodeInfo, strategy: Strategy) -> i64 {
    let one = |used: u64, request: u64, capacity: u64| -> i64 {
        let requested = (used + request) as i64;
        let capacity = capacity as i64;
        if capacity == 0 || requested > capacity {
            return 0;
        }
        match strategy {
            Strategy::Spread => (capacity - requested) * MAX_SCORE / capacity,
            Strategy::BinPack => requested * MAX_SCORE / capacity,
        }
    };
    let cpu = one(
        node.nonzero_used_cpu_millis,
        pod.nonzero_cpu_millis,
        node.allocatable_cpu_millis,
    );
    let memory = one(
        node.nonzero_used_memory_bytes,
        pod.nonzero_memory_bytes,
        node.allocatable_memory_bytes,
    );
    (cpu + memory) / 2
}

/// The pods of `namespace` on the node that `selector` matches: a pod's siblings
/// for the default spread.
pub fn siblings_on(node: &NodeInfo, namespace: &str, selector: &LabelSelector) -> usize {
    node.pods
        .iter()
        .filter(|p| p.namespace == namespace && selector_matches(selector, &p.labels))
        .count()
}

/// Each node's zone as a number, the same for nodes of one zone (in the order
/// first met); `None` for a node without the zone label.
pub fn number_zones<'a>(nodes: impl IntoIterator<Item = &'a NodeInfo>) -> Vec<Option<u32>> {
    let mut names: Vec<&str> = Vec::new();
    (nodes.into_iter())
        .map(|node| {
            let zone = node.labels.get(ZONE_LABEL)?;
            let number = match names.iter().position(|z| z == zone) {
                Some(i) => i,
                None => {
                    names.push(zone);
                    names.len() - 1
                }
            };
            Some(number as u32)
        })
        .collect()
}

/// `PodTopologySpread`'s score with the system default constraints: per node,
/// `count × ln(domains + 2) + maxSkew − 1` summed over the constraints, then
/// normalized so that the node with the fewest siblings scores 100. Runs for
/// every pod against hundreds of nodes: the counts and the zones (numbered once a
/// pass) are read by position, and each zone's total kept by its number.
fn spread(pod: &PodRequest, selector: &LabelSelector, fits: &[&NodeInfo], positions: &[usize]) -> Vec<i64> {
    let on_node: Vec<f64> = match &pod.siblings {
        Some(counted) => (positions.iter())
            .map(|&p| counted.get(p).copied().unwrap_or(0) as f64)
            .collect(),
        None => (fits.iter())
            .map(|node| siblings_on(node, &pod.namespace, selector) as f64)
            .collect(),
    };
    let zones: Vec<Option<u32>> = match &pod.zones {
        Some(numbered) => (positions.iter())
            .map(|&p| numbered.get(p).copied().flatten())
            .collect(),
        None => number_zones(fits.iter().copied()),
    };
    // Each zone's siblings, by its number, and whether a fitting node is in it.
    let size = zones.iter().flatten().max().map_or(0, |z| *z as usize + 1);
    let mut in_zone = vec![(false, 0.0f64); size];
    for (zone, count) in zones.iter().zip(&on_node) {
        if let Some(zone) = zone {
            let (seen, total) = &mut in_zone[*zone as usize];
            *seen = true;
            *total += count;
        }
    }
    let domains = in_zone.iter().filter(|(seen, _)| *seen).count();
    let weight = |domains: usize| ((domains + 2) as f64).ln();
    let (node_weight, zone_weight) = (weight(fits.len()), weight(domains));
    let raw: Vec<i64> = zones
        .iter()
        .zip(&on_node)
        .map(|(zone, count)| {
            let mut score = count * node_weight + (HOSTNAME_MAX_SKEW - 1) as f64;
            if let Some(zone) = zone {
                score += in_zone[*zone as usize].1 * zone_weight + (ZONE_MAX_SKEW - 1) as f64;
            }
            score.round() as i64
        })
        .collect();
    let (min, max) = (
        raw.iter().copied().min().unwrap_or(0),
        raw.iter().copied().max().unwrap_or(0),
    );
    raw.iter()
        .map(|s| {
            if max == 0 {
                MAX_SCORE
            } else {
                MAX_SCORE * (max + min - s) / max
            }
        })
        .collect()
}
