//! Client workloads. Each client is a Jepsen "process": it runs one operation at a
//! time, records the invocation, runs it with a timeout, and records the outcome.
//! After an outcome it cannot know (`info`), the client takes a new process ID, as
//! its old operation may still take effect later.

pub mod append;
pub mod lease;
pub mod register;
pub mod watch;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::history::Kind;

/// How long one operation may take before it counts as unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// A client's pause between operations. It keeps the history to a size the
/// linearizability search can decide (a few hundred operations a second in all).
pub const THINK_TIME: Duration = Duration::from_millis(20);

/// A client's pause after an error, so a dead replica is not hammered.
pub const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// What the suite's clients present to a cluster that runs TLS with client-certificate
/// auth: the run's CA and its client certificate, read once and cloned into every
/// client (a run over http has none).
#[derive(Debug, Clone)]
pub struct ClientTls(etcd_client::TlsOptions);

impl ClientTls {
    /// The CA and the certificate of `tls`.
    pub fn load(tls: &berth_testkit::ClusterTls) -> anyhow::Result<Self> {
        let options = Self::trusting(&tls.ca_file)?
            .0
            .identity(etcd_client::Identity::from_pem(
                read(&tls.cert_file)?,
                read(&tls.key_file)?,
            ));
        Ok(Self(options))
    }

    /// A client that trusts the CA in `ca_file` but has no certificate of its own,
    /// which a cluster with client-certificate auth must refuse.
    pub fn trusting(ca_file: &Path) -> anyhow::Result<Self> {
        let ca = etcd_client::Certificate::from_pem(read(ca_file)?);
        Ok(Self(etcd_client::TlsOptions::new().ca_certificate(ca)))
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A client of `endpoints` (https ones with `tls`), or `None` when none answers in time.
pub async fn connect(endpoints: &[String], tls: Option<&ClientTls>) -> Option<etcd_client::Client> {
    let mut options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(OP_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    if let Some(tls) = tls {
        options = options.with_tls(tls.0.clone());
    }
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
    tls: Option<&ClientTls>,
) -> Option<&'a mut etcd_client::Client> {
    if client.is_none() {
        *client = connect(&[endpoint.to_string()], tls).await;
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
    /// What the clients present when the cluster runs TLS.
    pub tls: Option<ClientTls>,
    pub deadline: tokio::time::Instant,
    pub seed: u64,
}
