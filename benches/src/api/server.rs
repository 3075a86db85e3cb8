//! The `berth server` under test: one replica on loopback (store, API server and the
//! leader's control loops in one process), started by `berth_testkit` with the
//! comparison's timing flags, and what /proc says about it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_testkit::{Cluster, ClusterSpec, QUIET_RAFT_LOG, System, free_port};

use super::http::Connection;
use crate::compare::cluster::{ELECTION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS};

/// How long the server may take to elect itself and answer /readyz.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The flags the server gets besides its name, ports and data dir. The pods are bound
/// to a node that never reports, so the grace period is long enough that the node
/// lifecycle controller never evicts them during a run.
pub fn server_flags() -> Vec<String> {
    vec![
        "--initial-cluster-state".to_owned(),
        "new".to_owned(),
        "--heartbeat-interval".to_owned(),
        HEARTBEAT_INTERVAL_MS.to_string(),
        "--election-timeout".to_owned(),
        ELECTION_TIMEOUT_MS.to_string(),
        "--node-monitor-grace-period".to_owned(),
        "1h".to_owned(),
    ]
}

pub struct ServerUnderTest {
    cluster: Cluster,
    /// `127.0.0.1:PORT` of the API server.
    pub api_authority: String,
    /// How to reach an API server that serves HTTPS (None: plain HTTP).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ServerUnderTest {
    /// Starts the replica with its data dir and log under `root`.
    pub fn start(binary: &Path, root: &Path) -> anyhow::Result<ServerUnderTest> {
        Self::start_with(binary, root, Vec::new())
    }

    /// [`Self::start`], with `extra` flags after [`server_flags`].
    pub fn start_with(binary: &Path, root: &Path, extra: Vec<String>) -> anyhow::Result<ServerUnderTest> {
        let spec = ClusterSpec::new(System::BerthServer, binary, 1)
            .dir(root)
            .token(format!("bench-api-{}", std::process::id()))
            .env("RUST_LOG", QUIET_RAFT_LOG)
            .args(server_flags().into_iter().chain(extra));
        let mut cluster = Cluster::new(spec)?;
        let api_authority = format!("127.0.0.1:{}", free_port());
        cluster.replicas[0].args = vec![format!("--api-listen={api_authority}")];
        cluster.start_all()?;
        Ok(ServerUnderTest {
            cluster,
            api_authority,
            tls: None,
        })
    }

    /// Waits until the store has elected itself and the API server answers /readyz.
    pub async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        self.cluster.wait_for_leader().await?;
        let started = Instant::now();
        loop {
            self.cluster.check_running()?;
            let why = match Connection::open_with(&self.api_authority, self.tls.as_ref()).await {
                Ok(mut connection) => match connection.get("/readyz").await {
                    Ok(answer) if answer.status == 200 => return Ok(()),
                    Ok(answer) => format!("/readyz answered {}", answer.status),
                    Err(error) => format!("{error:#}"),
                },
                Err(error) => format!("{error:#}"),
            };
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the API server is not ready after {READY_TIMEOUT:?}: {why}{}",
                    self.cluster.log_tails(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The store's client URLs, for an agent to join the cluster with.
    pub fn store_endpoints(&self) -> Vec<String> {
        self.cluster.endpoints()
    }

    /// The server's log tail, for a failure's message.
    pub fn log_tail(&self, lines: usize) -> String {
        self.cluster.log_tails(lines)
    }

    /// Fails, with the log's tail, when the server has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.cluster.check_running()
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.cluster.replicas[0].pid().context("the server is not running")
    }

    /// The server's memory now, from /proc/PID/status.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid()?);
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Memory::parse(&status).with_context(|| format!("no VmRSS or VmHWM in {path}"))
    }

    /// CPU time the server has used so far (user and system, all threads).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let path = format!("/proc/{}/stat", self.pid()?);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        cpu_ticks(&stat)
            .map(|ticks| Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
            .with_context(|| format!("no utime or stime in {path}"))
    }

    /// Bytes in the data dir (the store's log and state), for the report.
    pub fn data_dir_bytes(&self) -> u64 {
        dir_bytes(&self.cluster.replicas[0].data_dir)
    }
}

/// Resident set size now and at its highest, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

impl Memory {
    pub(crate) fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            peak_rss_kib: field("VmHWM:")?,
        })
    }
}

/// utime + stime of /proc/PID/stat, in clock ticks.
pub(crate) fn cpu_ticks(stat: &str) -> Option<u64> {
    // The fields after the command name (in parentheses, which may hold spaces);
    // utime and stime are the 14th and 15th of the line, the 12th and 13th after it.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

pub(crate) fn clock_ticks_per_second() -> f64 {
    crate::compare::machine::command_output("getconf", &["CLK_TCK"])
        .and_then(|ticks| ticks.parse().ok())
        .unwrap_or(100.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |metadata| metadata.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_its_peak() {
        let status = "Name:\tberth\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n";
        assert_eq!(
            Memory::parse(status),
            Some(Memory {
                rss_kib: 102_400,
                peak_rss_kib: 204_800
            })
        );
        assert_eq!(Memory::parse("Name:\tberth\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_after_a_name_with_spaces() {
        let stat = "4242 (berth (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn own_process_has_memory_and_cpu_fields() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(Memory::parse(&status).unwrap().rss_kib > 0);
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_ticks(&stat).is_some());
    }
}
