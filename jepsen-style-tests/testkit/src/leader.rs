//! Through the etcd v3 API (feature `etcd`): who leads, waiting for a leader, and
//! clients of a cluster.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Cluster, ClusterTls, HANG_TIMEOUT};

/// How long one replica may take to answer Status before it counts as not answering.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
const LEADER_POLL: Duration = Duration::from_millis(100);

/// What a replica's Status says about itself and its leader (0: none known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub member_id: u64,
    pub leader: u64,
}

/// A client of `endpoints`, failing over between them; requests time out after 10 s.
pub async fn connect(endpoints: &[String]) -> Result<etcd_client::Client, etcd_client::Error> {
    connect_with(endpoints, None).await
}

/// [`connect`], presenting `tls`'s certificate to https endpoints.
pub async fn connect_with(
    endpoints: &[String],
    tls: Option<&ClusterTls>,
) -> Result<etcd_client::Client, etcd_client::Error> {
    let options = with_tls(
        etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(10)),
        tls,
    )?;
    etcd_client::Client::connect(endpoints, Some(options)).await
}

/// `options` with `tls`'s CA and certificate (feature `tls`).
#[cfg(feature = "tls")]
fn with_tls(
    options: etcd_client::ConnectOptions,
    tls: Option<&ClusterTls>,
) -> Result<etcd_client::ConnectOptions, etcd_client::Error> {
    let Some(tls) = tls else {
        return Ok(options);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| etcd_client::Error::IoError(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
    };
    let tls_options = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca_file)?))
        .identity(etcd_client::Identity::from_pem(
            read(&tls.cert_file)?,
            read(&tls.key_file)?,
        ));
    Ok(options.with_tls(tls_options))
}

#[cfg(not(feature = "tls"))]
fn with_tls(
    options: etcd_client::ConnectOptions,
    tls: Option<&ClusterTls>,
) -> Result<etcd_client::ConnectOptions, etcd_client::Error> {
    match tls {
        None => Ok(options),
        Some(_) => Err(etcd_client::Error::InvalidArgs(
            "berth-testkit was built without its `tls` feature: it cannot connect to https endpoints".to_string(),
        )),
    }
}

/// The Status of the replica at `endpoint`, connection included, within `timeout`.
pub async fn status(endpoint: &str, timeout: Duration) -> anyhow::Result<Status> {
    status_with(endpoint, timeout, None).await
}

/// [`status`], presenting `tls`'s certificate to an https endpoint.
pub async fn status_with(endpoint: &str, timeout: Duration, tls: Option<&ClusterTls>) -> anyhow::Result<Status> {
    let request = async {
        let options = with_tls(etcd_client::ConnectOptions::new().with_connect_timeout(timeout), tls)?;
        let mut client = etcd_client::Client::connect([endpoint], Some(options)).await?;
        let status = client.status().await?;
        anyhow::Ok(Status {
            member_id: status.header().map_or(0, |header| header.member_id()),
            leader: status.leader(),
        })
    };
    tokio::time::timeout(timeout, request)
        .await
        .with_context(|| format!("Status of {endpoint} timed out after {timeout:?}"))?
        .with_context(|| format!("Status of {endpoint}"))
}

impl Cluster {
    /// The index of the replica that leads, when every running replica answers Status
    /// and all name that one running replica; otherwise why not.
    pub async fn agreed_leader(&self) -> anyhow::Result<usize> {
        let mut leader = None;
        let mut members = Vec::new();
        for (index, replica) in self.replicas.iter().enumerate().filter(|(_, r)| r.is_running()) {
            let status = status_with(&replica.endpoint(), STATUS_TIMEOUT, self.tls()).await?;
            if status.leader == 0 {
                bail!("{} knows no leader", replica.name);
            }
            if let Some(other) = leader.filter(|other| *other != status.leader) {
                bail!(
                    "the replicas name different leaders ({other:x} and {:x})",
                    status.leader
                );
            }
            leader = Some(status.leader);
            members.push((index, status.member_id));
        }
        let leader = leader.context("no replica runs")?;
        members
            .iter()
            .find(|(_, member_id)| *member_id == leader)
            .map(|(index, _)| *index)
            .with_context(|| format!("the leader {leader:x} is not a running replica"))
    }

    /// Waits until the running replicas agree on a leader ([`Cluster::agreed_leader`])
    /// and returns its index. Fails when a replica exits meanwhile, or when there is
    /// still no leader after [`HANG_TIMEOUT`]; the error ends with the logs' tails.
    pub async fn wait_for_leader(&mut self) -> anyhow::Result<usize> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            let why = match self.agreed_leader().await {
                Ok(leader) => return Ok(leader),
                Err(why) => why,
            };
            if started.elapsed() >= HANG_TIMEOUT {
                bail!(
                    "the {} cluster has no leader after {HANG_TIMEOUT:?}: {why:#}{}",
                    self.system().name(),
                    self.log_tails(15)
                );
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// A client of every running replica.
    pub async fn client(&self) -> etcd_client::Client {
        let endpoints = self.running_endpoints();
        connect_with(&endpoints, self.tls())
            .await
            .unwrap_or_else(|e| panic!("connecting to {endpoints:?}: {e}"))
    }

    /// A client of replica `index` alone.
    pub async fn client_of(&self, index: usize) -> etcd_client::Client {
        let endpoint = self.replicas[index].endpoint();
        connect_with(std::slice::from_ref(&endpoint), self.tls())
            .await
            .unwrap_or_else(|e| panic!("connecting to {endpoint}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Cluster, ClusterSpec, System};

    /// Needs `target/<profile>/berth` (`cargo build -p berth`), as every process test.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_berth_store_cluster_elects_a_leader_that_every_replica_names() {
        let mut cluster = Cluster::start(ClusterSpec::berth_store(3)).unwrap();
        let leader = cluster.wait_for_leader().await.unwrap();
        let mut client = cluster.client_of(leader).await;
        client.put("k", "v", None).await.unwrap();
        let status = super::status(&cluster.replicas[leader].endpoint(), super::STATUS_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(status.leader, status.member_id, "the leader names itself");

        cluster.kill(leader);
        let next = cluster.wait_for_leader().await.unwrap();
        assert_ne!(next, leader);
        cluster.start_replica(leader).unwrap();
        cluster.wait_for_leader().await.unwrap();
        let mut client = cluster.client().await;
        assert_eq!(client.get("k", None).await.unwrap().kvs()[0].value(), b"v");
        assert_eq!(cluster.system(), System::BerthStore);
    }
}
