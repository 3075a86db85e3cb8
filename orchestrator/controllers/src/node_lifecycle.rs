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
//! An agent that reaches the cluster through the API server heartbeats with a
//! `coordination.k8s.io` Lease instead (`kube-node-lease/<node>`, renewed every
//! quarter of its duration, as the kubelet's): one not seen renewed within the grace
//! period (or its own duration, if longer: its agent fences itself only then)
//! counts as an absent heartbeat from then on (so its node is marked at once,
//! and its pods move another grace period later), and the marks are written only
//! while the Lease is still as seen (the txn compares its revision too).
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

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::WALK_SPACING;
use berth_api::conditions::{Condition, condition, set_condition};
use berth_api::kinds::lease::{LEASE, NODE_LEASE_NAMESPACE};
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, NodeCondition, NodeSpec, Pod, PodCondition, PodSpec, Taint, key};
use berth_api::time;
use berth_api::tolerations::{NO_EXECUTE, no_execute_stay};
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
    /// Nodes to mark `Ready=False`.
    pub mark: Vec<String>,
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
    let mut absent_for = |name: &'a str| -> Option<Duration> {
        *absence.entry(name).or_insert_with(|| {
            let since = heartbeats.absent_since_at(name, now, grace)?;
            Some(now.saturating_duration_since(since))
        })
    };
    let mark = nodes
        .into_iter()
        .filter(|node| absent_for(node.metadata.name()).is_some() && !is_marked_unknown(node))
        .map(|node| node.metadata.name().to_string())
        .collect();
    let mut unready = Vec::new();
    let mut evict = Vec::new();
    for pod in pods {
        let node = pod.spec.node_name.as_deref().unwrap_or_default();
        if node.is_empty() {
            continue;
        }
        let Some(absent) = absent_for(node) else {
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
        unready,
        evict,
        next_check,
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

fn tolerations(pod: &Pod) -> &[berth_api::objects::Toleration] {
    pod.spec.tolerations.as_deref().unwrap_or_default()
}

fn is_pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.conditions.as_deref().unwrap_or_default();
    condition(conditions, "Ready").is_some_and(|c| c.status() == "True")
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

/// The node with its Ready condition set to False / NodeStatusUnknown.
pub fn marked_unknown(node: &Node) -> Node {
    let mut node = node.clone();
    set_condition(
        node.status.conditions.get_or_insert_default(),
        NodeCondition::new("Ready", "False", REASON_UNKNOWN, MESSAGE_UNKNOWN),
        &time::now(),
    );
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
    for name in &assessment.mark {
        let node_key = key::<NodeSpec>("", name);
        let Some(node) = nodes.get(&node_key) else { continue };
        let Ok(version) = node.metadata.resource_version().parse::<i64>() else {
            continue;
        };
        tracing::warn!(node = %name, "its heartbeat lease expired: marking the node NotReady");
        let written = ctx
            .registry
            .kv
            .update_if(
                &node_key,
                encode(&marked_unknown(node)),
                version,
                &still_absent(&heartbeats, name).compares(),
                ctx.fence(),
            )
            .await;
        if benign(written)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
        } else {
            ctx.recorder("node-controller").emit(
                reference(node),
                EventType::Normal,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
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
mod tests {
    use super::*;
    use berth_api::meta::ObjectMeta;
    use berth_api::objects::Resource;

    fn node(name: &str, ready: &str, reason: &str) -> Node {
        let mut node = Resource::new(
            ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            NodeSpec::default(),
        );
        node.status
            .conditions
            .get_or_insert_default()
            .push(NodeCondition::new("Ready", ready, reason, ""));
        node
    }

    fn pod(name: &str, node: &str) -> Pod {
        let mut pod = Resource::new(
            ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            PodSpec::default(),
        );
        pod.spec.node_name = Some(node.into());
        pod
    }

    fn ready(mut pod: Pod) -> Pod {
        pod.status.conditions = Some(vec![PodCondition::new("Ready", "True", "", "")]);
        pod
    }

    #[test]
    fn a_node_without_heartbeat_is_not_ready_at_once_and_lost_after_the_grace_period() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let mut heartbeats = HeartbeatSnapshot {
            synced_at: Some(t0),
            ..Default::default()
        };
        heartbeats.live.insert("alive".into(), t0);
        heartbeats.gone.insert("gone".into(), t0 + Duration::from_secs(5));
        let nodes = [
            node("alive", "True", ""),
            node("gone", "True", ""),
            node("never", "True", ""),
        ];
        let pods = [
            ready(pod("a", "alive")),
            ready(pod("g", "gone")),
            pod("g-unready", "gone"),
            ready(pod("n", "never")),
            pod("u", ""),
        ];

        // Its lease expired: the node and its ready pods are marked, nothing moves yet.
        let early = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(9), grace);
        assert_eq!(early.mark, ["gone", "never"]);
        assert_eq!(
            early.unready,
            [
                ("default".to_string(), "g".to_string()),
                ("default".to_string(), "n".to_string())
            ]
        );
        assert!(early.evict.is_empty(), "{early:?}");
        assert_eq!(early.next_check, Some(Duration::from_secs(1)), "'never' is lost in 1 s");

        let later = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(11), grace);
        assert_eq!(later.evict, [("default".to_string(), "n".to_string())]);
        assert_eq!(later.unready, [("default".to_string(), "g".to_string())]);
        assert_eq!(
            later.next_check,
            Some(Duration::from_secs(4)),
            "'gone' is lost at t0 + 15 s"
        );

        let all = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(15), grace);
        assert_eq!(all.evict.len(), 3);
        assert!(all.unready.is_empty());
        assert_eq!(all.next_check, None);
    }

    #[test]
    fn a_node_lease_not_renewed_within_the_grace_period_is_a_missed_heartbeat() {
        use berth_controller_runtime::informer::node_leases::NodeLease;
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let mut heartbeats = HeartbeatSnapshot {
            synced_at: Some(t0),
            leases_synced: true,
            ..Default::default()
        };
        heartbeats.leases.insert(
            "api".into(),
            NodeLease {
                renewed: t0 + Duration::from_secs(2),
                renew_time: Some("2026-01-02T03:04:05.000000Z".into()),
                duration: Duration::from_secs(10),
                mod_revision: 7,
            },
        );
        let nodes = [node("api", "True", "")];
        let pods = [ready(pod("p", "api"))];

        let fresh = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(11), grace);
        assert!(fresh.mark.is_empty() && fresh.unready.is_empty(), "{fresh:?}");
        assert_eq!(fresh.next_check, Some(Duration::from_secs(1)), "it lapses at t0 + 12 s");
        assert!(heartbeats.is_live_at("api", t0 + Duration::from_secs(11)));

        let lapsed = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(12), grace);
        assert_eq!(lapsed.mark, ["api"]);
        assert_eq!(lapsed.unready, [("default".to_string(), "p".to_string())]);
        assert!(lapsed.evict.is_empty());
        assert_eq!(lapsed.next_check, Some(grace), "lost a grace period after the lapse");
        assert!(!heartbeats.is_live_at("api", t0 + Duration::from_secs(12)));

        let lost = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(22), grace);
        assert_eq!(lost.evict, [("default".to_string(), "p".to_string())]);
        assert_eq!(
            still_absent(&heartbeats, "api").compares(),
            [
                ("/berth/heartbeats/api", 0),
                ("/registry/leases/kube-node-lease/api", 7)
            ]
        );

        // A Lease longer than the grace period lapses only after its duration (its
        // agent renews it every quarter of that, and fences itself after it).
        let mut long = heartbeats.clone();
        long.leases.get_mut("api").unwrap().duration = Duration::from_secs(30);
        let within = assess(&nodes, &pods, &long, t0 + Duration::from_secs(22), grace);
        assert!(within.mark.is_empty(), "{within:?}");
        assert_eq!(within.next_check, Some(Duration::from_secs(10)));
        let after = assess(&nodes, &pods, &long, t0 + Duration::from_secs(32), grace);
        assert_eq!(after.mark, ["api"]);

        // A live heartbeat key keeps the node whatever its Lease says.
        heartbeats.live.insert("api".into(), t0);
        let keyed = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(30), grace);
        assert!(keyed.mark.is_empty() && keyed.evict.is_empty(), "{keyed:?}");
    }

    #[test]
    fn a_pod_that_tolerates_unreachable_stays_on_a_lost_node_its_toleration_seconds() {
        use berth_api::objects::Toleration;
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let mut heartbeats = HeartbeatSnapshot {
            synced_at: Some(t0),
            ..Default::default()
        };
        heartbeats.gone.insert("gone".into(), t0);
        let tolerating = |name: &str, seconds: Option<i64>| {
            let mut pod = ready(pod(name, "gone"));
            pod.spec.tolerations = Some(vec![Toleration {
                key: Some(UNREACHABLE_TAINT.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: seconds,
                ..Default::default()
            }]);
            pod
        };
        let pods = [
            ready(pod("plain", "gone")),
            tolerating("patient", Some(20)),
            tolerating("loyal", None),
        ];
        let nodes = [node("gone", "True", "")];
        let lost = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(12), grace);
        assert_eq!(lost.evict, [("default".to_string(), "plain".to_string())]);
        assert_eq!(lost.unready.len(), 2, "the others stay, not ready: {lost:?}");
        assert_eq!(
            lost.next_check,
            Some(Duration::from_secs(18)),
            "patient goes 20 s after the loss"
        );
        let later = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(30), grace);
        assert_eq!(
            later.evict,
            [
                ("default".to_string(), "plain".to_string()),
                ("default".to_string(), "patient".to_string())
            ]
        );
        assert_eq!(later.next_check, None, "loyal stays for good");
    }

    #[test]
    fn a_pod_marked_not_ready_keeps_its_other_conditions() {
        let mut pod = ready(pod("p", "n1"));
        pod.status
            .conditions
            .get_or_insert_default()
            .push(PodCondition::new("PodScheduled", "True", "", ""));
        let marked = marked_not_ready(&pod);
        let conditions = marked.status.conditions.as_deref().unwrap();
        assert_eq!(condition(conditions, "Ready").unwrap().status(), "False");
        assert!(condition(conditions, "Ready").unwrap().last_transition_time.is_some());
        assert_eq!(condition(conditions, "PodScheduled").unwrap().status(), "True");
        assert!(!is_pod_ready(&marked));
    }

    #[test]
    fn a_marked_node_is_not_marked_again_but_its_pods_still_go() {
        let t0 = Instant::now();
        let heartbeats = HeartbeatSnapshot {
            synced_at: Some(t0),
            ..Default::default()
        };
        let marked = marked_unknown(&node("n1", "True", ""));
        assert!(is_marked_unknown(&marked));
        let ready = condition(marked.status.conditions.as_deref().unwrap(), "Ready").unwrap();
        assert_eq!(ready.message(), MESSAGE_UNKNOWN);
        assert!(ready.last_transition_time.is_some());
        let a = assess(
            [&marked],
            [&pod("p", "n1")],
            &heartbeats,
            t0 + Duration::from_secs(1),
            Duration::ZERO,
        );
        assert!(a.mark.is_empty());
        assert_eq!(a.evict.len(), 1);

        let mut terminating = pod("t", "n1");
        terminating.metadata.deletion_timestamp = Some(time::now());
        let a = assess(
            [&marked],
            [&terminating],
            &heartbeats,
            t0 + Duration::from_secs(1),
            Duration::ZERO,
        );
        assert_eq!(
            a.evict,
            [("default".to_string(), "t".to_string())],
            "no agent will finish a terminating pod of a lost node"
        );
    }

    #[test]
    fn a_terminating_pod_of_a_node_without_heartbeat_is_marked_not_ready_too() {
        let t0 = Instant::now();
        let mut heartbeats = HeartbeatSnapshot {
            synced_at: Some(t0),
            ..Default::default()
        };
        heartbeats.gone.insert("gone".into(), t0);
        let mut terminating = ready(pod("t", "gone"));
        terminating.metadata.deletion_timestamp = Some(time::now());
        let mut marked_terminating = marked_not_ready(&terminating);
        marked_terminating.metadata.name = Some("t-marked".into());
        let a = assess(
            [&node("gone", "True", "")],
            [&terminating, &marked_terminating],
            &heartbeats,
            t0 + Duration::from_secs(1),
            Duration::from_secs(10),
        );
        assert_eq!(
            a.unready,
            [("default".to_string(), "t".to_string())],
            "before the grace: marked not ready (once), not yet evicted"
        );
        assert!(a.evict.is_empty());
    }
}
