//! The heartbeat informer: which agents keep their heartbeat key
//! (`/berth/heartbeats/<node>`, attached to the agent's lease) alive, and when each
//! key was seen appearing or disappearing, by this process's clock; and, for the
//! agents that reach the cluster through the API server, when their node's Lease
//! was last seen renewed ([`super::node_leases`]).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use imbl::OrdMap;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Notifying;
use super::node_leases::{self, LeaseSink, NodeLease};
use berth_client::kv::AbortOnDrop;
use berth_client::kv::Record;
use berth_client::kv::{Event, Kv};
use berth_client::reflector::{Sink, reflect};

/// Where the heartbeat keys of the agents live: `/berth/heartbeats/<node-name>`.
pub const HEARTBEAT_PREFIX: &str = "/berth/heartbeats/";

/// Which agents have a live heartbeat key, and since when each was seen appearing or
/// disappearing, by this informer (so a new leader counts a node's absence from the
/// moment it could first see it).
#[derive(Debug, Clone, Default)]
pub struct HeartbeatSnapshot {
    /// Node name → when its key was seen appearing.
    pub live: OrdMap<String, Instant>,
    /// Node name → when its key was seen disappearing.
    pub gone: OrdMap<String, Instant>,
    /// When the first list was applied; `None` before.
    pub synced_at: Option<Instant>,
    /// Node name → its Lease in `kube-node-lease`, as last seen.
    pub leases: OrdMap<String, NodeLease>,
    /// Whether the Leases' first list was applied.
    pub leases_synced: bool,
    pub revision: i64,
}

impl HeartbeatSnapshot {
    pub fn is_live(&self, node: &str) -> bool {
        self.live.contains_key(node)
    }

    /// `None` while the node's heartbeat is live; otherwise when this informer first
    /// saw it absent (its disappearance, or the first list for a node never seen).
    pub fn absent_since(&self, node: &str) -> Option<Instant> {
        if self.is_live(node) {
            return None;
        }
        Some(
            self.gone
                .get(node)
                .copied()
                .or(self.synced_at)
                .unwrap_or_else(Instant::now),
        )
    }

    /// Whether the node heartbeats at `now`: its key is live, or its Lease was
    /// renewed within the Lease's own duration.
    pub fn is_live_at(&self, node: &str, now: Instant) -> bool {
        self.is_live(node) || self.leases.get(node).is_some_and(|l| l.is_fresh(now, l.duration))
    }

    /// `None` while the node heartbeats (its key is live, or its Lease was renewed
    /// within `grace` of `now`, or within its own duration if that is longer: its
    /// agent fences itself only after that); otherwise since when it has not: the
    /// later of its key's absence ([`absent_since`](Self::absent_since)) and its
    /// Lease's lapse.
    pub fn absent_since_at(&self, node: &str, now: Instant, grace: Duration) -> Option<Instant> {
        let key_absent = self.absent_since(node)?;
        match self.leases.get(node) {
            None => Some(key_absent),
            Some(lease) if lease.is_fresh(now, grace.max(lease.duration)) => None,
            Some(lease) => Some(key_absent.max(lease.renewed + grace.max(lease.duration))),
        }
    }

    /// How long until the first Lease still fresh at `now` lapses, by `grace`.
    pub fn next_lapse(&self, now: Instant, grace: Duration) -> Option<Duration> {
        (self.leases.values())
            .filter(|lease| lease.is_fresh(now, grace.max(lease.duration)))
            .map(|lease| (lease.renewed + grace.max(lease.duration)).saturating_duration_since(now))
            .min()
    }

    fn set_live(&mut self, node: String, now: Instant) {
        self.gone.remove(&node);
        if !self.live.contains_key(&node) {
            self.live.insert(node, now);
        }
    }

    fn set_gone(&mut self, node: &str, now: Instant) {
        if self.live.remove(node).is_some() {
            self.gone.insert(node.to_string(), now);
        }
    }
}

fn node_of(key: &str) -> Option<String> {
    let node = key.strip_prefix(HEARTBEAT_PREFIX)?;
    (!node.is_empty()).then(|| node.to_string())
}

struct HeartbeatSink {
    state: Arc<RwLock<HeartbeatSnapshot>>,
}

impl Sink for HeartbeatSink {
    fn replace(&self, kvs: Vec<Record>, revision: i64) {
        let now = Instant::now();
        let present: BTreeSet<String> = kvs.iter().filter_map(|kv| node_of(&kv.key)).collect();
        let mut state = self.state.write().expect("heartbeat informer lock");
        let vanished: Vec<String> = state.live.keys().filter(|n| !present.contains(*n)).cloned().collect();
        for node in vanished {
            state.set_gone(&node, now);
        }
        for node in present {
            state.set_live(node, now);
        }
        state.synced_at.get_or_insert(now);
        state.revision = state.revision.max(revision);
    }

    fn apply(&self, events: Vec<Event>, revision: i64) {
        let now = Instant::now();
        let mut state = self.state.write().expect("heartbeat informer lock");
        for event in events {
            match event {
                Event::Put(kv) => {
                    if let Some(node) = node_of(&kv.key) {
                        state.set_live(node, now);
                    }
                }
                Event::Delete { prev, .. } => {
                    if let Some(node) = node_of(&prev.key) {
                        state.set_gone(&node, now);
                    }
                }
            }
        }
        state.revision = state.revision.max(revision);
    }
}

/// The set of nodes with a live heartbeat key (`/berth/heartbeats/<node>`), and
/// the nodes' Leases.
#[derive(Clone)]
pub struct Heartbeats {
    sink: Arc<HeartbeatSink>,
    changed: Arc<watch::Sender<u64>>,
    _tasks: Arc<[AbortOnDrop; 2]>,
}

impl Heartbeats {
    pub fn start(kv: Kv) -> Self {
        let state = Arc::new(RwLock::new(HeartbeatSnapshot::default()));
        let sink = Arc::new(HeartbeatSink { state: state.clone() });
        let changed = Arc::new(watch::channel(0).0);
        let notifying = Arc::new(Notifying {
            cache: sink.clone(),
            changed: changed.clone(),
        });
        let keys = tokio::spawn(reflect(kv.clone(), HEARTBEAT_PREFIX.to_string(), notifying, None));
        let leases = Arc::new(LeaseSink {
            state,
            changed: changed.clone(),
        });
        let leases = tokio::spawn(reflect(kv, node_leases::prefix(), leases, None));
        Heartbeats {
            sink,
            changed,
            _tasks: Arc::new([AbortOnDrop(keys), AbortOnDrop(leases)]),
        }
    }

    pub fn snapshot(&self) -> HeartbeatSnapshot {
        self.sink.state.read().expect("heartbeat informer lock").clone()
    }

    pub fn has_synced(&self) -> bool {
        let state = self.sink.state.read().expect("heartbeat informer lock");
        state.synced_at.is_some() && state.leases_synced
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub async fn wait_synced(&self) {
        super::wait_until_synced(self.subscribe(), || self.has_synced()).await;
    }
}

#[cfg(test)]
mod tests {
    use berth_testkit::eventually;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heartbeats_record_appearing_and_disappearing() {
        let t = berth_client::testing::store().await;
        let lease = t.kv.grant(30).await.unwrap();
        t.kv.put(&format!("{HEARTBEAT_PREFIX}n1"), b"n1".to_vec(), lease)
            .await
            .unwrap();
        let heartbeats = Heartbeats::start(t.kv.clone());
        heartbeats.wait_synced().await;
        let first = heartbeats.snapshot();
        assert!(first.is_live("n1"));
        assert_eq!(first.absent_since("n1"), None);
        assert_eq!(
            first.absent_since("never"),
            first.synced_at,
            "a node never seen counts from the first list"
        );

        t.kv.revoke(lease).await.unwrap();
        eventually("n1 gone", async || (!heartbeats.snapshot().is_live("n1")).then_some(())).await;
        let later = heartbeats.snapshot();
        assert!(later.absent_since("n1").unwrap() > first.synced_at.unwrap());

        t.kv.put(&format!("{HEARTBEAT_PREFIX}n1"), b"n1".to_vec(), 0)
            .await
            .unwrap();
        eventually("n1 back", async || heartbeats.snapshot().is_live("n1").then_some(())).await;
    }
}
