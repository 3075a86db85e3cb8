//! Client workloads. Each client is a Jepsen "process": it runs one operation at a
//! time, records the invocation, runs it with a timeout, and records the outcome.
//! After an outcome it cannot know (`info`), the client takes a new process ID, as
//! its old operation may still take effect later.

pub mod append;
pub mod lease;
pub mod register;
pub mod watch;

use std::time::Duration;

use crate::history::Kind;

/// How long one operation may take before it counts as unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// A client's pause between operations. It keeps the history to a size the
/// linearizability search can decide (a few hundred operations a second in all).
pub const THINK_TIME: Duration = Duration::from_millis(20);

/// A client's pause after an error, so a dead replica is not hammered.
pub const ERROR_BACKOFF: Duration = Duration::from_millis(200);

pub async fn connect(endpoints: &[String]) -> Option<etcd_client::Client> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(OP_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    tokio::time::timeout(OP_TIMEOUT, etcd_client::Client::connect(endpoints, Some(options)))
        .await
        .ok()?
        .ok()
}

/// The client of a pinned workload client, connecting (again) when it has none.
/// `None` after a short pause when the replica does not answer.
pub async fn ensure_connected<'a>(
    client: &'a mut Option<etcd_client::Client>,
    endpoint: &str,
) -> Option<&'a mut etcd_client::Client> {
    if client.is_none() {
        *client = connect(&[endpoint.to_string()]).await;
        if client.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    client.as_mut()
}

/// Whether a failed write certainly did not happen (`fail`) or may have (`info`).
/// Only errors etcd returns before proposing anything are definite.
pub fn classify_write_error(e: &etcd_client::Error) -> Kind {
    // A refused connection means the request never left the client.
    if e.to_string().contains("Connection refused") {
        return Kind::Fail;
    }
    match e {
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::OutOfRange
            | tonic::Code::ResourceExhausted
            | tonic::Code::FailedPrecondition
            | tonic::Code::Unimplemented => Kind::Fail,
            // "no leader" is said before any proposal is made.
            tonic::Code::Unavailable if status.message() == "etcdserver: no leader" => Kind::Fail,
            _ => Kind::Info,
        },
        etcd_client::Error::InvalidArgs(_) => Kind::Fail,
        _ => Kind::Info,
    }
}

/// The value bytes as text (the workloads only write text).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runtime knobs shared by the workloads.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub endpoints: Vec<String>,
    pub deadline: tokio::time::Instant,
    pub seed: u64,
}
