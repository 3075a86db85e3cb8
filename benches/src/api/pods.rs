//! The pods of the benchmark and the two writes made to them: a create (POST), and a
//! merge patch of one label (PATCH), each on a client's keep-alive connection.
//!
//! Every pod is bound to `ghost`, a node with no agent: nothing runs it, the scheduler
//! leaves it alone, and the server's long node grace period keeps it from eviction.
//! Pod `i` is named `p-00042`-style so its ticket is read back from its name.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hyper::Method;
use hyper::body::Bytes;
use serde_json::json;

use super::http::Connection;
use crate::driver::Operation;

pub const NAMESPACE: &str = "bench";
pub const NODE: &str = "ghost";
/// The label each watched write sets; its value is the write's ticket.
pub const TOUCHED_LABEL: &str = "touched";

pub fn pod_name(index: u64) -> String {
    format!("p-{index:05}")
}

/// The index in a pod's name, for pods of this benchmark.
pub fn pod_index(name: &str) -> Option<u64> {
    name.strip_prefix("p-")?.parse().ok()
}

pub fn collection_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/pods")
}

/// A small pod: one container with a command, two labels, bound to the ghost node.
pub fn pod(index: u64) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(index),
            "namespace": NAMESPACE,
            "labels": {"app": "bench", "batch": (index % 10).to_string()},
        },
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "main", "image": "none", "command": ["sleep", "3600"]}],
        },
    })
}

/// Creates the namespace the pods go to.
pub async fn create_namespace(connection: &mut Connection) -> anyhow::Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    connection
        .request(
            Method::POST,
            "/api/v1/namespaces",
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await?
        .expect(201)?;
    Ok(())
}

/// Ticket `i` creates pod `i`.
pub struct CreatePod {
    pub connection: Connection,
    pub path: String,
}

impl Operation for CreatePod {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let body = Bytes::from(pod(ticket).to_string());
        self.connection
            .request(Method::POST, &self.path, Some(("application/json", body)))
            .await?
            .expect(201)?;
        Ok(())
    }
}

/// When each write was sent and when it was acknowledged, by ticket: nanoseconds since
/// `base` plus one; zero while it was not.
pub struct WriteTimes {
    pub base: Instant,
    sent_ns: Vec<AtomicU64>,
    acked_ns: Vec<AtomicU64>,
}

impl WriteTimes {
    pub fn new(total: u64) -> WriteTimes {
        WriteTimes {
            base: Instant::now(),
            sent_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
            acked_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn record_sent(&self, ticket: u64) {
        self.record(&self.sent_ns, ticket);
    }

    pub fn record_acked(&self, ticket: u64) {
        self.record(&self.acked_ns, ticket);
    }

    fn record(&self, times: &[AtomicU64], ticket: u64) {
        let since_base_ns = self.base.elapsed().as_nanos() as u64 + 1;
        times[ticket as usize].store(since_base_ns, Ordering::Release);
    }

    pub fn sent_at(&self, ticket: u64) -> Option<Instant> {
        self.at(&self.sent_ns, ticket)
    }

    /// When write `ticket` was acknowledged, if it was.
    pub fn acked_at(&self, ticket: u64) -> Option<Instant> {
        self.at(&self.acked_ns, ticket)
    }

    fn at(&self, times: &[AtomicU64], ticket: u64) -> Option<Instant> {
        let since_base_ns = times.get(ticket as usize)?.load(Ordering::Acquire);
        (since_base_ns > 0).then(|| self.base + std::time::Duration::from_nanos(since_base_ns - 1))
    }
}

/// Ticket `i` sets pod `i`'s `touched` label to `i` with a merge patch: one MODIFIED
/// event for a watcher of the namespace's pods.
pub struct TouchPod {
    pub connection: Connection,
    pub times: Arc<WriteTimes>,
}

impl Operation for TouchPod {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let path = format!("{}/{}", collection_path(), pod_name(ticket));
        let body = json!({"metadata": {"labels": {TOUCHED_LABEL: ticket.to_string()}}});
        self.times.record_sent(ticket);
        self.connection
            .request(
                Method::PATCH,
                &path,
                Some(("application/merge-patch+json", Bytes::from(body.to_string()))),
            )
            .await?
            .expect(200)?;
        self.times.record_acked(ticket);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_index_is_read_back_from_its_name() {
        assert_eq!(pod_name(42), "p-00042");
        assert_eq!(pod_index(&pod_name(42)), Some(42));
        assert_eq!(pod_index(&pod_name(123_456)), Some(123_456));
        assert_eq!(pod_index("web-1"), None);
        assert_eq!(pod(7)["metadata"]["name"], "p-00007");
        assert_eq!(pod(7)["spec"]["nodeName"], NODE);
    }

    #[test]
    fn a_writes_times_are_kept_by_ticket() {
        let times = WriteTimes::new(3);
        assert_eq!(times.acked_at(1), None);
        times.record_sent(1);
        times.record_acked(1);
        let (sent_at, acked_at) = (times.sent_at(1).unwrap(), times.acked_at(1).unwrap());
        assert!(times.base <= sent_at && sent_at <= acked_at && acked_at <= Instant::now());
        assert_eq!(times.acked_at(0), None);
        assert_eq!(times.acked_at(9), None, "out of range");
    }
}
