//! Through the etcd v3 API (feature `etcd`): who leads, waiting for a leader, and
//! clients of a cluster.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Cluster, HANG_TIMEOUT};

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
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    etcd_client::Client::connect(endpoints, Some(options)).await
}

/// The Status of the replica at `endpoint`, connection included, within `timeout`.
pub async fn status(endpoint: &str, timeout: Duration) -> anyhow::Result<Status> {
    let request = async {
        let options = etcd_client::ConnectOptions::new().with_connect_timeout(timeout);
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
            let status = status(&replica.endpoint(), STATUS_TIMEOUT).await?;
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
        connect(&endpoints)
            .await
            .unwrap_or_else(|e| panic!("connecting to {endpoints:?}: {e}"))
    }

    /// A client of replica `index` alone.
    pub async fn client_of(&self, index: usize) -> etcd_client::Client {
        let endpoint = self.replicas[index].endpoint();
        connect(std::slice::from_ref(&endpoint))
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
