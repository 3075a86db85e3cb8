//! The suite's cluster: real `berth store` replicas launched by `berth_testkit`, whose
//! peer links all pass through [`LinkProxy`]s so the nemesis can cut, delay or slow
//! any directed link, and which remembers what the nemesis did to each replica
//! (removed from the membership, crashed).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use berth_testkit::{ClusterTls, QUIET_RAFT_LOG, System};

use crate::proxy::LinkProxy;
use crate::workload::ClientTls;

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// The `berth` binary.
    pub berth: PathBuf,
    /// Where data dirs and logs go.
    pub dir: PathBuf,
    /// Passed to `--test-fault`: `stale-reads` (the suite's self-test), or
    /// `slow-disk`, which the disk nemesis needs.
    pub test_fault: Option<String>,
    pub seed: u64,
    /// https on the client port and the peer links, taking only clients and peers
    /// with a certificate of its CA; `None` for http.
    pub tls: Option<ClusterTls>,
}

/// What the nemesis knows of one replica beyond its process.
#[derive(Default)]
struct Member {
    /// Taken out of the membership by the nemesis; not restarted by a heal.
    is_removed: bool,
    /// The member ID it reported last (it changes when the member is added back).
    member_id: AtomicU64,
}

pub struct Cluster {
    replicas: berth_testkit::Cluster,
    members: Vec<Member>,
    /// (from, to) → the proxy `from` dials `to` through.
    proxies: BTreeMap<(usize, usize), LinkProxy>,
    /// Every crash seen so far (a replica that exited without being killed).
    pub crashes: Vec<String>,
    /// What the suite's own clients present, when the cluster runs TLS.
    client_tls: Option<ClientTls>,
}

const CLUSTER_TOKEN: &str = "berth-jepsen";

/// The file in a data dir whose number (ms) every raft log sync of a replica started
/// with `--test-fault slow-disk` waits first (berth's usage text documents it).
const SLOW_DISK_CONTROL_FILE: &str = "test-fault-slow-disk-ms";

/// Makes a CA and its certificates in `dir` with `berth pki init`, and returns the
/// one pair a TLS run uses for everything: the store's peer certificate, valid for
/// 127.0.0.1 and good for servers and clients alike.
pub fn make_pki(berth: &Path, dir: &Path) -> Result<ClusterTls> {
    let output = std::process::Command::new(berth)
        .args(["pki", "init", "--dir"])
        .arg(dir)
        .output()
        .with_context(|| format!("running {} pki init", berth.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} pki init --dir {} failed ({}): {}",
        berth.display(),
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let tls = ClusterTls {
        ca_file: dir.join("ca.crt"),
        cert_file: dir.join("store").join("peer.crt"),
        key_file: dir.join("store").join("peer.key"),
    };
    for file in [&tls.ca_file, &tls.cert_file, &tls.key_file] {
        anyhow::ensure!(file.is_file(), "berth pki init made no {}", file.display());
    }
    Ok(tls)
}

impl Cluster {
    /// Starts every replica (and the proxies between them).
    pub async fn start(spec: ClusterSpec) -> Result<Cluster> {
        let mut launch = berth_testkit::ClusterSpec::new(System::BerthStore, &spec.berth, spec.nodes)
            .dir(&spec.dir)
            .token(CLUSTER_TOKEN)
            .env("RUST_LOG", QUIET_RAFT_LOG);
        if let Some(fault) = &spec.test_fault {
            launch = launch.args(["--test-fault", fault]);
        }
        let client_tls = match &spec.tls {
            Some(tls) => {
                launch = launch.tls(tls.clone());
                Some(ClientTls::load(tls)?)
            }
            None => None,
        };
        let mut replicas = berth_testkit::Cluster::new(launch)?;
        let mut proxies = BTreeMap::new();
        for from in 0..spec.nodes {
            let mut dial = Vec::new();
            for to in (0..spec.nodes).filter(|to| *to != from) {
                let target: SocketAddr = ([127, 0, 0, 1], replicas.replicas[to].peer_port).into();
                let seed = spec.seed ^ ((from as u64) << 32 | to as u64);
                let proxy = LinkProxy::start(target, seed).await?;
                // TLS passes through the proxy, so it is dialled with the scheme of
                // the replica behind it.
                let url = proxy.url(replicas.replicas[to].scheme);
                dial.push(format!("{}={url}", replicas.replicas[to].name));
                proxies.insert((from, to), proxy);
            }
            // Its peers are dialled through the proxies.
            replicas.replicas[from].dial_peer_urls = Some(dial.join(","));
        }
        replicas.start_all()?;
        Ok(Cluster {
            members: (0..spec.nodes).map(|_| Member::default()).collect(),
            replicas,
            proxies,
            crashes: Vec::new(),
            client_tls,
        })
    }

    pub fn len(&self) -> usize {
        self.replicas.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What a client presents to this cluster: the CA and certificate of a TLS run.
    pub fn client_tls(&self) -> Option<&ClientTls> {
        self.client_tls.as_ref()
    }

    pub fn name(&self, i: usize) -> String {
        self.replicas.replicas[i].name.clone()
    }

    pub fn names(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.name(i)).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        self.replicas.replicas[i].endpoint()
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.replicas.endpoints()
    }

    pub fn peer_url(&self, i: usize) -> String {
        self.replicas.replicas[i].peer_url()
    }

    pub fn is_removed(&self, i: usize) -> bool {
        self.members[i].is_removed
    }

    /// Replicas that exited without being killed (a crash), with how and the end of
    /// their log. They are marked dead, so healing restarts them.
    pub fn reap_crashed(&mut self) -> Vec<String> {
        self.replicas
            .reap_exited()
            .into_iter()
            .map(|(i, status)| {
                let replica = &self.replicas.replicas[i];
                format!(
                    "{} exited by itself ({status}); its log ends: {}",
                    replica.name,
                    replica.log_tail(5).join(" | ")
                )
            })
            .collect()
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        self.replicas.kill(i);
    }

    /// Starts replica `i` if it does not run.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if !self.replicas.replicas[i].is_running() {
            self.replicas.start_replica(i)?;
        }
        Ok(())
    }

    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.replicas.pause(i)
    }

    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.replicas.resume(i)
    }

    /// Cuts every link between different groups, in both directions.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let group_of = |n: usize| groups.iter().position(|g| g.contains(&n));
        for ((from, to), proxy) in &self.proxies {
            proxy.set_blocked(group_of(*from) != group_of(*to));
        }
    }

    /// Cuts one direction of one link.
    pub fn block(&self, from: usize, to: usize) {
        if let Some(proxy) = self.proxies.get(&(from, to)) {
            proxy.set_blocked(true);
        }
    }

    pub fn set_link(&self, from: usize, to: usize, delay: Duration, loss_percent: u64) {
        if let Some(proxy) = self.proxies.get(&(from, to)) {
            proxy.set_delay(delay);
            proxy.set_loss_percent(loss_percent);
        }
    }

    /// Makes every raft log sync of replica `i` wait `delay`, through the control file
    /// `berth store --test-fault slow-disk` reads before each sync (the replica keeps
    /// running; a removed replica has no data dir to slow).
    pub fn slow_disk(&self, i: usize, delay: Duration) -> Result<()> {
        let path = self.slow_disk_control(i);
        std::fs::write(&path, format!("{}\n", delay.as_millis()))
            .map_err(|e| anyhow::anyhow!("slowing the disk of {}: writing {}: {e}", self.name(i), path.display()))
    }

    /// Every disk back to full speed.
    pub fn heal_disks(&self) -> Result<()> {
        for i in 0..self.len() {
            let path = self.slow_disk_control(i);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("healing the disk of {}: removing {}: {e}", self.name(i), path.display()),
            }
        }
        Ok(())
    }

    fn slow_disk_control(&self, i: usize) -> PathBuf {
        self.replicas.replicas[i].data_dir.join(SLOW_DISK_CONTROL_FILE)
    }

    pub fn heal_network(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    /// Everything back: network healed, paused replicas resumed, dead ones restarted.
    pub fn heal_all(&mut self) -> Result<()> {
        let crashed = self.reap_crashed();
        self.crashes.extend(crashed);
        self.heal_network();
        self.heal_disks()?;
        for i in 0..self.len() {
            self.resume(i)?;
            if !self.members[i].is_removed {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Takes replica `i` out of the cluster after its MemberRemove: killed, its data
    /// deleted, as for a replacement machine, and left down by heals.
    pub fn remove(&mut self, i: usize) -> Result<()> {
        self.replicas.wipe(i)?;
        self.members[i].is_removed = true;
        Ok(())
    }

    /// Starts a removed replica again, empty, as a new member after its MemberAdd.
    pub fn rejoin(&mut self, i: usize) -> Result<()> {
        self.members[i].is_removed = false;
        self.replicas.replicas[i].joins_existing = true;
        self.restart(i)
    }

    /// The replica that leads, as the running, unpaused replicas report it. Member
    /// IDs are learned from each replica's own answers (they change when a member is
    /// removed and added back), so a leader that stopped answering is still known.
    pub async fn leader(&self) -> Option<usize> {
        let mut leader = 0;
        let answering = (0..self.len()).filter(|i| {
            let replica = &self.replicas.replicas[*i];
            replica.is_running() && !replica.is_paused()
        });
        for i in answering {
            let Ok(status) =
                berth_testkit::status_with(&self.endpoint(i), Duration::from_secs(1), self.replicas.tls()).await
            else {
                continue;
            };
            self.members[i].member_id.store(status.member_id, Ordering::Relaxed);
            if leader == 0 {
                leader = status.leader;
            }
        }
        if leader == 0 {
            return None;
        }
        self.members
            .iter()
            .position(|m| m.member_id.load(Ordering::Relaxed) == leader)
    }

    /// Waits until a leader is known; the time it took.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if self.leader().await.is_some() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub fn stop_all(&mut self) {
        for i in 0..self.len() {
            let _ = self.resume(i);
            self.kill(i);
        }
    }

    pub fn dir(&self) -> &Path {
        self.replicas.dir()
    }
}
