//! The node's heartbeat through the API server: a `coordination.k8s.io/v1` Lease in
//! `kube-node-lease` named after the node, held by it, owned by its Node, renewed
//! every quarter of its duration, as the kubelet keeps its own. The node lifecycle
//! controller counts one not renewed within its grace period as a missed heartbeat.
//!
//! ```text
//!  ensure: GET ─► absent: POST ─► renew every duration/4: PUT the Lease last written,
//!            └─► present: PUT        renewTime = now (and the Node as owner once it
//!                                    exists), at the version it was written at
//!                                    │ 409 or 404: GET, then PUT (or POST) that
//!                                    │ failing: again after 200 ms doubling to 7 s
//!                                    └─► no renewal for a whole duration: lost
//! ```
//!
//! As the kubelet's lease controller, a renewal trusts that nobody else writes the
//! node's Lease: one PUT and no GET per heartbeat, the Lease read again only when the
//! PUT finds it changed or gone.
//!
//! Lost is the agent's cue to stop its workloads (self-fencing), as in store mode
//! when its store lease lapses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_api::kinds::lease::{LEASE, NODE_LEASE_NAMESPACE};
use berth_api::kinds::node::NODE;
use berth_client::api_source::ApiSource;
use berth_client::kv::{KvError, Record};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The first wait after a failed renewal (doubling up to [`MAX_RETRY`]).
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(7);

/// `renewTime` as a `MicroTime`: RFC 3339 with six fraction digits.
pub fn micro_time(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    berth_api::time::format_unix_rfc3339(since.as_secs() as i64, Some(since.subsec_micros()))
}

/// The node's Lease, held by it for `duration`, renewed now, owned by the Node
/// with `node_uid` (none before the Node exists: the first renewal after sets it,
/// as the kubelet does).
pub fn lease_object(node: &str, node_uid: Option<&str>, duration: Duration, now: SystemTime) -> Value {
    let mut metadata = json!({"name": node, "namespace": NODE_LEASE_NAMESPACE});
    if let Some(uid) = node_uid {
        metadata["ownerReferences"] = owner(node, uid);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration.as_secs().max(1),
            "renewTime": micro_time(now),
        },
    })
}

/// One node's Lease kept through the API server.
pub struct NodeLease {
    api: ApiSource,
    node: String,
    duration: Duration,
    /// When the Lease was last written.
    renewed: Instant,
    /// The Lease as this agent last wrote it (its mod_revision the version a
    /// renewal is conditional on); None before the first write and after a
    /// renewal found it changed or gone.
    last: Option<Record>,
}

impl NodeLease {
    /// Creates the node's Lease, or renews the one there (taking it over).
    pub async fn ensure(api: ApiSource, node: &str, duration: Duration) -> Result<NodeLease, KvError> {
        let mut lease = NodeLease {
            api,
            node: node.to_string(),
            duration,
            renewed: Instant::now(),
            last: None,
        };
        lease.renew().await?;
        Ok(lease)
    }

    /// One renewal: the Lease last written, with holder, duration, owner and
    /// renewTime set, written at the version it was written at; when that fails
    /// because the Lease changed or went, read again and written at the version
    /// read (created when absent).
    pub async fn renew(&mut self) -> Result<(), KvError> {
        let limit = self.interval().max(Duration::from_secs(1));
        let attempt = async {
            if let Some(last) = self.last.take() {
                match self.put(&last).await {
                    Ok(written) => return Ok(written),
                    // Another writer, or a deletion: read it again.
                    Err(KvError::Conflict { .. } | KvError::NotFound) => {}
                    Err(e) => {
                        // Perhaps written after all: the next PUT tells (a 409).
                        self.last = Some(last);
                        return Err(e);
                    }
                }
            }
            match self.api.read(&LEASE, NODE_LEASE_NAMESPACE, &self.node).await? {
                Some(record) => self.put(&record).await,
                None => {
                    let now = SystemTime::now();
                    let lease = lease_object(&self.node, self.node_uid().await?.as_deref(), self.duration, now);
                    self.api.create(&LEASE, NODE_LEASE_NAMESPACE, &lease).await
                }
            }
        };
        // A request that hangs counts as a failed renewal.
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(written)) => {
                self.last = Some(written);
                self.renewed = Instant::now();
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(KvError::Unavailable("the Lease's renewal timed out".into())),
        }
    }

    /// Writes `record`'s Lease renewed now, at its version: its spec taken over
    /// (another holder's too, as the kubelet does: the name is the node's), owned by
    /// the Node once it exists. The Lease as written.
    async fn put(&self, record: &Record) -> Result<Record, KvError> {
        let mut lease: Value = serde_json::from_slice(&record.value)
            .map_err(|e| KvError::Other(format!("the node's Lease is not JSON: {e}")))?;
        if lease["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty)
            && let Some(uid) = self.node_uid().await?
        {
            lease["metadata"]["ownerReferences"] = owner(&self.node, &uid);
        }
        renewed(
            &mut lease,
            &self.node,
            self.duration,
            record.mod_revision,
            SystemTime::now(),
        );
        (self.api)
            .replace(&LEASE, NODE_LEASE_NAMESPACE, &self.node, None, &lease)
            .await
    }

    /// The Node's uid; None while there is no Node.
    async fn node_uid(&self) -> Result<Option<String>, KvError> {
        let Some(record) = self.api.read(&NODE, "", &self.node).await? else {
            return Ok(None);
        };
        let node: Value =
            serde_json::from_slice(&record.value).map_err(|e| KvError::Other(format!("the Node is not JSON: {e}")))?;
        Ok(node["metadata"]["uid"].as_str().map(str::to_string))
    }

    /// `kube-node-lease/<node>`.
    pub fn name(&self) -> String {
        format!("{NODE_LEASE_NAMESPACE}/{}", self.node)
    }

    /// How often the Lease is renewed: a quarter of its duration.
    pub fn interval(&self) -> Duration {
        self.duration / 4
    }

    /// Renews the Lease forever; returns once no renewal has succeeded for its
    /// whole duration.
    pub async fn keep(&mut self) {
        let mut retry = FIRST_RETRY;
        let mut next = self.renewed + self.interval();
        loop {
            tokio::time::sleep_until(next).await;
            let deadline = self.renewed + self.duration;
            match self.renew().await {
                Ok(()) => {
                    retry = FIRST_RETRY;
                    next = self.renewed + self.interval();
                }
                Err(e) if Instant::now() >= deadline => {
                    tracing::warn!(node = %self.node, error = %e, "cannot renew the node's Lease");
                    return;
                }
                Err(e) => {
                    tracing::debug!(node = %self.node, error = %e, "cannot renew the node's Lease yet; retrying");
                    next = (Instant::now() + retry).min(deadline);
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
            if Instant::now() >= self.renewed + self.duration {
                return;
            }
        }
    }
}

/// Deletes the node's Lease (the agent stopped its pods and exits: its node is not
/// ready from now on, rather than once the Lease lapses).
pub async fn release(api: &ApiSource, node: &str) -> Result<(), KvError> {
    let options = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
    match api.delete(&LEASE, NODE_LEASE_NAMESPACE, node, &options).await {
        Ok(()) | Err(KvError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets a stored Lease's holder, duration and renewTime to `node`'s, now, to be
/// written at `revision`.
fn renewed(lease: &mut Value, node: &str, duration: Duration, revision: i64, now: SystemTime) {
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    lease["metadata"]["resourceVersion"] = json!(revision.to_string());
    let spec = &mut lease["spec"];
    spec["holderIdentity"] = json!(node);
    spec["leaseDurationSeconds"] = json!(duration.as_secs().max(1));
    spec["renewTime"] = json!(micro_time(now));
}

fn owner(node: &str, uid: &str) -> Value {
    json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}])
}

#[cfg(test)]
#[path = "node_lease_tests.rs"]
mod tests;
