//! [`StoreFlags`], what a `berth store` command line means once parsed: each field holds
//! the effective value, so the rest of berth never looks at a default or a derived value
//! again. Views that etcd computes from the fields (the data directory, the quota in
//! force, the retention in the light of the mode, the members) are methods here.

use std::path::PathBuf;

use super::defaults::DEFAULT_QUOTA_BACKEND_BYTES;
use super::{ClusterState, CompactionMode, CompactionRetention, FlagError, parse_retention};
use crate::config::TlsInfo;

/// The parsed command line of `berth store`. Every field holds the effective value:
/// defaults and derived values are filled in by [`parse_store_flags`](super::parse_store_flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFlags {
    pub name: String,
    /// `None` means etcd's default, `<name>.etcd`; see [`StoreFlags::data_dir`].
    pub data_dir: Option<PathBuf>,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    /// `(member name, peer URL)` in the order given; a member with several peer URLs
    /// appears once per URL, as in etcd's `n1=http://a:2380,n1=http://b:2380`.
    pub initial_cluster: Vec<(String, String)>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_count: u64,
    /// 0 means the default quota; see [`StoreFlags::effective_quota_backend_bytes`].
    pub quota_backend_bytes: u64,
    pub max_request_bytes: u64,
    pub max_concurrent_streams: u32,
    pub auto_compaction_mode: CompactionMode,
    /// As given; see [`StoreFlags::compaction_retention`] for its meaning.
    pub auto_compaction_retention: String,
    /// Refuse membership changes that would cost the quorum (etcd's default: true).
    pub strict_reconfig_check: bool,
    pub listen_metrics_urls: Vec<String>,
    pub experimental_watch_progress_notify_interval_ms: u64,
    /// 0: no periodic corruption check.
    pub experimental_corrupt_check_time_ms: u64,
    /// Compare data hashes with the peers before serving after a restart.
    pub experimental_initial_corrupt_check: bool,
    pub log_level: String,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--auto-tls`.
    pub client_tls: TlsInfo,
    /// The same flags with `--peer-`.
    pub peer_tls: TlsInfo,
    /// `--cipher-suites`, Go's names, checked.
    pub cipher_suites: Vec<String>,
    pub self_signed_cert_validity_years: u32,
    /// `--auth-token-ttl`: how long an unused simple token lives, in seconds.
    pub auth_token_ttl_seconds: u64,
    /// berth's own: `(member name, URL)` pairs through which this replica dials those
    /// members instead of their advertised peer URLs (a proxy, a NAT).
    pub dial_peer_urls: Vec<(String, String)>,
    /// berth's own, for the fault-injection suite's self-test: a guarantee to break.
    pub test_fault: Option<String>,
}

impl StoreFlags {
    /// The data directory: `--data-dir`, or `<name>.etcd` in the working directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)))
    }

    /// The backend quota in force: `--quota-backend-bytes`, or 2 GiB when it is 0.
    pub fn effective_quota_backend_bytes(&self) -> u64 {
        if self.quota_backend_bytes == 0 {
            DEFAULT_QUOTA_BACKEND_BYTES
        } else {
            self.quota_backend_bytes
        }
    }

    /// `--auto-compaction-retention` interpreted by `--auto-compaction-mode`.
    /// Cannot fail on what [`parse_store_flags`](super::parse_store_flags) returned; it returns a `Result` because
    /// the fields are public and may have been changed since.
    pub fn compaction_retention(&self) -> Result<CompactionRetention, FlagError> {
        parse_retention(self.auto_compaction_mode, &self.auto_compaction_retention)
    }

    /// `--initial-cluster` grouped by member, in order of first appearance.
    pub fn initial_cluster_members(&self) -> Vec<(&str, Vec<&str>)> {
        let mut members: Vec<(&str, Vec<&str>)> = Vec::new();
        for (name, url) in &self.initial_cluster {
            match members.iter_mut().find(|(known, _)| known == name) {
                Some((_, urls)) => urls.push(url),
                None => members.push((name, vec![url])),
            }
        }
        members
    }
}
