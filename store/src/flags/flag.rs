//! The table of flags berth implements, and how a value given for one of them lands in
//! [`StoreFlags`]. Only what one value can say about itself is checked here (a number, a
//! URL, one of a list of words); what needs two flags waits for the validation step.

use std::path::PathBuf;

use super::url::{parse_initial_cluster, parse_urls};
use super::{ClusterState, CompactionMode, FlagError, StoreFlags, parse_duration_ms};

/// Faults `--test-fault` can switch on. `stale-reads`: serve linearizable reads from
/// the local state without a read index, which the fault-injection suite must catch.
/// `slow-disk`: let the suite slow this replica's raft log syncs (see `slow_disk`).
const TEST_FAULTS: &[&str] = &["stale-reads", "slow-disk"];
const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "dpanic", "panic", "fatal"];

/// The flags berth implements, in the order [`STORE_USAGE`](super::STORE_USAGE) lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flag {
    Name,
    DataDir,
    SnapshotCount,
    HeartbeatInterval,
    ElectionTimeout,
    ListenPeerUrls,
    ListenClientUrls,
    QuotaBackendBytes,
    MaxRequestBytes,
    MaxConcurrentStreams,
    InitialAdvertisePeerUrls,
    InitialCluster,
    InitialClusterState,
    InitialClusterToken,
    AdvertiseClientUrls,
    AutoCompactionRetention,
    AutoCompactionMode,
    StrictReconfigCheck,
    ListenMetricsUrls,
    LogLevel,
    ExperimentalInitialCorruptCheck,
    ExperimentalWatchProgressNotifyInterval,
    ExperimentalCorruptCheckTime,
    CertFile,
    KeyFile,
    ClientCertAuth,
    TrustedCaFile,
    AutoTls,
    PeerCertFile,
    PeerKeyFile,
    PeerClientCertAuth,
    PeerTrustedCaFile,
    PeerAutoTls,
    SelfSignedCertValidity,
    CipherSuites,
    AuthToken,
    AuthTokenTtl,
    DialPeerUrls,
    TestFault,
}

impl Flag {
    pub(super) const ALL: [Flag; 39] = [
        Flag::Name,
        Flag::DataDir,
        Flag::SnapshotCount,
        Flag::HeartbeatInterval,
        Flag::ElectionTimeout,
        Flag::ListenPeerUrls,
        Flag::ListenClientUrls,
        Flag::QuotaBackendBytes,
        Flag::MaxRequestBytes,
        Flag::MaxConcurrentStreams,
        Flag::InitialAdvertisePeerUrls,
        Flag::InitialCluster,
        Flag::InitialClusterState,
        Flag::InitialClusterToken,
        Flag::AdvertiseClientUrls,
        Flag::AutoCompactionRetention,
        Flag::AutoCompactionMode,
        Flag::StrictReconfigCheck,
        Flag::ListenMetricsUrls,
        Flag::LogLevel,
        Flag::ExperimentalInitialCorruptCheck,
        Flag::ExperimentalWatchProgressNotifyInterval,
        Flag::ExperimentalCorruptCheckTime,
        Flag::CertFile,
        Flag::KeyFile,
        Flag::ClientCertAuth,
        Flag::TrustedCaFile,
        Flag::AutoTls,
        Flag::PeerCertFile,
        Flag::PeerKeyFile,
        Flag::PeerClientCertAuth,
        Flag::PeerTrustedCaFile,
        Flag::PeerAutoTls,
        Flag::SelfSignedCertValidity,
        Flag::CipherSuites,
        Flag::AuthToken,
        Flag::AuthTokenTtl,
        Flag::DialPeerUrls,
        Flag::TestFault,
    ];

    /// The name without dashes, as etcd spells it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Flag::Name => "name",
            Flag::DataDir => "data-dir",
            Flag::SnapshotCount => "snapshot-count",
            Flag::HeartbeatInterval => "heartbeat-interval",
            Flag::ElectionTimeout => "election-timeout",
            Flag::ListenPeerUrls => "listen-peer-urls",
            Flag::ListenClientUrls => "listen-client-urls",
            Flag::QuotaBackendBytes => "quota-backend-bytes",
            Flag::MaxRequestBytes => "max-request-bytes",
            Flag::MaxConcurrentStreams => "max-concurrent-streams",
            Flag::InitialAdvertisePeerUrls => "initial-advertise-peer-urls",
            Flag::InitialCluster => "initial-cluster",
            Flag::InitialClusterState => "initial-cluster-state",
            Flag::InitialClusterToken => "initial-cluster-token",
            Flag::AdvertiseClientUrls => "advertise-client-urls",
            Flag::AutoCompactionRetention => "auto-compaction-retention",
            Flag::AutoCompactionMode => "auto-compaction-mode",
            Flag::StrictReconfigCheck => "strict-reconfig-check",
            Flag::ListenMetricsUrls => "listen-metrics-urls",
            Flag::LogLevel => "log-level",
            Flag::ExperimentalInitialCorruptCheck => "experimental-initial-corrupt-check",
            Flag::ExperimentalWatchProgressNotifyInterval => "experimental-watch-progress-notify-interval",
            Flag::ExperimentalCorruptCheckTime => "experimental-corrupt-check-time",
            Flag::CertFile => "cert-file",
            Flag::KeyFile => "key-file",
            Flag::ClientCertAuth => "client-cert-auth",
            Flag::TrustedCaFile => "trusted-ca-file",
            Flag::AutoTls => "auto-tls",
            Flag::PeerCertFile => "peer-cert-file",
            Flag::PeerKeyFile => "peer-key-file",
            Flag::PeerClientCertAuth => "peer-client-cert-auth",
            Flag::PeerTrustedCaFile => "peer-trusted-ca-file",
            Flag::PeerAutoTls => "peer-auto-tls",
            Flag::SelfSignedCertValidity => "self-signed-cert-validity",
            Flag::CipherSuites => "cipher-suites",
            Flag::AuthToken => "auth-token",
            Flag::AuthTokenTtl => "auth-token-ttl",
            Flag::DialPeerUrls => "dial-peer-urls",
            Flag::TestFault => "test-fault",
        }
    }

    pub(super) fn dashed(self) -> String {
        format!("--{}", self.name())
    }

    pub(super) fn from_name(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|flag| flag.name() == name)
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// A Go bool flag: `--auto-tls` alone means true and never takes the next argument
    /// as its value; `--auto-tls=false` turns it off.
    pub(super) fn is_bool(self) -> bool {
        matches!(
            self,
            Flag::StrictReconfigCheck
                | Flag::ExperimentalInitialCorruptCheck
                | Flag::ClientCertAuth
                | Flag::AutoTls
                | Flag::PeerClientCertAuth
                | Flag::PeerAutoTls
        )
    }
}

/// Sets one flag's value after checking its syntax. Checks that involve several flags
/// wait for [`check`](super::validation::check), when every value is known.
pub(super) fn apply(flags: &mut StoreFlags, flag: Flag, value: &str) -> Result<(), FlagError> {
    let invalid = |reason: &str| FlagError::InvalidValue {
        flag: flag.dashed(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    match flag {
        Flag::Name => flags.name = value.to_string(),
        Flag::DataDir => flags.data_dir = Some(PathBuf::from(value)),
        Flag::SnapshotCount => flags.snapshot_count = parse_u64(flag, value)?,
        Flag::HeartbeatInterval => flags.heartbeat_interval_ms = parse_u64(flag, value)?,
        Flag::ElectionTimeout => flags.election_timeout_ms = parse_u64(flag, value)?,
        Flag::QuotaBackendBytes => flags.quota_backend_bytes = parse_u64(flag, value)?,
        Flag::MaxRequestBytes => flags.max_request_bytes = parse_u64(flag, value)?,
        Flag::MaxConcurrentStreams => {
            flags.max_concurrent_streams = u32::try_from(parse_u64(flag, value)?)
                .ok()
                .filter(|streams| *streams > 0)
                .ok_or_else(|| invalid("must be between 1 and 4294967295"))?;
        }
        Flag::ListenPeerUrls => flags.listen_peer_urls = parse_urls(flag, value)?,
        Flag::ListenClientUrls => flags.listen_client_urls = parse_urls(flag, value)?,
        Flag::InitialAdvertisePeerUrls => {
            flags.initial_advertise_peer_urls = parse_urls(flag, value)?;
        }
        Flag::AdvertiseClientUrls => flags.advertise_client_urls = parse_urls(flag, value)?,
        Flag::ListenMetricsUrls => {
            // Unlike the other URL lists, this one may be empty: no metrics listener.
            flags.listen_metrics_urls = if value.trim().is_empty() {
                Vec::new()
            } else {
                parse_urls(flag, value)?
            };
        }
        Flag::InitialCluster => flags.initial_cluster = parse_initial_cluster(value)?,
        Flag::InitialClusterState => {
            flags.initial_cluster_state = match value {
                "new" => ClusterState::New,
                "existing" => ClusterState::Existing,
                _ => return Err(invalid("must be 'new' or 'existing'")),
            };
        }
        Flag::InitialClusterToken => flags.initial_cluster_token = value.to_string(),
        Flag::AutoCompactionMode => {
            flags.auto_compaction_mode = match value {
                "periodic" => CompactionMode::Periodic,
                "revision" => CompactionMode::Revision,
                _ => return Err(invalid("must be 'periodic' or 'revision'")),
            };
        }
        // Read against the mode in `check`, since the mode may come later.
        Flag::AutoCompactionRetention => flags.auto_compaction_retention = value.to_string(),
        Flag::StrictReconfigCheck => flags.strict_reconfig_check = parse_bool(flag, value)?,
        Flag::ExperimentalInitialCorruptCheck => flags.experimental_initial_corrupt_check = parse_bool(flag, value)?,
        Flag::LogLevel => {
            if !LOG_LEVELS.contains(&value) {
                return Err(invalid(&format!("must be one of {}", LOG_LEVELS.join(", "))));
            }
            flags.log_level = value.to_string();
        }
        Flag::CertFile => flags.client_tls.cert_file = non_empty_path(value),
        Flag::KeyFile => flags.client_tls.key_file = non_empty_path(value),
        Flag::TrustedCaFile => flags.client_tls.trusted_ca_file = non_empty_path(value),
        Flag::ClientCertAuth => flags.client_tls.client_cert_auth = parse_bool(flag, value)?,
        Flag::AutoTls => flags.client_tls.auto_tls = parse_bool(flag, value)?,
        Flag::PeerCertFile => flags.peer_tls.cert_file = non_empty_path(value),
        Flag::PeerKeyFile => flags.peer_tls.key_file = non_empty_path(value),
        Flag::PeerTrustedCaFile => flags.peer_tls.trusted_ca_file = non_empty_path(value),
        Flag::PeerClientCertAuth => flags.peer_tls.client_cert_auth = parse_bool(flag, value)?,
        Flag::PeerAutoTls => flags.peer_tls.auto_tls = parse_bool(flag, value)?,
        Flag::SelfSignedCertValidity => {
            let years = parse_u64(flag, value)?;
            if years == 0 {
                return Err(invalid("must be at least 1 (year)"));
            }
            flags.self_signed_cert_validity_years = u32::try_from(years).map_err(|_| invalid("is too many years"))?;
        }
        Flag::CipherSuites => {
            let names: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect();
            for name in &names {
                crate::tls::tls12_suite(name).map_err(|reason| invalid(&reason))?;
            }
            flags.cipher_suites = names;
        }
        Flag::AuthToken => {
            // etcd's form is a provider, then its options: `simple`, `jwt,pub-key=...`.
            match value.split(',').next().unwrap_or_default() {
                "simple" => {}
                "jwt" => return Err(invalid("jwt tokens are not supported by berth; use 'simple'")),
                _ => return Err(invalid("must be 'simple'")),
            }
        }
        Flag::AuthTokenTtl => {
            let seconds = parse_u64(flag, value)?;
            if seconds == 0 {
                return Err(invalid("must be at least 1 (second)"));
            }
            flags.auth_token_ttl_seconds = seconds;
        }
        Flag::DialPeerUrls => {
            flags.dial_peer_urls = if value.trim().is_empty() {
                Vec::new()
            } else {
                parse_initial_cluster(value)?
            };
        }
        Flag::TestFault => {
            if !TEST_FAULTS.contains(&value) {
                return Err(invalid(&format!("must be one of {}", TEST_FAULTS.join(", "))));
            }
            flags.test_fault = Some(value.to_string());
        }
        Flag::ExperimentalCorruptCheckTime => {
            flags.experimental_corrupt_check_time_ms = parse_duration_ms(value).map_err(|error| match error {
                FlagError::InvalidDuration { reason, .. } => invalid(&reason),
                other => other,
            })?;
        }
        Flag::ExperimentalWatchProgressNotifyInterval => {
            flags.experimental_watch_progress_notify_interval_ms =
                parse_duration_ms(value).map_err(|error| match error {
                    FlagError::InvalidDuration { reason, .. } => invalid(&reason),
                    other => other,
                })?;
        }
    }
    Ok(())
}

/// An empty value means "not given", as in etcd (`--cert-file=` unsets it).
fn non_empty_path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// Go's `strconv.ParseBool`, which etcd's boolean flags take.
fn parse_bool(flag: Flag, value: &str) -> Result<bool, FlagError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(FlagError::InvalidValue {
            flag: flag.dashed(),
            value: value.to_string(),
            reason: "must be true or false".to_string(),
        }),
    }
}

fn parse_u64(flag: Flag, value: &str) -> Result<u64, FlagError> {
    value.parse::<u64>().map_err(|_| {
        let is_negative = value.parse::<i64>().is_ok_and(|number| number < 0);
        FlagError::InvalidValue {
            flag: flag.dashed(),
            value: value.to_string(),
            reason: if is_negative {
                "must not be negative".to_string()
            } else {
                "not a number".to_string()
            },
        }
    })
}
