//! A cluster of real `berth store` processes on loopback, each with its own data
//! dir and log, whose peer links all pass through [`LinkProxy`]s so the nemesis
//! can cut, delay or slow any directed link.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proxy::LinkProxy;

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// The `berth` binary.
    pub berth: PathBuf,
    /// Where data dirs and logs go.
    pub dir: PathBuf,
    /// Passed to `--test-fault` (the suite's self-test).
    pub test_fault: Option<String>,
    pub seed: u64,
}

pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    is_paused: bool,
    /// Taken out of the membership by the nemesis; not restarted by a heal.
    pub is_removed: bool,
    /// Restart with `--initial-cluster-state existing` (it was added back).
    pub joins_existing: bool,
    /// The member ID it reported last (it changes when the member is added back).
    member_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Node {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.is_paused
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub struct Cluster {
    pub spec: ClusterSpec,
    pub nodes: Vec<Node>,
    /// (from, to) → the proxy `from` dials `to` through.
    proxies: BTreeMap<(usize, usize), LinkProxy>,
    /// Every crash seen so far (a replica that exited without being killed).
    pub crashes: Vec<String>,
}

const CLUSTER_TOKEN: &str = "berth-jepsen";

/// A port for a replica to listen on for the whole run, restarts included. It is
/// taken below the kernel's ephemeral range, so no outgoing connection can be
/// holding it when a killed replica restarts.
fn reserve_port(rng: &mut crate::rng::Rng) -> Result<u16> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (lo, hi) = (10_000u64, u64::from(ephemeral_start.max(10_100)) - 1);
    for _ in 0..1000 {
        let port = rng.between(lo, hi) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port below the ephemeral range")
}

fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

impl Cluster {
    /// Starts every replica (and the proxies between them).
    pub async fn start(spec: ClusterSpec) -> Result<Cluster> {
        std::fs::create_dir_all(&spec.dir).with_context(|| format!("creating {}", spec.dir.display()))?;
        let mut nodes = Vec::new();
        // Seeded by the process too, so concurrent runs with one seed do not collide.
        let mut ports = crate::rng::Rng::new(spec.seed ^ u64::from(std::process::id()) << 20);
        for i in 0..spec.nodes {
            let name = format!("n{}", i + 1);
            let (client_port, peer_port) = (reserve_port(&mut ports)?, reserve_port(&mut ports)?);
            nodes.push(Node {
                data_dir: spec.dir.join(&name),
                log: spec.dir.join(format!("{name}.log")),
                name,
                client_port,
                peer_port,
                child: None,
                is_paused: false,
                is_removed: false,
                joins_existing: false,
                member_id: Default::default(),
            });
        }
        let mut proxies = BTreeMap::new();
        for from in 0..spec.nodes {
            for (to, target_node) in nodes.iter().enumerate() {
                if from != to {
                    let target: SocketAddr = ([127, 0, 0, 1], target_node.peer_port).into();
                    let seed = spec.seed ^ ((from as u64) << 32 | to as u64);
                    proxies.insert((from, to), LinkProxy::start(target, seed).await?);
                }
            }
        }
        let mut cluster = Cluster {
            spec,
            nodes,
            proxies,
            crashes: Vec::new(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    fn initial_cluster(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}=http://127.0.0.1:{}", n.name, n.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The command line of replica `i`: its peers are dialled through the proxies.
    pub fn args(&self, i: usize) -> Vec<String> {
        let node = &self.nodes[i];
        let peer_url = format!("http://127.0.0.1:{}", node.peer_port);
        let dial: Vec<String> = (0..self.nodes.len())
            .filter(|j| *j != i)
            .map(|j| format!("{}={}", self.nodes[j].name, self.proxies[&(i, j)].url()))
            .collect();
        let mut args = vec![
            "store".to_string(),
            "--name".into(),
            node.name.clone(),
            "--data-dir".into(),
            node.data_dir.display().to_string(),
            "--listen-client-urls".into(),
            node.endpoint(),
            "--advertise-client-urls".into(),
            node.endpoint(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url,
            "--initial-cluster".into(),
            self.initial_cluster(),
            "--initial-cluster-token".into(),
            CLUSTER_TOKEN.into(),
            "--dial-peer-urls".into(),
            dial.join(","),
        ];
        if node.joins_existing {
            args.push("--initial-cluster-state".into());
            args.push("existing".into());
        }
        if let Some(fault) = &self.spec.test_fault {
            args.push("--test-fault".into());
            args.push(fault.clone());
        }
        args
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let args = self.args(i);
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let child = Command::new(&self.spec.berth)
            .args(&args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.spec.berth.display()))?;
        node.child = Some(child);
        node.is_paused = false;
        Ok(())
    }

    /// Replicas that exited without being killed (a crash), with how and the end of
    /// their log. They are marked dead, so healing restarts them.
    pub fn reap_crashed(&mut self) -> Vec<String> {
        let mut crashed = Vec::new();
        for node in &mut self.nodes {
            let exited = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                node.child = None;
                node.is_paused = false;
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                crashed.push(format!(
                    "{} exited by itself ({status}); its log ends: {}",
                    node.name,
                    tail.join(" | ")
                ));
            }
        }
        crashed
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.is_paused = false;
    }

    pub fn restart(&mut self, i: usize) -> Result<()> {
        if !self.nodes[i].is_running() {
            self.spawn(i)?;
        }
        Ok(())
    }

    pub fn pause(&mut self, i: usize) -> Result<()> {
        if let Some(pid) = self.nodes[i].pid()
            && !self.nodes[i].is_paused
        {
            signal(pid, "STOP")?;
            self.nodes[i].is_paused = true;
        }
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> Result<()> {
        if let Some(pid) = self.nodes[i].pid()
            && self.nodes[i].is_paused
        {
            signal(pid, "CONT")?;
            self.nodes[i].is_paused = false;
        }
        Ok(())
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
        for i in 0..self.nodes.len() {
            self.resume(i)?;
            if !self.nodes[i].is_removed {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Deletes a (stopped) replica's data dir, as for a replacement machine.
    pub fn wipe(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        let dir = &self.nodes[i].data_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("wiping {}", dir.display()))?;
        }
        Ok(())
    }

    pub fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].peer_port)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(Node::endpoint).collect()
    }

    /// The replica that leads, as the running, unpaused replicas report it. Member
    /// IDs are learned from each replica's own answers (they change when a member is
    /// removed and added back), so a leader that stopped answering is still known.
    pub async fn leader(&self) -> Option<usize> {
        let mut leader = 0;
        for node in self.nodes.iter().filter(|n| n.is_running() && !n.is_paused()) {
            let Some(status) = status(&node.endpoint()).await else {
                continue;
            };
            node.member_id
                .store(status.member_id, std::sync::atomic::Ordering::Relaxed);
            if leader == 0 {
                leader = status.leader;
            }
        }
        if leader == 0 {
            return None;
        }
        self.nodes
            .iter()
            .position(|n| n.member_id.load(std::sync::atomic::Ordering::Relaxed) == leader)
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
        for i in 0..self.nodes.len() {
            let _ = self.resume(i);
            self.kill(i);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

pub struct Status {
    pub leader: u64,
    pub member_id: u64,
}

async fn connect(endpoint: &str) -> Option<etcd_client::Client> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(1));
    etcd_client::Client::connect([endpoint], Some(options)).await.ok()
}

pub async fn status(endpoint: &str) -> Option<Status> {
    let mut client = connect(endpoint).await?;
    let resp = tokio::time::timeout(Duration::from_secs(1), client.status())
        .await
        .ok()?
        .ok()?;
    Some(Status {
        leader: resp.leader(),
        member_id: resp.header()?.member_id(),
    })
}
