//! etcd 3.4's defaults, and the values derived from other flags when a command line
//! leaves them unset: the advertised URLs from the listen URLs, the initial cluster from
//! the name and the advertised peer URLs. Derivation runs after every value is applied,
//! because a flag may derive from one given later on the command line.

use super::flag::Flag;
use super::url::url_host;
use super::{ClusterState, CompactionMode, FlagError, StoreFlags};

/// etcd's default member name.
pub const DEFAULT_NAME: &str = "default";
/// What `--quota-backend-bytes 0` means: etcd's default backend quota, 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl Default for StoreFlags {
    /// etcd 3.4's defaults.
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            data_dir: None,
            listen_client_urls: vec!["http://localhost:2379".to_string()],
            advertise_client_urls: vec!["http://localhost:2379".to_string()],
            listen_peer_urls: vec!["http://localhost:2380".to_string()],
            initial_advertise_peer_urls: vec!["http://localhost:2380".to_string()],
            initial_cluster: vec![(DEFAULT_NAME.to_string(), "http://localhost:2380".to_string())],
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "etcd-cluster".to_string(),
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_count: 100_000,
            quota_backend_bytes: 0,
            max_request_bytes: 1_572_864,
            max_concurrent_streams: crate::config::DEFAULT_MAX_CONCURRENT_STREAMS,
            auto_compaction_mode: CompactionMode::Periodic,
            auto_compaction_retention: "0".to_string(),
            strict_reconfig_check: true,
            listen_metrics_urls: Vec::new(),
            experimental_watch_progress_notify_interval_ms: 10 * 60 * 1000,
            experimental_corrupt_check_time_ms: 0,
            experimental_initial_corrupt_check: false,
            log_level: "info".to_string(),
            client_tls: Default::default(),
            peer_tls: Default::default(),
            cipher_suites: Vec::new(),
            auth_token_ttl_seconds: 300,
            self_signed_cert_validity_years: 1,
            dial_peer_urls: Vec::new(),
            test_fault: None,
        }
    }
}

/// Fills in the values etcd (or berth, where kinder) derives from other flags.
pub(super) fn derive_unset(flags: &mut StoreFlags, is_set: &dyn Fn(Flag) -> bool) -> Result<(), FlagError> {
    if is_set(Flag::ListenClientUrls) && !is_set(Flag::AdvertiseClientUrls) {
        flags.advertise_client_urls = advertisable(
            &flags.listen_client_urls,
            Flag::AdvertiseClientUrls,
            Flag::ListenClientUrls,
        )?;
    }
    if is_set(Flag::ListenPeerUrls) && !is_set(Flag::InitialAdvertisePeerUrls) {
        flags.initial_advertise_peer_urls = advertisable(
            &flags.listen_peer_urls,
            Flag::InitialAdvertisePeerUrls,
            Flag::ListenPeerUrls,
        )?;
    }
    if !is_set(Flag::InitialCluster) {
        flags.initial_cluster = flags
            .initial_advertise_peer_urls
            .iter()
            .map(|url| (flags.name.clone(), url.clone()))
            .collect();
    }
    Ok(())
}

/// Listen URLs reused as advertised URLs, unless one listens on every interface and so
/// names no address anyone could dial.
fn advertisable(listen_urls: &[String], advertise_flag: Flag, listen_flag: Flag) -> Result<Vec<String>, FlagError> {
    let is_wildcard = |url: &String| {
        let host = url_host(url);
        host.is_empty() || host == "0.0.0.0" || host == "[::]"
    };
    if listen_urls.iter().any(is_wildcard) {
        return Err(FlagError::AdvertiseUrlsRequired {
            advertise_flag: advertise_flag.dashed(),
            listen_flag: listen_flag.dashed(),
        });
    }
    Ok(listen_urls.to_vec())
}
