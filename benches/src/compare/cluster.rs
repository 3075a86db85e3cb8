//! A local cluster of etcd or berth replicas on loopback, started with the same flags.
//!
//! Every replica is a child process with its output in a log file next to its data
//! directory. Dropping the cluster kills (SIGKILL) every replica still running.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::connection::member_status;

/// Which server a cluster runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Etcd,
    Berth,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Etcd => "etcd",
            System::Berth => "berth",
        }
    }
}

/// The timing flags both servers get.
pub const HEARTBEAT_INTERVAL_MS: u32 = 100;
pub const ELECTION_TIMEOUT_MS: u32 = 1000;

struct Replica {
    name: String,
    client_url: String,
    arguments: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    system: System,
    binary: PathBuf,
    replicas: Vec<Replica>,
}

impl Cluster {
    /// Starts `size` replicas of `system` with data directories and logs under `root`.
    pub fn start(system: System, binary: &Path, size: usize, root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let ports = free_ports(2 * size)?;
        let names: Vec<String> = (1..=size).map(|index| format!("n{index}")).collect();
        let peer_url = |index: usize| format!("http://127.0.0.1:{}", ports[2 * index + 1]);
        let initial_cluster = names
            .iter()
            .enumerate()
            .map(|(index, name)| format!("{name}={}", peer_url(index)))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("bench-{}-{size}-{}", system.name(), std::process::id());
        let mut cluster = Self {
            system,
            binary: binary.to_owned(),
            replicas: Vec::with_capacity(size),
        };
        for (index, name) in names.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{}", ports[2 * index]);
            let data_dir = root.join(name);
            let mut arguments: Vec<String> = Vec::new();
            if system == System::Berth {
                arguments.push("store".to_owned());
            }
            let flags = [
                ("--name", name.clone()),
                ("--data-dir", data_dir.display().to_string()),
                ("--listen-client-urls", client_url.clone()),
                ("--advertise-client-urls", client_url.clone()),
                ("--listen-peer-urls", peer_url(index)),
                ("--initial-advertise-peer-urls", peer_url(index)),
                ("--initial-cluster", initial_cluster.clone()),
                ("--initial-cluster-state", "new".to_owned()),
                ("--initial-cluster-token", token.clone()),
                ("--heartbeat-interval", HEARTBEAT_INTERVAL_MS.to_string()),
                ("--election-timeout", ELECTION_TIMEOUT_MS.to_string()),
            ];
            for (flag, value) in flags {
                arguments.push(flag.to_owned());
                arguments.push(value);
            }
            cluster.replicas.push(Replica {
                name: name.clone(),
                client_url,
                arguments,
                log_path: root.join(format!("{name}.log")),
                child: None,
            });
        }
        for index in 0..size {
            cluster.spawn(index)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let replica = &mut self.replicas[index];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&replica.log_path)
            .with_context(|| format!("opening {}", replica.log_path.display()))?;
        let child = Command::new(&self.binary)
            .args(&replica.arguments)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        replica.child = Some(child);
        Ok(())
    }

    pub fn system(&self) -> System {
        self.system
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.replicas.iter().map(|replica| replica.client_url.clone()).collect()
    }

    /// The command line of replica `index`, for the report.
    pub fn command_line(&self, index: usize) -> String {
        let mut words = vec![self.binary.display().to_string()];
        words.extend(self.replicas[index].arguments.iter().cloned());
        words.join(" ")
    }

    /// Waits until every running replica answers Status and all agree on one leader.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.check_running()?;
            let mut leaders = Vec::new();
            let mut last_error = None;
            for replica in self.replicas.iter().filter(|replica| replica.child.is_some()) {
                match member_status(&replica.client_url).await {
                    Ok(status) => leaders.push(status.leader_id),
                    Err(error) => last_error = Some(format!("{error:#}")),
                }
            }
            let is_ready = last_error.is_none()
                && leaders.first().is_some_and(|&leader| leader != 0)
                && leaders.windows(2).all(|pair| pair[0] == pair[1]);
            if is_ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} cluster not ready within {timeout:?} (leaders {leaders:?}, last error {last_error:?}){}",
                    self.system.name(),
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails when a replica that should run has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for index in 0..self.replicas.len() {
            let replica = &mut self.replicas[index];
            if let Some(child) = &mut replica.child
                && let Some(status) = child.try_wait()?
            {
                let name = replica.name.clone();
                replica.child = None;
                bail!(
                    "{} replica {name} exited with {status}{}",
                    self.system.name(),
                    self.log_tails()
                );
            }
        }
        Ok(())
    }

    /// Resident set size of each replica, in KiB, from /proc/PID/status (VmRSS).
    pub fn rss_kib(&self) -> anyhow::Result<Vec<u64>> {
        self.replicas
            .iter()
            .filter_map(|replica| replica.child.as_ref())
            .map(|child| process_rss_kib(child.id()))
            .collect()
    }

    /// Kills replica `index` with SIGKILL and reaps it.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.replicas[index].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts replica `index` again on its data directory, with the same flags.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index)?;
        self.spawn(index)
    }

    /// The last lines of every replica's log, for error messages.
    pub fn log_tails(&self) -> String {
        let mut text = String::new();
        for replica in &self.replicas {
            let log = std::fs::read_to_string(&replica.log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
            text.push_str(&format!("\n  --- {} log tail ---\n    {tail}", replica.name));
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn process_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// `count` distinct loopback ports that were free a moment ago (the OS picks them).
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        let rss_kib = process_rss_kib(std::process::id()).unwrap();
        assert!(rss_kib > 0);
    }

    #[test]
    fn ports_are_distinct() {
        let mut ports = free_ports(6).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
    }
}
