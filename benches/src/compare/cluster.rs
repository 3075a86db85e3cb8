//! The clusters the comparison runs: etcd or berth replicas on loopback, started by
//! `berth_testkit` with the same flags.
//!
//! Every replica is a child process with its output in a log file next to its data
//! directory. Dropping the cluster kills (SIGKILL) every replica still running.

use std::path::Path;

pub use berth_testkit::Cluster;
use berth_testkit::{ClusterSpec, ClusterTls};

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

    /// What the launcher starts: etcd, or berth's store role.
    fn launched(self) -> berth_testkit::System {
        match self {
            System::Etcd => berth_testkit::System::Etcd,
            System::Berth => berth_testkit::System::BerthStore,
        }
    }
}

/// The timing flags both servers get.
pub const HEARTBEAT_INTERVAL_MS: u32 = 100;
pub const ELECTION_TIMEOUT_MS: u32 = 1000;

/// Starts `size` replicas of `system` with data directories and logs under `root`,
/// on https client and peer URLs with `tls`'s certificates when given.
pub fn start(
    system: System,
    binary: &Path,
    size: usize,
    root: &Path,
    tls: Option<&ClusterTls>,
) -> anyhow::Result<Cluster> {
    let mut spec = ClusterSpec::new(system.launched(), binary, size)
        .dir(root)
        .token(format!("bench-{}-{size}-{}", system.name(), std::process::id()))
        .args([
            "--initial-cluster-state".to_string(),
            "new".to_string(),
            "--heartbeat-interval".to_string(),
            HEARTBEAT_INTERVAL_MS.to_string(),
            "--election-timeout".to_string(),
            ELECTION_TIMEOUT_MS.to_string(),
        ]);
    if let Some(tls) = tls {
        spec = spec.tls(tls.clone());
    }
    Cluster::start(spec)
}
