//! Node lifecycle: a node whose heartbeat key (`/berth/heartbeats/<node>`, attached
//! to the agent's lease) has been absent for longer than the grace period is marked
//! `Ready=False` (`NodeStatusUnknown`) and the pods bound to it are deleted at once
//! (grace 0: nobody is there to stop them gracefully), terminating ones included, so
//! their ReplicaSets replace them elsewhere.
//!
//! The grace period counts from when this leader first saw the heartbeat absent
//! (a new leader waits a full period: it cannot know how long the key was gone).
//! When the heartbeat returns, the agent itself writes `Ready=True` as it registers;
//! this controller does nothing then. The mark is written only while the heartbeat
//! key is still absent (the txn compares it), so it can never land after the
//! returning agent's own status.

use std::time::Duration;

use tokio::time::Instant;

use berth_api::conditions::{Condition, condition, set_condition};
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, NodeCondition, NodeSpec, Pod, PodSpec, key};
use berth_api::time;
use berth_client::events::{EventType, reference};
use berth_client::kv::KvError;
use berth_client::registry::encode;
use berth_controller_runtime::informer::{HEARTBEAT_PREFIX, HeartbeatSnapshot};
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";

/// What the lost nodes need.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    /// Nodes to mark `Ready=False`.
    pub mark: Vec<String>,
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
    let mut next_check = None;
    let mut is_lost = |name: &str| -> bool {
        let Some(since) = heartbeats.absent_since(name) else {
            return false;
        };
        let absent = now.saturating_duration_since(since);
        if absent < grace {
            next_check = sooner(next_check, Some(grace - absent));
        }
        absent >= grace
    };
    let mark = nodes
        .into_iter()
        .filter(|node| is_lost(node.metadata.name()) && !is_marked_unknown(node))
        .map(|node| node.metadata.name().to_string())
        .collect();
    let evict = pods
        .into_iter()
        .filter(|pod| {
            let node = pod.spec.node_name.as_deref().unwrap_or_default();
            // Terminating pods too: no agent will finish their deletion (Kubernetes'
            // pod GC force-deletes them).
            !node.is_empty() && is_lost(node)
        })
        .map(|pod| (pod.metadata.namespace().to_string(), pod.metadata.name().to_string()))
        .collect();
    Assessment {
        mark,
        evict,
        next_check,
    }
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
    drive("node-lifecycle", triggers, resync, || pass(&ctx, grace)).await;
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
        tracing::warn!(node = %name, grace_ms = grace.as_millis() as u64, "no heartbeat within the grace period: marking the node NotReady");
        let heartbeat = format!("{HEARTBEAT_PREFIX}{name}");
        let written = ctx
            .registry
            .kv
            .update_if(
                &node_key,
                encode(&marked_unknown(node)),
                version,
                // Only while the heartbeat is still absent (mod_revision 0).
                &[(heartbeat.as_str(), 0)],
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
    for (namespace, name) in &assessment.evict {
        tracing::warn!(pod = %format!("{namespace}/{name}"), "evicting a pod from a lost node");
        benign(ctx.registry.delete::<PodSpec>(namespace, name, None, ctx.fence()).await)?;
    }
    Ok(requeue)
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

    #[test]
    fn a_node_is_lost_only_after_the_grace_period_counted_from_first_absence() {
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
        let pods = [pod("a", "alive"), pod("g", "gone"), pod("n", "never"), pod("u", "")];

        let early = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(9), grace);
        assert!(early.mark.is_empty() && early.evict.is_empty(), "{early:?}");
        assert_eq!(early.next_check, Some(Duration::from_secs(1)), "'never' is lost in 1 s");

        let later = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(11), grace);
        assert_eq!(later.mark, ["never"]);
        assert_eq!(later.evict, [("default".to_string(), "n".to_string())]);
        assert_eq!(
            later.next_check,
            Some(Duration::from_secs(4)),
            "'gone' is lost at t0 + 15 s"
        );

        let all = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(15), grace);
        assert_eq!(all.mark, ["gone", "never"]);
        assert_eq!(all.evict.len(), 2);
        assert_eq!(all.next_check, None);
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
}
