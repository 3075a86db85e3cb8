//! The knobs every workload shares, named as in etcd's `benchmark` tool.

use std::time::Duration;

use crate::duration::parse_duration;

#[derive(clap::Args, Clone, Debug)]
pub struct LoadOptions {
    /// Client URLs of the cluster, comma-separated. Connections go to them in turn.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Number of gRPC connections.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,

    /// Number of concurrent clients, spread over the connections.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,

    /// Number of requests (for watch: of puts).
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,

    /// Stop after this long even when --total is not reached (500ms, 10s, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,

    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,

    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,

    /// Number of distinct keys the workload uses.
    #[arg(long, default_value_t = 1000)]
    pub key_space_size: u64,

    /// Use keys 0, 1, 2, ... in turn instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,

    /// Ask each endpoint's Status and connect only to the leader.
    #[arg(long)]
    pub target_leader: bool,

    /// Requests per second over all clients; 0 is as fast as they go.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,

    /// A request that takes longer counts as an error.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub request_timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            conns: 1,
            clients: 1,
            total: 10_000,
            duration: Duration::from_secs(60),
            key_size: 8,
            val_size: 256,
            key_space_size: 1000,
            sequential_keys: false,
            target_leader: false,
            rate: 0.0,
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl LoadOptions {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.endpoints.is_empty(), "--endpoints is empty");
        anyhow::ensure!(self.conns >= 1, "--conns must be at least 1");
        anyhow::ensure!(self.clients >= 1, "--clients must be at least 1");
        anyhow::ensure!(self.rate >= 0.0, "--rate must not be negative");
        Ok(())
    }
}

/// Range consistency, as etcd's benchmark spells it.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable: the read sees every write acknowledged before it started.
    L,
    /// Serializable: the replica answers from its own state, possibly stale.
    S,
}

impl Consistency {
    pub fn name(self) -> &'static str {
        match self {
            Consistency::L => "linearizable",
            Consistency::S => "serializable",
        }
    }
}
