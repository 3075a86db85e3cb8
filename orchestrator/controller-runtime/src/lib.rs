//! The loop runtime the leader's controllers and the scheduler share: informers
//! (local caches kept by list-then-watch), the [`Caches`] they read, and [`drive`],
//! which runs a level-triggered pass whenever something it reads changed.
//!
//! ```text
//!  informers (pods, nodes, replicasets, deployments, statefulsets, services, heartbeats)
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
//! `Fenced` ends the loop (the leader loop then returns).

pub mod informer;

use std::sync::Arc;

use berth_client::events::{EventLeases, Recorder};
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use berth_api::kinds::service::ServiceSpec;
use berth_api::objects::{DeploymentSpec, NodeSpec, PodSpec, ReplicaSetSpec, StatefulSetSpec};
use berth_client::kv::{Fence, Kv, KvError};
use berth_client::registry::Registry;

use crate::informer::{Heartbeats, Informer};

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
    pub stateful_sets: Informer<StatefulSetSpec>,
    /// Read by the EndpointSlice controller, and by the scheduler for the default
    /// topology spread of the pods a Service selects.
    pub services: Informer<ServiceSpec>,
    pub heartbeats: Heartbeats,
}

impl Caches {
    pub fn start(kv: &Kv) -> Caches {
        Caches {
            pods: Informer::start(kv.clone()),
            nodes: Informer::start(kv.clone()),
            replica_sets: Informer::start(kv.clone()),
            deployments: Informer::start(kv.clone()),
            stateful_sets: Informer::start(kv.clone()),
            services: Informer::start(kv.clone()),
            heartbeats: Heartbeats::start(kv.clone()),
        }
    }

    /// Waits until every cache has applied its first list.
    pub async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.nodes.wait_synced().await;
        self.replica_sets.wait_synced().await;
        self.deployments.wait_synced().await;
        self.stateful_sets.wait_synced().await;
        self.services.wait_synced().await;
        self.heartbeats.wait_synced().await;
    }
}

/// What every controller gets: the store, the caches and the leadership fence.
#[derive(Clone)]
pub struct Context {
    pub registry: Registry,
    pub caches: Caches,
    pub fence: Fence,
    /// The leases the loops' events share.
    pub events: Arc<EventLeases>,
    /// What the pods and claims the controllers create are admitted by (Pod
    /// Security's default level), as the API server admits its creates.
    pub admission: berth_client::admission::Admission,
}

impl Context {
    pub fn fence(&self) -> Option<&Fence> {
        Some(&self.fence)
    }

    /// What a loop records its events with, as `component` (`default-scheduler`,
    /// `deployment-controller`).
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder::with_leases(self.registry.kv.clone(), component, "", self.events.clone())
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
pub async fn drive<F, Fut>(name: &'static str, triggers: Vec<watch::Receiver<u64>>, resync: Duration, pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Requeue, KvError>>,
{
    drive_spaced(name, triggers, resync, Duration::ZERO, pass).await
}

/// [`drive`], with passes that changes start at least `min_spacing` apart: for
/// loops that walk every pod but act only on what time or rare events bring (a
/// lost node, an orphan), which a stream of changes elsewhere (thousands of pods
/// bound and started, every node's Lease renewed) would otherwise run over and
/// over for nothing. (A change that comes first may hold a requeue the pass asked
/// for back by as much.)
pub async fn drive_spaced<F, Fut>(
    name: &'static str,
    mut triggers: Vec<watch::Receiver<u64>>,
    resync: Duration,
    min_spacing: Duration,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Requeue, KvError>>,
{
    let mut next_resync = Instant::now() + resync;
    loop {
        // Seen before the pass: a change during the pass wakes the next one.
        for trigger in &mut triggers {
            trigger.borrow_and_update();
        }
        let started = Instant::now();
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
        let ended = Instant::now();
        tokio::select! {
            () = changed_any(&mut triggers) => {
                // Changes that keep coming wait out the pass's spacing, so they are
                // taken in batches.
                tokio::time::sleep_until(ended + spacing(ended - started).max(min_spacing)).await;
            }
            () = tokio::time::sleep_until(deadline) => {}
        }
        if Instant::now() >= next_resync {
            next_resync = Instant::now() + resync;
        }
    }
}

/// How long after a pass that took `cost` a change may start the next one: a few
/// times the cost, at most a second. A pass walks its whole cache (level-triggered),
/// so under a stream of changes (thousands of pods created one after another) a
/// loop that ran again at once would spend its core walking the same objects over
/// and over; spaced, it takes at most a quarter of one and sees the changes in
/// batches. Cheap passes (a small cluster's) are not held back measurably.
fn spacing(cost: Duration) -> Duration {
    (cost * 3).min(Duration::from_secs(1))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_spaced_by_a_few_times_their_cost_up_to_a_second() {
        assert_eq!(spacing(Duration::ZERO), Duration::ZERO);
        assert_eq!(spacing(Duration::from_millis(20)), Duration::from_millis(60));
        assert_eq!(spacing(Duration::from_secs(2)), Duration::from_secs(1));
    }

    /// Passes of at least 20 ms under a change every 2 ms: each pass is followed by
    /// at least three times its cost before a change starts the next, so a cycle
    /// lasts at least 80 ms however slow the machine (delays only lengthen it);
    /// back to back, passes would come every 20 ms.
    #[tokio::test]
    async fn a_stream_of_changes_is_taken_in_batches() {
        let (changes, trigger) = watch::channel(0u64);
        let passes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = passes.clone();
        let looping = drive("test", vec![trigger], Duration::from_secs(3600), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(None)
            }
        });
        let started = Instant::now();
        let writer = async {
            for i in 1..=200 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                changes.send_replace(i);
            }
        };
        tokio::select! {
            () = looping => panic!("the loop ended"),
            () = writer => {}
        }
        let cycles = started.elapsed().as_millis() / 80;
        let passes = u128::from(passes.load(std::sync::atomic::Ordering::SeqCst));
        assert!(passes >= 2, "the changes started no pass after the first");
        assert!(passes <= cycles + 2, "{passes} passes in {cycles} cycles of 80 ms");
    }
}
