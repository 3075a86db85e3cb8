//! Leadership of the control loops: the leadership record, and the loops that run
//! while it is ours.
//!
//! The record is the key `/berth/leader` with the value `"{term:020} {name}"` (the
//! zero-padded term first, so byte order is term order). [`claim`] writes it only
//! over an absent record or one of a smaller term, and returns a [`Fence`] on the
//! write's mod_revision; every write of the controllers and the scheduler compares
//! it, so once a newer leader has claimed, a deposed leader's late writes fail with
//! `Fenced` instead of racing the new leader's.
//!
//! ```text
//!  Raft leader at term T ──► claim(T) ──► fence ──► run_while_leader
//!                                                    │ informers + controllers + scheduler
//!                                                    ▼
//!                       returns when `stop` flips, or the record changes / a write is Fenced
//! ```

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::controllers::{self, Caches, Context};
use crate::kv::{Event, Fence, Kv, KvError};
use crate::registry::Registry;
use crate::scheduler;

/// The key of the leadership record.
pub const LEADER_KEY: &str = "/berth/leader";

/// The leadership record's value for `term` and `name`.
pub fn record(term: u64, name: &str) -> String {
    format!("{term:020} {name}")
}

/// Makes `name` the leader of the control loops for `term`: writes the record if it
/// is absent or holds a smaller term, and returns the fence of that write. A record
/// of the same or a greater term makes it fail with `Fenced`, except that claiming
/// again exactly the record already there (same term, same name: a leader that
/// restarts its loops) returns that record's fence.
pub async fn claim(kv: &Kv, term: u64, name: &str) -> Result<Fence, KvError> {
    let value = record(term, name);
    let fence = |mod_revision| Fence {
        key: LEADER_KEY.to_string(),
        mod_revision,
    };
    // The record may be deleted between our two attempts; a few rounds settle it.
    for _ in 0..3 {
        match kv.create(LEADER_KEY, value.clone().into_bytes(), 0, None).await {
            Ok(revision) => return Ok(fence(revision)),
            Err(KvError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        // Any record of a smaller term sorts before the bare padded term; one of this
        // term ("{term:020} {name}") sorts after it.
        let term_only = format!("{term:020}");
        match kv
            .put_if_value_less(LEADER_KEY, term_only.as_bytes(), value.clone().into_bytes())
            .await
        {
            Ok(revision) => return Ok(fence(revision)),
            Err(KvError::NotFound) => continue,
            Err(KvError::Conflict { .. }) => {
                return match kv.get(LEADER_KEY).await? {
                    Some(current) if current.value == value.as_bytes() => Ok(fence(current.mod_revision)),
                    Some(_) => Err(KvError::Fenced),
                    None => continue,
                };
            }
            Err(e) => return Err(e),
        }
    }
    Err(KvError::Unavailable(
        "the leadership record kept changing while claiming it".into(),
    ))
}

/// How the control loops behave.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSettings {
    /// How long a node's heartbeat may be absent before it is marked NotReady and its
    /// pods are replaced elsewhere (Kubernetes' `--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    pub scheduler_strategy: scheduler::Strategy,
    /// Every loop does a full pass this often even without events.
    pub resync: Duration,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            node_monitor_grace_period: Duration::from_secs(10),
            scheduler_strategy: scheduler::Strategy::default(),
            resync: Duration::from_secs(30),
        }
    }
}

/// Why [`run_while_leader`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// `stop` flipped (or its sender was dropped).
    Stopped,
    /// The leadership record is no longer the one we claimed: re-check leadership.
    Fenced,
    /// A loop panicked (a bug); the caller may claim again and restart them.
    Failed(String),
}

/// Runs the informers, the controllers (deployment, replicaset, garbage collector,
/// node lifecycle) and the scheduler, all writing with `fence`, until `stop` becomes
/// true or the leadership record changes (a write fails with `Fenced`, or the watch
/// of the record sees it replaced). Everything it started is stopped when it returns.
pub async fn run_while_leader(
    kv: Kv,
    fence: Fence,
    settings: ControlSettings,
    mut stop: watch::Receiver<bool>,
) -> Exit {
    if *stop.borrow_and_update() {
        return Exit::Stopped;
    }
    tracing::info!(record = %fence.key, revision = fence.mod_revision, "leading: starting the control loops");
    let ctx = Context {
        registry: Registry::new(kv.clone()),
        caches: Caches::start(&kv),
        fence: fence.clone(),
    };
    let mut loops: JoinSet<&'static str> = JoinSet::new();
    let resync = settings.resync;
    let c = ctx.clone();
    loops.spawn(async move {
        controllers::deployment::run(c, resync).await;
        "deployment"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        controllers::replicaset::run(c, resync).await;
        "replicaset"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        controllers::gc::run(c, resync).await;
        "garbage-collector"
    });
    let c = ctx.clone();
    let grace = settings.node_monitor_grace_period;
    loops.spawn(async move {
        controllers::node_lifecycle::run(c, grace, resync).await;
        "node-lifecycle"
    });
    let c = ctx.clone();
    let strategy = settings.scheduler_strategy;
    loops.spawn(async move {
        scheduler::run::run(c, strategy, resync).await;
        "scheduler"
    });
    loops.spawn(async move {
        watch_record(kv, fence).await;
        "leadership-record"
    });
    let exit = tokio::select! {
        _ = stop.wait_for(|stop| *stop) => Exit::Stopped,
        Some(done) = loops.join_next() => match done {
            Ok(name) => {
                tracing::warn!(by = name, "lost the leadership record: stopping the control loops");
                Exit::Fenced
            }
            Err(e) => {
                tracing::error!(error = %e, "a control loop failed: stopping the control loops");
                Exit::Failed(e.to_string())
            }
        },
    };
    loops.shutdown().await;
    exit
}

/// Returns once the leadership record no longer has the fence's mod_revision.
async fn watch_record(kv: Kv, fence: Fence) {
    loop {
        let at = match kv.list(&fence.key).await {
            Ok((kvs, at)) => {
                let current = kvs.iter().find(|kv| kv.key == fence.key.as_bytes());
                if current.map(|kv| kv.mod_revision) != Some(fence.mod_revision) {
                    return;
                }
                at
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the leadership record; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(mut watch) = kv.watch(&fence.key, at + 1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(Ok((_, events))) = watch.next().await {
            let key_of = |e: &Event| match e {
                Event::Put(kv) => kv.key.clone(),
                Event::Delete { prev, .. } => prev.key.clone(),
            };
            if events.iter().any(|e| key_of(e) == fence.key.as_bytes()) {
                return;
            }
        }
        // The watch ended: read the record again before watching anew.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::meta::ObjectMeta;
    use crate::api::objects::{Pod, PodSpec};
    use crate::registry::Registry;

    #[test]
    fn records_sort_by_term() {
        assert_eq!(record(7, "n1"), "00000000000000000007 n1");
        assert!(record(9, "zz") < record(10, "aa"), "byte order is term order");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_only_move_forward() {
        let t = crate::testing::store().await;
        let first = claim(&t.kv, 1, "a").await.unwrap();
        assert_eq!(first.key, LEADER_KEY);
        assert_eq!(
            claim(&t.kv, 1, "a").await,
            Ok(first.clone()),
            "re-claiming our own record"
        );
        assert_eq!(
            claim(&t.kv, 1, "b").await,
            Err(KvError::Fenced),
            "same term, other name"
        );
        let second = claim(&t.kv, 2, "b").await.unwrap();
        assert!(second.mod_revision > first.mod_revision);
        assert_eq!(claim(&t.kv, 1, "a").await, Err(KvError::Fenced), "an older term");
        let record_now = t.kv.get(LEADER_KEY).await.unwrap().unwrap();
        assert_eq!(record_now.value, record(2, "b").as_bytes());
        // Terms compare as numbers, not as the strings "9" and "10".
        claim(&t.kv, 9, "a").await.unwrap();
        claim(&t.kv, 10, "b").await.unwrap();
        assert_eq!(claim(&t.kv, 9, "a").await, Err(KvError::Fenced));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deposed_leader_stops_and_cannot_write() {
        let t = crate::testing::store().await;
        let old = claim(&t.kv, 1, "old").await.unwrap();
        let (_stop, stop_rx) = watch::channel(false);
        let running = tokio::spawn(run_while_leader(
            t.kv.clone(),
            old.clone(),
            ControlSettings::default(),
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!running.is_finished(), "the loops run while the record is ours");

        claim(&t.kv, 2, "new").await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .expect("the deposed leader's loops return")
            .unwrap();
        assert_eq!(exit, Exit::Fenced);

        let pod = Pod::new(
            ObjectMeta {
                name: "late".into(),
                namespace: "default".into(),
                ..Default::default()
            },
            PodSpec::default(),
        );
        let registry = Registry::new(t.kv.clone());
        assert_eq!(registry.create(&pod, Some(&old)).await, Err(KvError::Fenced));
        assert_eq!(registry.get::<PodSpec>("default", "late").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_returns() {
        let t = crate::testing::store().await;
        let fence = claim(&t.kv, 1, "a").await.unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let running = tokio::spawn(run_while_leader(
            t.kv.clone(),
            fence,
            ControlSettings::default(),
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(true).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(exit, Exit::Stopped);
    }
}
