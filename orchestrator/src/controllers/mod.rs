//! The leader's controllers: each turns the cached state of the cluster into the
//! writes that move it toward what the user asked for.
//!
//! ```text
//!  informers (pods, nodes, replicasets, deployments, heartbeats)
//!        │ "something changed" (coalesced)     resync tick      requeue-after
//!        ▼                                         │                 │
//!  drive: wait for the caches to sync ─► pass ◄────┴─────────────────┘
//!                                         │ pure: snapshot → actions
//!                                         ▼
//!                               fenced writes into the store
//! ```
//!
//! Level-triggered (kube-rs, swarmkit): a pass looks at every object of its kind and
//! is not told why it runs; a full pass at start (events may have been lost across
//! a leader change), on every resync tick, and after every change of a cache it
//! reads. Every write carries the leadership fence; `Conflict`, `AlreadyExists` and
//! `NotFound` only mean the cache was behind, so the pass asks to look again soon;
//! `Fenced` ends the controller (the leader loop then returns).

pub mod deployment;
pub mod gc;
pub mod node_lifecycle;
pub mod replicaset;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::meta::{ObjectMeta, OwnerReference};
use crate::api::objects::{Condition, DeploymentSpec, NodeSpec, Pod, PodSpec, ReplicaSetSpec, Resource, Spec};
use crate::informer::{Heartbeats, Informer};
use crate::kv::{Fence, Kv, KvError};
use crate::registry::Registry;

/// How soon a pass that met a benign race (the cache was behind) runs again.
pub const RETRY_SOON: Duration = Duration::from_millis(200);
/// How soon a pass that failed on the store runs again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Every informer the controllers and the scheduler read.
#[derive(Clone)]
pub struct Caches {
    pub pods: Informer<PodSpec>,
    pub nodes: Informer<NodeSpec>,
    pub replica_sets: Informer<ReplicaSetSpec>,
    pub deployments: Informer<DeploymentSpec>,
    pub heartbeats: Heartbeats,
}

impl Caches {
    pub fn start(kv: &Kv) -> Caches {
        Caches {
            pods: Informer::start(kv.clone()),
            nodes: Informer::start(kv.clone()),
            replica_sets: Informer::start(kv.clone()),
            deployments: Informer::start(kv.clone()),
            heartbeats: Heartbeats::start(kv.clone()),
        }
    }

    /// Waits until every cache has applied its first list.
    pub async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.nodes.wait_synced().await;
        self.replica_sets.wait_synced().await;
        self.deployments.wait_synced().await;
        self.heartbeats.wait_synced().await;
    }
}

/// What every controller gets: the store, the caches and the leadership fence.
#[derive(Clone)]
pub struct Context {
    pub registry: Registry,
    pub caches: Caches,
    pub fence: Fence,
}

impl Context {
    pub fn fence(&self) -> Option<&Fence> {
        Some(&self.fence)
    }
}

/// The outcome of one write inside a pass: `Ok(Some(_))` done, `Ok(None)` a benign
/// race (look again soon), `Err` ends the pass (`Fenced`, or the store failing).
pub fn benign<T>(result: Result<T, KvError>) -> Result<Option<T>, KvError> {
    match result {
        Ok(t) => Ok(Some(t)),
        Err(KvError::Conflict { .. } | KvError::AlreadyExists | KvError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a pass asks for: to run again after a delay even without events (`None`:
/// only on events and resync ticks).
pub type Requeue = Option<Duration>;

/// The earlier of two requeues.
pub fn sooner(a: Requeue, b: Requeue) -> Requeue {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs `pass` at start, after every change of `triggers`, on every `resync` tick
/// and when a pass asks to be requeued. Returns only when a pass fails with
/// `Fenced`.
pub async fn drive<F, Fut>(name: &'static str, mut triggers: Vec<watch::Receiver<u64>>, resync: Duration, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Requeue, KvError>>,
{
    let mut next_resync = Instant::now() + resync;
    loop {
        // Seen before the pass: a change during the pass wakes the next one.
        for trigger in &mut triggers {
            trigger.borrow_and_update();
        }
        let requeue = match pass().await {
            Ok(requeue) => requeue,
            Err(KvError::Fenced) => {
                tracing::info!(controller = name, "fenced: another leader took over");
                return;
            }
            Err(e) => {
                tracing::warn!(controller = name, error = %e, "pass failed; retrying");
                Some(RETRY_AFTER_ERROR)
            }
        };
        let deadline = match requeue {
            Some(after) => next_resync.min(Instant::now() + after),
            None => next_resync,
        };
        tokio::select! {
            () = changed_any(&mut triggers) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
        if Instant::now() >= next_resync {
            next_resync = Instant::now() + resync;
        }
    }
}

/// Resolves when any receiver sees a change; never, if there are none (or all
/// senders are gone).
async fn changed_any(triggers: &mut [watch::Receiver<u64>]) {
    let waits: Vec<_> = triggers
        .iter_mut()
        .filter(|t| t.has_changed().is_ok())
        .map(|t| Box::pin(t.changed()))
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    let (result, _, _) = futures::future::select_all(waits).await;
    if result.is_err() {
        // A sender went away (the informers are shutting down): don't spin.
        std::future::pending::<()>().await;
    }
}

/// The owner reference a controller puts on what it creates.
pub fn controller_ref<S: Spec>(owner: &Resource<S>) -> OwnerReference {
    OwnerReference {
        api_version: S::API_VERSION.to_string(),
        kind: S::KIND.to_string(),
        name: owner.metadata.name.clone(),
        uid: owner.metadata.uid.clone(),
        controller: Some(true),
    }
}

/// The managing owner of an object (the reference with `controller: true`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().find(|r| r.controller == Some(true))
}

/// Whether `meta`'s controller is the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    !uid.is_empty() && controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// Ended for good: `Succeeded` or `Failed`.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.phase.as_str(), "Succeeded" | "Failed")
}

/// Counts toward a ReplicaSet: not ended and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    condition(&pod.status.conditions, "Ready").is_some_and(|c| c.status == "True")
}

/// Sets a condition (keeping its lastTransitionTime when the status is unchanged);
/// returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &str) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status && old.reason == new.reason && old.message == new.message {
                return false;
            }
            new.last_transition_time = if old.status == new.status && !old.last_transition_time.is_empty() {
                old.last_transition_time.clone()
            } else {
                now.to_string()
            };
            *old = new;
            true
        }
        None => {
            new.last_transition_time = now.to_string();
            conditions.push(new);
            true
        }
    }
}

/// Kubernetes' alphabet for generated name suffixes: lowercase letters and digits
/// without vowels and look-alikes, so suffixes never spell words.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` random characters for a generated name (`<replicaset>-<suffix>`).
pub fn random_suffix(n: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut bits = h.finish();
    (0..n)
        .map(|_| {
            let c = SUFFIX_ALPHABET[(bits % SUFFIX_ALPHABET.len() as u64) as usize];
            bits /= SUFFIX_ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn controller_refs_are_found_by_uid() {
        let mut meta = ObjectMeta::default();
        assert!(controller_of(&meta).is_none());
        meta.owner_references.push(OwnerReference {
            kind: "Deployment".into(),
            uid: "u1".into(),
            controller: None,
            ..Default::default()
        });
        assert!(!is_controlled_by(&meta, "u1"), "an owner that is not the controller");
        meta.owner_references.push(OwnerReference {
            kind: "ReplicaSet".into(),
            uid: "u2".into(),
            controller: Some(true),
            ..Default::default()
        });
        assert!(is_controlled_by(&meta, "u2"));
        assert!(!is_controlled_by(&meta, ""));
        assert_eq!(controller_of(&meta).unwrap().kind, "ReplicaSet");
    }

    #[test]
    fn conditions_keep_their_transition_time_when_only_the_message_changes() {
        let mut conditions = Vec::new();
        let c = |status: &str, message: &str| Condition {
            type_: "PodScheduled".into(),
            status: status.into(),
            message: message.into(),
            ..Default::default()
        };
        assert!(set_condition(&mut conditions, c("False", "a"), "t1"));
        assert!(!set_condition(&mut conditions, c("False", "a"), "t2"));
        assert!(set_condition(&mut conditions, c("False", "b"), "t3"));
        assert_eq!(conditions[0].last_transition_time, "t1");
        assert!(set_condition(&mut conditions, c("True", ""), "t4"));
        assert_eq!(conditions[0].last_transition_time, "t4");
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn suffixes_are_short_lowercase_and_vary() {
        let a = random_suffix(5);
        assert_eq!(a.len(), 5);
        assert!(a.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)), "{a}");
        let distinct: std::collections::BTreeSet<String> = (0..50).map(|_| random_suffix(5)).collect();
        assert!(distinct.len() > 45, "{distinct:?}");
    }
}
