//! The conversion from flags to [`StoreConfig`]: the only place where etcd's units
//! (milliseconds, retention strings, 0 for the default quota) become the store's types.

use std::time::Duration;

use super::{CompactionRetention, FlagError, StoreFlags};
use crate::config::{AutoCompaction, StoreConfig, TestFaults};

impl StoreFlags {
    /// The store's configuration these flags describe.
    pub fn to_config(&self) -> Result<StoreConfig, FlagError> {
        let auto_compaction = match self.compaction_retention()? {
            CompactionRetention::Disabled => None,
            CompactionRetention::Periodic { retention_ms } => {
                Some(AutoCompaction::Periodic(Duration::from_millis(retention_ms)))
            }
            CompactionRetention::Revision { revisions } => Some(AutoCompaction::Revision(revisions as i64)),
        };
        Ok(StoreConfig {
            name: self.name.clone(),
            data_dir: self.data_dir(),
            listen_client_urls: self.listen_client_urls.clone(),
            advertise_client_urls: self.advertise_client_urls.clone(),
            listen_peer_urls: self.listen_peer_urls.clone(),
            initial_advertise_peer_urls: self.initial_advertise_peer_urls.clone(),
            initial_cluster: self
                .initial_cluster_members()
                .into_iter()
                .map(|(name, urls)| (name.to_string(), urls.into_iter().map(str::to_string).collect()))
                .collect(),
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token.clone(),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            election_timeout: Duration::from_millis(self.election_timeout_ms),
            snapshot_count: self.snapshot_count,
            quota_backend_bytes: self.effective_quota_backend_bytes(),
            max_request_bytes: self.max_request_bytes as usize,
            max_concurrent_streams: self.max_concurrent_streams,
            auto_compaction,
            listen_metrics_urls: self.listen_metrics_urls.clone(),
            watch_progress_notify_interval: Duration::from_millis(self.experimental_watch_progress_notify_interval_ms),
            corrupt_check_time: (self.experimental_corrupt_check_time_ms > 0)
                .then(|| Duration::from_millis(self.experimental_corrupt_check_time_ms)),
            dial_peer_urls: self.dial_peer_urls.iter().cloned().collect(),
            client_tls: self.client_tls.clone(),
            peer_tls: self.peer_tls.clone(),
            cipher_suites: self.cipher_suites.clone(),
            self_signed_cert_validity_years: self.self_signed_cert_validity_years,
            test_faults: TestFaults {
                stale_reads: self.test_fault.as_deref() == Some("stale-reads"),
                slow_disk: self.test_fault.as_deref() == Some("slow-disk"),
            },
            initial_corrupt_check: self.experimental_initial_corrupt_check,
            strict_reconfig_check: self.strict_reconfig_check,
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl_seconds),
        })
    }
}
