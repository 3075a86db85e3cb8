//! Taint eviction, as Kubernetes' TaintEvictionController: a pod bound to a node
//! with a `NoExecute` taint it does not tolerate is deleted, gracefully (its own
//! grace period), with the `DisruptionTarget` condition (`DeletionByTaintManager`)
//! and a `TaintManagerEviction` event; one that tolerates every such taint stays
//! for the shortest `tolerationSeconds` among the tolerations it uses, counted from
//! when this leader first saw it so (a new leader starts the count again), and
//! forever when none states seconds. A taint removed, or a toleration added, in
//! time cancels the eviction (with the event Kubernetes gives).
//!
//! ```text
//!  nodes' NoExecute taints × their pods' tolerations ──► stay (tolerations.rs)
//!     ZERO ──► evict now      N s ──► evict N s after first seen      forever ──► nothing
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::WALK_SPACING;
use berth_api::conditions::{Condition, is_terminal, set_condition};
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, Pod, PodCondition, PodSpec, key};
use berth_api::time::now;
use berth_api::tolerations::{NO_EXECUTE, no_execute_stay};
use berth_client::events::{EventType, reference};
use berth_client::graceful::delete_pod;
use berth_client::kv::KvError;
use berth_controller_runtime::{Context, Requeue, benign, drive_spaced};

/// The component its events name, as Kubernetes' controller manager runs it.
const COMPONENT: &str = "taint-eviction-controller";

/// What the tainted nodes' pods need.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    /// Pods to delete now, as (namespace, name).
    pub evict: Vec<(String, String)>,
    /// Pods that tolerate their node's taints for a while: since when they have,
    /// by pod key (the memory of the next pass).
    pub waiting: BTreeMap<String, Instant>,
    /// Pods that were waiting and no longer are (a taint or the pod went, or a
    /// toleration now keeps it forever), as (namespace, name).
    pub cancelled: Vec<(String, String)>,
    /// When the next waiting pod is due.
    pub next_check: Option<Duration>,
}

/// Which pods go at `now`, given since when each waiting pod has been waiting
/// (`waiting`, the previous pass's). Pods being deleted or ended are left. Pure.
pub fn assess<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    pods: impl IntoIterator<Item = &'a Pod>,
    waiting: &BTreeMap<String, Instant>,
    now: Instant,
) -> Assessment {
    let taints: BTreeMap<&str, &[berth_api::objects::Taint]> = nodes
        .into_iter()
        .filter_map(|n| {
            let taints = n.spec.taints.as_deref()?;
            taints
                .iter()
                .any(|t| t.effect == NO_EXECUTE)
                .then_some((n.metadata.name(), taints))
        })
        .collect();
    let mut assessment = Assessment::default();
    // Most clusters taint no node: then a pod's change costs no walk over every pod.
    if taints.is_empty() && waiting.is_empty() {
        return assessment;
    }
    let mut still_waiting = Vec::new();
    for pod in pods {
        if pod.metadata.is_deleting() || is_terminal(pod) {
            continue;
        }
        let node = pod.spec.node_name.as_deref().unwrap_or_default();
        let Some(taints) = taints.get(node) else { continue };
        let tolerations = pod.spec.tolerations.as_deref().unwrap_or_default();
        let Some(stay) = no_execute_stay(tolerations, taints) else {
            continue;
        };
        let id = (pod.metadata.namespace().to_string(), pod.metadata.name().to_string());
        let pod_key = pod.key();
        let since = waiting.get(&pod_key).copied().unwrap_or(now);
        let due = since + stay;
        if due <= now {
            assessment.evict.push(id);
        } else {
            let left = due - now;
            assessment.next_check = Some(assessment.next_check.map_or(left, |n: Duration| n.min(left)));
            assessment.waiting.insert(pod_key.clone(), since);
        }
        still_waiting.push(pod_key);
    }
    for gone in waiting.keys().filter(|k| !still_waiting.contains(k)) {
        // The store key ends in `<namespace>/<name>`.
        let mut parts = gone.rsplitn(3, '/');
        if let (Some(name), Some(namespace)) = (parts.next(), parts.next()) {
            assessment.cancelled.push((namespace.to_string(), name.to_string()));
        }
    }
    assessment
}

/// Runs the taint eviction controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.nodes.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    let triggers = vec![ctx.caches.nodes.subscribe(), ctx.caches.pods.subscribe()];
    let waiting = Mutex::new(BTreeMap::new());
    drive_spaced("taint-eviction", triggers, resync, WALK_SPACING, || {
        pass(&ctx, &waiting)
    })
    .await;
}

async fn pass(ctx: &Context, waiting: &Mutex<BTreeMap<String, Instant>>) -> Result<Requeue, KvError> {
    let nodes = ctx.caches.nodes.snapshot();
    let pods = ctx.caches.pods.snapshot();
    // Only this loop's task uses `waiting`; the lock is never held across an await.
    let assessment = {
        let mut waiting = waiting.lock().expect("taint eviction lock");
        let assessment = assess(nodes.iter(), pods.iter(), &waiting, Instant::now());
        *waiting = assessment.waiting.clone();
        assessment
    };
    let recorder = ctx.recorder(COMPONENT);
    for (namespace, name) in &assessment.cancelled {
        if let Some(pod) = pods.get(&key::<PodSpec>(namespace, name)) {
            recorder.emit(
                reference(pod),
                EventType::Normal,
                "TaintManagerEviction",
                format!("Cancelling deletion of Pod {namespace}/{name}"),
            );
        }
    }
    for (namespace, name) in &assessment.evict {
        let Some(pod) = pods.get(&key::<PodSpec>(namespace, name)) else {
            continue;
        };
        let node = pod.spec.node_name.as_deref().unwrap_or_default();
        tracing::info!(pod = %format!("{namespace}/{name}"), %node, "evicting a pod for a NoExecute taint");
        let mut marked = pod.clone();
        let changed = set_condition(
            marked.status.conditions.get_or_insert_default(),
            PodCondition::new(
                "DisruptionTarget",
                "True",
                "DeletionByTaintManager",
                "Taint manager: deleting due to NoExecute taint",
            ),
            &now(),
        );
        if changed && benign(ctx.registry.update(&marked, ctx.fence()).await)?.is_none() {
            // The pod changed meanwhile: the next pass (woken by that change) decides again.
            continue;
        }
        match delete_pod(&ctx.registry, namespace, name, None, ctx.fence()).await {
            Ok(_) | Err(KvError::NotFound) => {}
            Err(e) => {
                benign::<Pod>(Err(e))?;
            }
        }
        recorder.emit(
            reference(pod),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {namespace}/{name}"),
        );
    }
    Ok(assessment.next_check)
}

#[cfg(test)]
#[path = "taint_eviction_tests.rs"]
mod tests;
