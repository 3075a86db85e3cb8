//! A pass's writes to the pods it placed or could not place, queued in group
//! commits (berth-client's `Group`; [`GROUPS`] of them, a pod's writes always in the
//! same) as the pass goes and settled at its end: many pods' binds and explanations
//! go to the store in one transaction each batch, each compared with what the pass
//! read, each with its own outcome.
//!
//! ```text
//!  place ─► queue_bind: txn(pod rv, node rv, fence) ─┐      settle: bound ─► Scheduled event,
//!        ─► queue_unschedulable: txn(pod rv, fence) ─┼─ group ─►       assumed on its node
//!        ─► made (a bind with claims, alone) ────────┘              explained ─► FailedScheduling
//!                                                                   lost a race ─► look again soon
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use berth_api::meta::MetaExt;
use berth_api::objects::{Node, Pod};
use berth_client::events::{EventType, Recorder, reference};
use berth_client::kv::{Group, KvError};
use berth_client::registry::encode;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign};

use super::{Assumed, bound, marked_unschedulable};
use crate::PodRequest;

type Outcome = Pin<Box<dyn Future<Output = Result<Option<i64>, KvError>> + Send>>;

/// How many group committers a scheduler writes through. Each has one transaction
/// in flight; several let one batch's commit overlap the next one's (a pass places
/// thousands of pods, and a transaction holds at most 128 compares).
const GROUPS: usize = 4;

/// The scheduler's group committers; a pod's writes always go through the same
/// one (by its key), so they stay in order.
pub struct Groups(Vec<Group>);

impl Groups {
    pub fn new(ctx: &Context) -> Groups {
        Groups((0..GROUPS).map(|_| ctx.registry.kv.group()).collect())
    }

    fn of(&self, pod: &Pod) -> &Group {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (pod.metadata.namespace(), pod.metadata.name()).hash(&mut hasher);
        &self.0[hasher.finish() as usize % self.0.len()]
    }
}

/// A write about `pod`, made or queued: its outcome (the revision, or `None`
/// after a benign race), and what follows when it lands.
pub struct Queued<'a> {
    pod: &'a Pod,
    then: Then,
    outcome: Outcome,
}

enum Then {
    /// The pod was bound to `node` with `request`.
    Bound { node: String, request: Box<PodRequest> },
    /// The pod was marked unschedulable with `message`.
    Explained { message: String },
}

/// Queues the bind of `pod` to `node`, made if neither changed since read (and the
/// fence holds).
pub fn queue_bind<'a>(ctx: &Context, groups: &Groups, pod: &'a Pod, node: &Node, request: PodRequest) -> Queued<'a> {
    let then = Then::Bound {
        node: node.metadata.name().to_string(),
        request: Box::new(request),
    };
    let (Ok(pod_version), Ok(node_version)) = (
        pod.metadata.resource_version().parse::<i64>(),
        node.metadata.resource_version().parse::<i64>(),
    ) else {
        return Queued {
            pod,
            then,
            outcome: Box::pin(std::future::ready(Ok(None))),
        };
    };
    let node_key = node.key();
    let written = groups.of(pod).update_if(
        &pod.key(),
        encode(&bound(pod, node.metadata.name())),
        pod_version,
        &[(node_key.as_str(), node_version)],
        ctx.fence(),
    );
    Queued {
        pod,
        then,
        outcome: Box::pin(async move { benign(written.await) }),
    }
}

/// A bind already made (with the claims waiting for the pod, in their own
/// transaction): its revision, or `None` after a benign race.
pub fn made<'a>(pod: &'a Pod, node: &Node, request: PodRequest, revision: Option<i64>) -> Queued<'a> {
    Queued {
        pod,
        then: Then::Bound {
            node: node.metadata.name().to_string(),
            request: Box::new(request),
        },
        outcome: Box::pin(std::future::ready(Ok(revision))),
    }
}

/// Queues the scheduler's explanation (`PodScheduled=False`, Unschedulable,
/// `message`) on a pod, unless it already says so.
pub fn queue_unschedulable<'a>(ctx: &Context, groups: &Groups, pod: &'a Pod, message: String) -> Option<Queued<'a>> {
    let marked = marked_unschedulable(pod, &message)?;
    let version = pod.metadata.resource_version().parse::<i64>().ok()?;
    tracing::info!(pod = %pod.key(), reason = "Unschedulable", %message, "not scheduled");
    let written = groups
        .of(pod)
        .update_if(&pod.key(), encode(&marked), version, &[], ctx.fence());
    Some(Queued {
        pod,
        then: Then::Explained { message },
        outcome: Box::pin(async move { benign(written.await) }),
    })
}

/// Waits for every queued write: a pod bound gets its `Scheduled` event and is
/// assumed on its node, a pod explained its `FailedScheduling` event; a write that
/// lost a race asks for the pass to run again soon (the pod or its node changed:
/// it is looked at again). The first error (`Fenced`, the store failing) ends the
/// pass, after the others are settled. Also how many pods were bound.
pub async fn settle(
    queued: Vec<Queued<'_>>,
    recorder: &Recorder,
    assumed: &Mutex<BTreeMap<String, Assumed>>,
) -> (Result<Requeue, KvError>, usize) {
    let mut requeue = None;
    let mut error = None;
    let mut bound = 0;
    for Queued { pod, then, outcome } in queued {
        let revision = match outcome.await {
            Ok(Some(revision)) => revision,
            Ok(None) => {
                requeue = Some(RETRY_SOON);
                continue;
            }
            Err(e) => {
                error.get_or_insert(e);
                continue;
            }
        };
        match then {
            Then::Bound { node, request } => {
                bound += 1;
                tracing::debug!(pod = %pod.key(), %node, "bound");
                let message = format!(
                    "Successfully assigned {}/{} to {node}",
                    pod.metadata.namespace(),
                    pod.metadata.name()
                );
                recorder.emit(reference(pod), EventType::Normal, "Scheduled", message);
                let assumed_pod = Assumed {
                    node,
                    request: *request,
                    revision,
                };
                assumed
                    .lock()
                    .expect("assumed pods lock")
                    .insert(pod.key(), assumed_pod);
            }
            Then::Explained { message } => {
                recorder.emit(reference(pod), EventType::Warning, "FailedScheduling", message);
            }
        }
    }
    (error.map_or(Ok(requeue), Err), bound)
}
