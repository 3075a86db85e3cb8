//! Node lifecycle: a node whose heartbeat key (`/berth/heartbeats/<node>`, attached
//! to the agent's lease) is absent is marked `Ready=False` (`NodeStatusUnknown`) and
//! its pods' `Ready` condition is set to False, terminating ones included, as
//! Kubernetes' MarkPodsNotReady does, so that they leave their Services' endpoints
//! (ready and serving alike); once it has been absent for longer
//! than the grace period the pods bound to it are deleted at once (grace 0: nobody is
//! there to stop them gracefully), terminating ones included, so their ReplicaSets
//! replace them elsewhere. The lost node counts, from then, as tainted
//! `node.kubernetes.io/unreachable:NoExecute`: a pod that tolerates that taint stays
//! its `tolerationSeconds` longer, or for good without them (the taint eviction
//! controller, taint_eviction.rs, evicts for the taints nodes carry).
//!
//! The Node carries those taints, as Kubernetes' node lifecycle controller writes
//! them, so that `kubectl describe node` shows why nothing runs there:
//! `node.kubernetes.io/unreachable:NoSchedule` with the NotReady mark, and
//! `node.kubernetes.io/unreachable:NoExecute` once the node is lost; both are taken
//! off once its heartbeat is back and its agent has written `Ready=True` again.
//!
//! An agent that reaches the cluster through the API server heartbeats with a
//! `coordination.k8s.io` Lease instead (`kube-node-lease/<node>`, renewed every
//! quarter of its duration, as the kubelet's): one not seen renewed within the grace
//! period (or its own duration, if longer: its agent fences itself only then)
//! counts as an absent heartbeat from then on (so its node is marked at once,
//! and its pods move another grace period later), and the marks are written only
//! while the Lease is still as seen (the txn compares its revision too). A node
//! created less than the grace period ago whose heartbeat has not been seen yet
//! is left alone until then, as Kubernetes counts a new node's grace from its
//! creation: its Lease may simply not have reached this informer yet.
//!
//! The key goes when the agent's lease expires, that is at most the lease's TTL
//! (the agent's `--lease-ttl`, 10 s by default) after its last heartbeat, and the
//! agent has stopped its workloads by then (it fences itself): so a dead node's pods
//! are not ready within 10 s by default, below Kubernetes' 40 s grace, and move
//! another grace period (`--node-monitor-grace-period`, 10 s) later.
//!
//! The grace period counts from when this leader first saw the heartbeat absent
//! (a new leader waits a full period: it cannot know how long the key was gone).
//! When the heartbeat returns, the agent itself writes `Ready=True` as it registers
//! (and its pods' statuses as it runs them again); this controller does nothing
//! then. The marks are written only while the heartbeat key is still absent (the
//! txn compares it), so they can never land after the returning agent's own status.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::WALK_SPACING;
use berth_api::conditions::{Condition, condition, is_pod_ready, is_true, set_condition};
use berth_api::kinds::lease::{LEASE, NODE_LEASE_NAMESPACE};
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, NodeCondition, NodeSpec, Pod, PodCondition, PodSpec, Taint, key};
use berth_api::time;
use berth_api::tolerations::{NO_EXECUTE, no_execute_stay};

/// The taint effect that keeps new pods off.
const NO_SCHEDULE: &str = "NoSchedule";
use berth_client::events::{EventType, reference};
use berth_client::kv::KvError;
use berth_client::registry::encode;
use berth_controller_runtime::informer::{HEARTBEAT_PREFIX, HeartbeatSnapshot};
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive_spaced, sooner};

pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// The event on each pod of a node marked NotReady, as Kubernetes' node controller
/// records it.
pub const POD_MESSAGE_NOT_READY: &str = "Node is not ready";

/// What the lost nodes need.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    /// Nodes without heartbeat to mark `Ready=False` and taint unreachable
    /// (NoSchedule), where they are not yet.
    pub mark: Vec<String>,
    /// Lost nodes to taint unreachable (NoExecute), where they are not yet.
    pub lost: Vec<String>,
    /// Nodes back (heartbeat live, `Ready=True`) that still carry unreachable taints.
    pub untaint: Vec<String>,
    /// Ready pods (terminating or not) on nodes without a heartbeat, to mark not
    /// ready, as (namespace, name).
    pub unready: Vec<(String, String)>,
    /// Pods bound to lost nodes, as (namespace, name).
    pub evict: Vec<(String, String)>,
    /// When a node that is absent but not yet lost will be.
    pub next_check: Option<Duration>,
}

/// Whether a node already carries the mark.
pub fn is_marked_unknown(node: &Node) -> bool {
    let conditions = node.status.conditions.as_deref().unwrap_or_default();
    condition(conditions, "Ready").is_some_and(|c| c.status() == "False" && c.reason() == REASON_UNKNOWN)
}

/// How much longer `node`, created less than `grace` before `now`, counts as new.
fn new_for(node: &Node, now: SystemTime, grace: Duration) -> Option<Duration> {
    let created = berth_api::time::to_system_time(node.metadata.creation_timestamp.as_ref()?);
    let age = now.duration_since(created).unwrap_or_default();
    grace.checked_sub(age).filter(|left| !left.is_zero())
}

/// Which nodes are lost at `now` and what to do about them. A node is lost once its
/// heartbeat has been absent for `grace`; pods are evicted from lost node names
/// whether or not a Node object exists for them. Pure.
pub fn assess<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    pods: impl IntoIterator<Item = &'a Pod>,
    heartbeats: &HeartbeatSnapshot,
    now: Instant,
    grace: Duration,
) -> Assessment {
    let mut next_check = heartbeats.next_lapse(now, grace);
    // How long each node's heartbeat has been absent (None: it is not), looked up
    // once per node: a pass goes over every pod, and most are on live nodes.
    let mut absence: HashMap<&str, Option<Duration>> = HashMap::new();
    // A node created within the grace period whose heartbeat has not been seen yet
    // is new, not silent (Kubernetes counts a node's grace from its creation until
    // its first heartbeat): thousands of nodes registering at once are seen before
    // their Leases by an informer that lags. `new_until`: when the first of them
    // turns silent.
    let mut new_until: Option<Duration> = None;
    let wall_now = SystemTime::now();
    let mut absent_for = |name: &'a str, node: Option<&Node>| -> Option<Duration> {
        *absence.entry(name).or_insert_with(|| {
            let since = heartbeats.absent_since_at(name, now, grace)?;
            if let Some(left) = node.and_then(|node| new_for(node, wall_now, grace)) {
                new_until = sooner(new_until, Some(left));
                return None;
            }
            Some(now.saturating_duration_since(since))
        })
    };
    let (mut mark, mut lost, mut untaint) = (Vec::new(), Vec::new(), Vec::new());
    for node in nodes {
        let name = node.metadata.name();
        match absent_for(name, Some(node)) {
            Some(absent) => {
                if !is_marked_unknown(node) || !has_unreachable_taint(node, NO_SCHEDULE) {
                    mark.push(name.to_string());
                }
                if absent >= grace && !has_unreachable_taint(node, NO_EXECUTE) {
                    lost.push(name.to_string());
                }
            }
            None if is_true(node.status.conditions.as_ref(), "Ready") && has_unreachable_taint(node, "") => {
                untaint.push(name.to_string())
            }
            None => {}
        }
    }
    let mut unready = Vec::new();
    let mut evict = Vec::new();
    for pod in pods {
        let node = pod.spec.node_name.as_deref().unwrap_or_default();
        if node.is_empty() {
            continue;
        }
        // Nodes were looked up above; a name without a Node is never new.
        let Some(absent) = absent_for(node, None) else {
            continue;
        };
        let id = || (pod.metadata.namespace().to_string(), pod.metadata.name().to_string());
        // Terminating pods too, both ways: no agent will finish their deletion
        // (Kubernetes' pod GC force-deletes them), and a terminating pod left Ready
        // would stay `serving` in its EndpointSlices, where a proxy's fallback to
        // serving-terminating endpoints could pick it (Kubernetes' MarkPodsNotReady
        // marks every pod of the node).
        // A lost node is `node.kubernetes.io/unreachable:NoExecute` to its pods:
        // one that tolerates it stays its tolerationSeconds (forever without).
        if absent < grace {
            next_check = sooner(next_check, Some(grace - absent));
        }
        let lost_for = absent.checked_sub(grace);
        let stay = lost_for.map(|lost| (lost, no_execute_stay(tolerations(pod), &[unreachable()])));
        match stay {
            Some((lost, Some(stay))) if lost >= stay => evict.push(id()),
            Some((lost, Some(stay))) => {
                next_check = sooner(next_check, Some(stay - lost));
                if is_pod_ready(pod) {
                    unready.push(id());
                }
            }
            _ if is_pod_ready(pod) => unready.push(id()),
            _ => {}
        }
    }
    Assessment {
        mark,
        lost,
        untaint,
        unready,
        evict,
        next_check: sooner(next_check, new_until),
    }
}

/// The taint Kubernetes puts on a node whose agent stopped posting its status.
pub const UNREACHABLE_TAINT: &str = berth_api::tolerations::UNREACHABLE;

fn unreachable() -> Taint {
    Taint {
        key: UNREACHABLE_TAINT.into(),
        effect: NO_EXECUTE.into(),
        ..Default::default()
    }
}

/// Whether the node carries the unreachable taint with `effect` (any effect: empty).
fn has_unreachable_taint(node: &Node, effect: &str) -> bool {
    (node.spec.taints.iter().flatten()).any(|t| t.key == UNREACHABLE_TAINT && (effect.is_empty() || t.effect == effect))
}

fn tolerations(pod: &Pod) -> &[berth_api::objects::Toleration] {
    pod.spec.tolerations.as_deref().unwrap_or_default()
}

/// The pod with its Ready condition set to False (its reason and message kept, as
/// Kubernetes' MarkPodsNotReady keeps them).
pub fn marked_not_ready(pod: &Pod) -> Pod {
    let mut pod = pod.clone();
    let conditions = pod.status.conditions.get_or_insert_default();
    let (reason, message) = condition(conditions, "Ready")
        .map(|c| (c.reason().to_string(), c.message().to_string()))
        .unwrap_or_default();
    set_condition(
        conditions,
        PodCondition::new("Ready", "False", &reason, &message),
        &time::now(),
    );
    pod
}

/// The node with its Ready condition set to False / NodeStatusUnknown (where it
/// is not yet: its transition time stays) and tainted
/// `node.kubernetes.io/unreachable:NoSchedule`, and `:NoExecute` too when `lost`
/// (each taint added once, stamped with the time it was added).
pub fn marked_unknown(node: &Node, lost: bool) -> Node {
    let mut node = node.clone();
    let now = time::now();
    if !is_marked_unknown(&node) {
        set_condition(
            node.status.conditions.get_or_insert_default(),
            NodeCondition::new("Ready", "False", REASON_UNKNOWN, MESSAGE_UNKNOWN),
            &now,
        );
    }
    let effects: &[&str] = if lost {
        &[NO_SCHEDULE, NO_EXECUTE]
    } else {
        &[NO_SCHEDULE]
    };
    for effect in effects {
        if !has_unreachable_taint(&node, effect) {
            node.spec.taints.get_or_insert_default().push(Taint {
                key: UNREACHABLE_TAINT.into(),
                effect: effect.to_string(),
                time_added: Some(now.clone()),
                ..Default::default()
            });
        }
    }
    node
}

/// The node without its unreachable taints (its other taints kept).
pub fn untainted(node: &Node) -> Node {
    let mut node = node.clone();
    if let Some(taints) = &mut node.spec.taints {
        taints.retain(|t| t.key != UNREACHABLE_TAINT);
    }
    node
}

/// Runs the node lifecycle controller until fenced.
pub async fn run(ctx: Context, grace: Duration, resync: Duration) {
    ctx.caches.nodes.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    ctx.caches.heartbeats.wait_synced().await;
    let triggers = vec![
        ctx.caches.nodes.subscribe(),
        ctx.caches.pods.subscribe(),
        ctx.caches.heartbeats.subscribe(),
    ];
    drive_spaced("node-lifecycle", triggers, resync, WALK_SPACING, || pass(&ctx, grace)).await;
}

async fn pass(ctx: &Context, grace: Duration) -> Result<Requeue, KvError> {
    let nodes = ctx.caches.nodes.snapshot();
    let pods = ctx.caches.pods.snapshot();
    let heartbeats = ctx.caches.heartbeats.snapshot();
    let assessment = assess(nodes.iter(), pods.iter(), &heartbeats, Instant::now(), grace);
    let mut requeue = assessment.next_check;
    let absent: BTreeSet<&String> = assessment.mark.iter().chain(&assessment.lost).collect();
    for name in absent {
        let node_key = key::<NodeSpec>("", name);
        let Some(node) = nodes.get(&node_key) else { continue };
        let Ok(version) = node.metadata.resource_version().parse::<i64>() else {
            continue;
        };
        let lost = assessment.lost.contains(name);
        let newly_unknown = !is_marked_unknown(node);
        if newly_unknown {
            tracing::warn!(node = %name, "its heartbeat lease expired: marking the node NotReady");
        }
        if lost {
            tracing::warn!(node = %name, "the node is lost: tainting it {UNREACHABLE_TAINT}:{NO_EXECUTE}");
        }
        let written = ctx
            .registry
            .kv
            .update_if(
                &node_key,
                encode(&marked_unknown(node, lost)),
                version,
                &still_absent(&heartbeats, name).compares(),
                ctx.fence(),
            )
            .await;
        if benign(written)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
        } else if newly_unknown {
            ctx.recorder("node-controller").emit(
                reference(node),
                EventType::Normal,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
        }
    }
    for name in &assessment.untaint {
        let node_key = key::<NodeSpec>("", name);
        let Some(node) = nodes.get(&node_key) else { continue };
        let Ok(version) = node.metadata.resource_version().parse::<i64>() else {
            continue;
        };
        tracing::info!(node = %name, "the node is back: removing its {UNREACHABLE_TAINT} taints");
        let written = (ctx.registry.kv)
            .update(&node_key, encode(&untainted(node)), version, ctx.fence())
            .await;
        if benign(written)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
        }
    }
    for (namespace, name) in &assessment.unready {
        let pod_key = key::<PodSpec>(namespace, name);
        let Some(pod) = pods.get(&pod_key) else { continue };
        let (Ok(version), Some(node)) = (
            pod.metadata.resource_version().parse::<i64>(),
            pod.spec.node_name.as_deref(),
        ) else {
            continue;
        };
        let written = ctx
            .registry
            .kv
            .update_if(
                &pod_key,
                encode(&marked_not_ready(pod)),
                version,
                &still_absent(&heartbeats, node).compares(),
                ctx.fence(),
            )
            .await;
        if benign(written)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
        } else {
            ctx.recorder("node-controller").emit(
                reference(pod),
                EventType::Warning,
                "NodeNotReady",
                POD_MESSAGE_NOT_READY.to_string(),
            );
        }
    }
    for (namespace, name) in &assessment.evict {
        tracing::warn!(pod = %format!("{namespace}/{name}"), "evicting a pod from a lost node");
        benign(ctx.registry.delete::<PodSpec>(namespace, name, None, ctx.fence()).await)?;
    }
    Ok(requeue)
}

/// What a mark's txn compares: the heartbeat key still absent (mod_revision 0)
/// and the node's Lease, if it has one, still at the revision seen.
struct StillAbsent {
    heartbeat: String,
    lease: Option<(String, i64)>,
}

impl StillAbsent {
    fn compares(&self) -> Vec<(&str, i64)> {
        let mut compares = vec![(self.heartbeat.as_str(), 0)];
        compares.extend(self.lease.as_ref().map(|(key, revision)| (key.as_str(), *revision)));
        compares
    }
}

fn still_absent(heartbeats: &HeartbeatSnapshot, node: &str) -> StillAbsent {
    StillAbsent {
        heartbeat: format!("{HEARTBEAT_PREFIX}{node}"),
        lease: (heartbeats.leases.get(node)).map(|lease| (LEASE.key(NODE_LEASE_NAMESPACE, node), lease.mod_revision)),
    }
}

#[cfg(test)]
#[path = "node_lifecycle_tests.rs"]
mod tests;
