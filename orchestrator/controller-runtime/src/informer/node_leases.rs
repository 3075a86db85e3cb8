//! The nodes' heartbeat Leases (`coordination.k8s.io/v1`, in `kube-node-lease`, named
//! after their node), kept by agents that reach the cluster through the API server:
//! when each was last seen renewed, by this process's clock (as Kubernetes' node
//! lifecycle controller keeps its probe timestamps, so clocks need not agree).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use berth_api::kinds::lease::{LEASE, NODE_LEASE_NAMESPACE};
use berth_client::kv::{Event, Record};
use berth_client::reflector::Sink;
use serde::Deserialize;

use super::heartbeats::HeartbeatSnapshot;

/// One node's Lease as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLease {
    /// When this process saw its `renewTime` change (or first saw it).
    pub renewed: Instant,
    /// Its `spec.renewTime`, as written.
    pub renew_time: Option<String>,
    /// Its `spec.leaseDurationSeconds` (0 when unset).
    pub duration: Duration,
    /// The store revision it was last written at.
    pub mod_revision: i64,
}

impl NodeLease {
    /// Whether it was renewed within `grace` of `now`.
    pub fn is_fresh(&self, now: Instant, grace: Duration) -> bool {
        now.saturating_duration_since(self.renewed) < grace
    }
}

/// What a heartbeat needs of a stored Lease: 5000 nodes renew every 10 s, and the
/// rest of the object (its metadata, managed fields) is skipped, not decoded.
#[derive(Debug, Deserialize)]
struct Heartbeat {
    #[serde(default)]
    spec: Option<HeartbeatSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeartbeatSpec {
    /// Compared with the last one seen, as written (never parsed).
    #[serde(default)]
    renew_time: Option<String>,
    #[serde(default)]
    lease_duration_seconds: Option<i32>,
}

/// The store prefix of the nodes' Leases.
pub fn prefix() -> String {
    LEASE.prefix(Some(NODE_LEASE_NAMESPACE))
}

fn node_of(key: &str) -> Option<String> {
    let node = key.strip_prefix(&prefix())?;
    (!node.is_empty()).then(|| node.to_string())
}

/// Sets the Lease a record holds on `state`; whether a node's liveness may have
/// changed (a new Lease, or one renewed after it had lapsed).
fn put(state: &mut HeartbeatSnapshot, record: &Record, now: Instant) -> bool {
    let Some(node) = node_of(&record.key) else { return false };
    let Ok(lease) = serde_json::from_slice::<Heartbeat>(&record.value) else {
        tracing::warn!(key = %record.key, "skipping a node Lease that does not decode");
        return false;
    };
    let spec = lease.spec.unwrap_or_default();
    let renew_time = spec.renew_time;
    let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    let previous = state.leases.get(&node);
    let renewed = match previous {
        Some(seen) if seen.renew_time == renew_time => seen.renewed,
        _ => now,
    };
    let changed = previous.is_none_or(|seen| !seen.is_fresh(now, seen.duration));
    state.leases.insert(
        node,
        NodeLease {
            renewed,
            renew_time,
            duration,
            mod_revision: record.mod_revision,
        },
    );
    changed
}

pub(super) struct LeaseSink {
    pub(super) state: Arc<RwLock<HeartbeatSnapshot>>,
    pub(super) changed: Arc<watch::Sender<u64>>,
}

impl Sink for LeaseSink {
    fn replace(&self, records: Vec<Record>, revision: i64) {
        let now = Instant::now();
        {
            let mut state = self.state.write().expect("heartbeat informer lock");
            let present: std::collections::BTreeSet<String> = records.iter().filter_map(|r| node_of(&r.key)).collect();
            let vanished: Vec<String> = state.leases.keys().filter(|n| !present.contains(*n)).cloned().collect();
            for node in vanished {
                state.leases.remove(&node);
            }
            for record in &records {
                put(&mut state, record, now);
            }
            state.leases_synced = true;
            state.revision = state.revision.max(revision);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn apply(&self, events: Vec<Event>, revision: i64) {
        let now = Instant::now();
        let mut changed = false;
        {
            let mut state = self.state.write().expect("heartbeat informer lock");
            for event in &events {
                match event {
                    Event::Put(record) => changed |= put(&mut state, record, now),
                    Event::Delete { prev, .. } => {
                        if let Some(node) = node_of(&prev.key) {
                            changed |= state.leases.remove(&node).is_some();
                        }
                    }
                }
            }
            state.revision = state.revision.max(revision);
        }
        // A renewal of a live Lease changes nobody's liveness: no pass for it.
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_testkit::eventually;

    use super::super::Heartbeats;
    use super::*;

    fn lease(renew_time: &str) -> Vec<u8> {
        format!(
            r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"n1","namespace":"kube-node-lease"}},"spec":{{"holderIdentity":"n1","leaseDurationSeconds":10,"renewTime":"{renew_time}"}}}}"#
        )
        .into_bytes()
    }

    /// A Lease as a kubelet writes it, with what the heartbeat skips.
    #[test]
    fn a_whole_lease_is_read_for_its_renewal_only() {
        let value = br#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"n1","namespace":"kube-node-lease","uid":"u","resourceVersion":"7","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"n"}],"managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"coordination.k8s.io/v1","time":"2026-01-02T03:04:05Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:renewTime":{}}}}]},"spec":{"holderIdentity":"n1","leaseDurationSeconds":40,"renewTime":"2026-01-02T03:04:05.123456Z"}}"#;
        let record = |value: &[u8], mod_revision| Record {
            key: LEASE.key(NODE_LEASE_NAMESPACE, "n1"),
            value: value.to_vec(),
            create_revision: 1,
            mod_revision,
            version: 1,
            lease: 0,
        };
        let mut state = HeartbeatSnapshot::default();
        let now = Instant::now();
        assert!(put(&mut state, &record(value, 7), now), "a new Lease");
        let seen = &state.leases["n1"];
        assert_eq!(seen.duration, Duration::from_secs(40));
        assert_eq!(seen.renew_time.as_deref(), Some("2026-01-02T03:04:05.123456Z"));
        assert_eq!(seen.mod_revision, 7);

        // A Lease without a spec, or with nulls, is one never renewed.
        let bare = br#"{"metadata":{"name":"n1"},"spec":{"renewTime":null,"leaseDurationSeconds":null}}"#;
        put(&mut state, &record(bare, 8), now);
        assert_eq!(state.leases["n1"].renew_time, None);
        assert_eq!(state.leases["n1"].duration, Duration::ZERO);
        put(&mut state, &record(br#"{"metadata":{"name":"n1"}}"#, 9), now);
        assert_eq!(state.leases["n1"].mod_revision, 9);
        // What does not decode is skipped, the last Lease kept.
        assert!(!put(&mut state, &record(b"{not json", 10), now));
        assert_eq!(state.leases["n1"].mod_revision, 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_lease_is_seen_renewed_when_its_renew_time_changes() {
        let t = berth_client::testing::store().await;
        let key = LEASE.key(NODE_LEASE_NAMESPACE, "n1");
        t.kv.put(&key, lease("2026-01-02T03:04:05.000000Z"), 0).await.unwrap();
        let heartbeats = Heartbeats::start(t.kv.clone());
        heartbeats.wait_synced().await;
        let first = heartbeats.snapshot().leases["n1"].clone();
        assert_eq!(first.duration, Duration::from_secs(10));
        assert!(heartbeats.snapshot().is_live_at("n1", Instant::now()));
        assert!(!heartbeats.snapshot().is_live_at("n1", first.renewed + first.duration));

        // Written again unchanged: not a renewal.
        let revision = t.kv.put(&key, lease("2026-01-02T03:04:05.000000Z"), 0).await.unwrap();
        eventually("the write seen", async || {
            (heartbeats.snapshot().leases["n1"].mod_revision == revision).then_some(())
        })
        .await;
        assert_eq!(heartbeats.snapshot().leases["n1"].renewed, first.renewed);

        t.kv.put(&key, lease("2026-01-02T03:04:07.500000Z"), 0).await.unwrap();
        eventually("renewed", async || {
            (heartbeats.snapshot().leases["n1"].renewed > first.renewed).then_some(())
        })
        .await;

        t.kv.delete(&key, None, None).await.unwrap();
        eventually("gone", async || {
            (!heartbeats.snapshot().leases.contains_key("n1")).then_some(())
        })
        .await;
    }
}
