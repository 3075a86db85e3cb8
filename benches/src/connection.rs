//! gRPC connections to the cluster.
//!
//! One `etcd_client::Client` is one HTTP/2 connection to one endpoint. As in etcd's
//! benchmark, connection `i` goes to endpoint `i mod n`, so the load spreads evenly over
//! the endpoints; with `--target-leader` the endpoints are first narrowed to the leader.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_testkit::ClusterTls;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The CA and client certificate for https endpoints, set once per run (`--cacert`,
/// `--cert`, `--key`, or `compare --tls`).
static CLIENT_TLS: OnceLock<TlsOptions> = OnceLock::new();

/// Makes every connection from now on trust `tls`'s CA and present its certificate.
pub fn use_tls(tls: &ClusterTls) -> anyhow::Result<()> {
    use_tls_files(Some(&tls.ca_file), Some(&tls.cert_file), Some(&tls.key_file))
}

/// etcdctl's `--cacert`, `--cert` and `--key` for every connection from now on: the CA
/// that vouches for the servers (the system's without one) and a client certificate.
pub fn use_tls_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<()> {
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let mut options = TlsOptions::new();
    if let Some(ca) = ca {
        options = options.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (cert, key) {
        (Some(cert), Some(key)) => options = options.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => bail!("--cert and --key go together: a client certificate is presented with its key"),
    }
    CLIENT_TLS
        .set(options)
        .map_err(|_| anyhow::anyhow!("the client TLS is set once per run"))
}

/// Opens one connection to `endpoint`.
pub async fn connect(endpoint: &str) -> anyhow::Result<Client> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    if let Some(tls) = CLIENT_TLS.get() {
        options = options.with_tls(tls.clone());
    }
    Client::connect([endpoint], Some(options))
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

/// Opens `conns` connections, to the endpoints in turn.
pub async fn connect_pool(endpoints: &[String], conns: usize) -> anyhow::Result<Vec<Client>> {
    let mut pool = Vec::with_capacity(conns);
    for index in 0..conns {
        pool.push(connect(&endpoints[index % endpoints.len()]).await?);
    }
    Ok(pool)
}

/// The endpoints to load: all of them, or only the leader's with `target_leader`.
pub async fn resolve_endpoints(endpoints: &[String], target_leader: bool) -> anyhow::Result<Vec<String>> {
    if !target_leader {
        return Ok(endpoints.to_vec());
    }
    let leader = find_leader(endpoints, Duration::from_secs(10)).await?;
    Ok(vec![endpoints[leader].clone()])
}

/// The index of the endpoint whose member is the leader, asking each endpoint's Status
/// until one reports itself as leader or `timeout` passes.
pub async fn find_leader(endpoints: &[String], timeout: Duration) -> anyhow::Result<usize> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = String::from("no endpoint reported a leader");
    loop {
        for (index, endpoint) in endpoints.iter().enumerate() {
            match member_status(endpoint).await {
                Ok(status) if status.leader_id != 0 && status.leader_id == status.member_id => {
                    return Ok(index);
                }
                Ok(_) => {}
                Err(error) => last_error = format!("{error:#}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no leader among {endpoints:?} within {timeout:?}: {last_error}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What an endpoint's Status says about itself and its leader.
#[derive(Clone, Copy, Debug)]
pub struct MemberStatus {
    pub member_id: u64,
    pub leader_id: u64,
    pub raft_applied_index: u64,
}

pub async fn member_status(endpoint: &str) -> anyhow::Result<MemberStatus> {
    let request = async {
        let mut client = connect(endpoint).await?;
        let status = client.status().await?;
        let member_id = status.header().map(|header| header.member_id()).unwrap_or(0);
        anyhow::Ok(MemberStatus {
            member_id,
            leader_id: status.leader(),
            raft_applied_index: status.raft_applied_index(),
        })
    };
    tokio::time::timeout(Duration::from_secs(2), request)
        .await
        .with_context(|| format!("Status of {endpoint} timed out"))?
        .with_context(|| format!("Status of {endpoint}"))
}
