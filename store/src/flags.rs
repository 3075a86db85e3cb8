//! The command line of `berth store`, which is etcd 3.4's.
//!
//! People who run etcd already know these flags, so they keep etcd's names, defaults,
//! value syntax (`--flag value` or `--flag=value`, Go's `-flag` too), environment
//! variables (`ETCD_` + the flag name upper-cased, dashes as underscores) and the
//! wording of etcd's checks. This is plain `std` rather than clap because clap can
//! neither take Go's single-dash long flags nor tell an *unknown* flag from an etcd flag
//! berth has not implemented yet, and the second deserves its own message: silently
//! ignoring `--wal-dir` or `--cert-file` would run a store the operator did not ask for.
//!
//! ```text
//!  args ──► scan (flag → raw value; help, version, unknown and unsupported flags stop here)
//!                 │
//!  env  ──► raw values for flags the args did not set (ETCD_NAME, ...; args win)
//!                 │
//!                 ▼
//!        apply each value onto the etcd defaults (per-flag syntax checks)
//!                 │
//!                 ▼
//!        derive unset values (advertise URLs, initial cluster) and cross-check them
//!        (election timeout vs heartbeat, this member in --initial-cluster, retention)
//! ```
//!
//! Where berth is kinder than etcd, it only accepts command lines etcd refuses:
//! etcd demands `--advertise-client-urls` once `--listen-client-urls` is set and keeps
//! advertising `http://localhost:2380` when only `--listen-peer-urls` is set; berth
//! advertises the listen URLs instead when they name a host (not `0.0.0.0`), and, when
//! `--initial-cluster` is not given, builds it from `--name` and every
//! `--initial-advertise-peer-urls` URL (etcd does that only when `--name` changed).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::config::ClusterState;
use crate::config::{AutoCompaction, StoreConfig, TestFaults};

/// etcd's default member name.
pub const DEFAULT_NAME: &str = "default";
/// What `--quota-backend-bytes 0` means: etcd's default backend quota, 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd refuses election timeouts above this.
pub const MAX_ELECTION_TIMEOUT_MS: u64 = 50_000;

const ENV_PREFIX: &str = "ETCD_";
/// Faults `--test-fault` can switch on. `stale-reads`: serve linearizable reads from
/// the local state without a read index, which the fault-injection suite must catch.
const TEST_FAULTS: &[&str] = &["stale-reads"];
const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "dpanic", "panic", "fatal"];

/// `--auto-compaction-mode`: how `--auto-compaction-retention` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionMode {
    /// Keep history for a period of time.
    Periodic,
    /// Keep a number of revisions.
    Revision,
}

/// `--auto-compaction-retention` read in the light of `--auto-compaction-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionRetention {
    /// A retention of 0: never compact automatically.
    Disabled,
    Periodic {
        retention_ms: u64,
    },
    Revision {
        revisions: u64,
    },
}

/// The parsed command line of `berth store`. Every field holds the effective value:
/// defaults and derived values are filled in by [`parse_store_flags`].
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
    pub auto_compaction_mode: CompactionMode,
    /// As given; see [`StoreFlags::compaction_retention`] for its meaning.
    pub auto_compaction_retention: String,
    pub listen_metrics_urls: Vec<String>,
    pub experimental_watch_progress_notify_interval_ms: u64,
    pub log_level: String,
    /// berth's own: `(member name, URL)` pairs through which this replica dials those
    /// members instead of their advertised peer URLs (a proxy, a NAT).
    pub dial_peer_urls: Vec<(String, String)>,
    /// berth's own, for the fault-injection suite's self-test: a guarantee to break.
    pub test_fault: Option<String>,
}

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
            auto_compaction_mode: CompactionMode::Periodic,
            auto_compaction_retention: "0".to_string(),
            listen_metrics_urls: Vec::new(),
            experimental_watch_progress_notify_interval_ms: 10 * 60 * 1000,
            log_level: "info".to_string(),
            dial_peer_urls: Vec::new(),
            test_fault: None,
        }
    }
}

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
            auto_compaction,
            listen_metrics_urls: self.listen_metrics_urls.clone(),
            watch_progress_notify_interval: Duration::from_millis(self.experimental_watch_progress_notify_interval_ms),
            dial_peer_urls: self.dial_peer_urls.iter().cloned().collect(),
            test_faults: TestFaults {
                stale_reads: self.test_fault.as_deref() == Some("stale-reads"),
            },
        })
    }
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
    /// Cannot fail on what [`parse_store_flags`] returned; it returns a `Result` because
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

/// Why a command line was refused, or that it asked for help or the version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlagError {
    /// `-h`/`--help`: print [`STORE_USAGE`] and exit 0.
    Help,
    /// `--version`: print the version and exit 0.
    Version,
    UnknownFlag {
        flag: String,
    },
    /// A real etcd flag that berth does not implement yet.
    UnsupportedFlag {
        flag: String,
    },
    /// A bare word where a flag was expected (etcd takes no positional arguments).
    NotAFlag {
        arg: String,
    },
    MissingValue {
        flag: String,
    },
    InvalidValue {
        flag: String,
        value: String,
        reason: String,
    },
    InvalidUrl {
        flag: String,
        url: String,
        reason: String,
    },
    /// An `--initial-cluster` entry that is not `name=http://host:port`.
    InvalidClusterEntry {
        entry: String,
        reason: String,
    },
    /// A Go duration that does not parse ([`parse_duration_ms`]).
    InvalidDuration {
        value: String,
        reason: String,
    },
    ElectionTimeoutTooShort {
        election_timeout_ms: u64,
        heartbeat_interval_ms: u64,
    },
    ElectionTimeoutTooLong {
        election_timeout_ms: u64,
    },
    /// The listen URLs listen on every interface, so they cannot be advertised.
    AdvertiseUrlsRequired {
        advertise_flag: String,
        listen_flag: String,
    },
    MemberNotInCluster {
        name: String,
        cluster_names: Vec<String>,
    },
    PeerUrlsMismatch {
        name: String,
        cluster_urls: Vec<String>,
        advertise_urls: Vec<String>,
    },
    /// An error in a value that came from an environment variable rather than a flag.
    FromEnv {
        var: String,
        error: Box<FlagError>,
    },
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help => write!(f, "help requested"),
            Self::Version => write!(f, "version requested"),
            Self::UnknownFlag { flag } => write!(f, "unknown flag: {flag}"),
            Self::UnsupportedFlag { flag } => {
                write!(f, "flag {flag} is an etcd flag berth does not support yet")
            }
            Self::NotAFlag { arg } => write!(f, "'{arg}' is not a valid flag"),
            Self::MissingValue { flag } => write!(f, "flag needs an argument: {flag}"),
            Self::InvalidValue { flag, value, reason } => {
                write!(f, "invalid value {value:?} for flag {flag}: {reason}")
            }
            Self::InvalidUrl { flag, url, reason } => {
                write!(f, "invalid URL {url:?} for flag {flag}: {reason}")
            }
            Self::InvalidClusterEntry { entry, reason } => {
                write!(f, "invalid --initial-cluster entry {entry:?}: {reason}")
            }
            Self::InvalidDuration { value, reason } => {
                write!(f, "invalid duration {value:?}: {reason}")
            }
            Self::ElectionTimeoutTooShort {
                election_timeout_ms,
                heartbeat_interval_ms,
            } => write!(
                f,
                "--election-timeout[{election_timeout_ms}ms] should be at least as 5 times as \
                 --heartbeat-interval[{heartbeat_interval_ms}ms]"
            ),
            Self::ElectionTimeoutTooLong { election_timeout_ms } => write!(
                f,
                "--election-timeout[{election_timeout_ms}ms] is too long, and should be set \
                 less than {MAX_ELECTION_TIMEOUT_MS}ms"
            ),
            Self::AdvertiseUrlsRequired {
                advertise_flag,
                listen_flag,
            } => write!(
                f,
                "{advertise_flag} is required when {listen_flag} listens on all interfaces: \
                 other members and clients need an address they can reach"
            ),
            Self::MemberNotInCluster { name, cluster_names } => write!(
                f,
                "couldn't find local name {name:?} (--name) in --initial-cluster, which has \
                 members: {}",
                cluster_names.join(", ")
            ),
            Self::PeerUrlsMismatch {
                name,
                cluster_urls,
                advertise_urls,
            } => write!(
                f,
                "--initial-cluster has {name}={} but --initial-advertise-peer-urls is {} \
                 (member {name:?} must have exactly its advertised peer URLs)",
                cluster_urls.join(&format!(",{name}=")),
                advertise_urls.join(",")
            ),
            Self::FromEnv { var, error } => {
                write!(f, "{error} (set by environment variable {var})")
            }
        }
    }
}

impl std::error::Error for FlagError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::FromEnv { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// The flags berth implements, in the order [`STORE_USAGE`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Name,
    DataDir,
    SnapshotCount,
    HeartbeatInterval,
    ElectionTimeout,
    ListenPeerUrls,
    ListenClientUrls,
    QuotaBackendBytes,
    MaxRequestBytes,
    InitialAdvertisePeerUrls,
    InitialCluster,
    InitialClusterState,
    InitialClusterToken,
    AdvertiseClientUrls,
    AutoCompactionRetention,
    AutoCompactionMode,
    ListenMetricsUrls,
    LogLevel,
    ExperimentalWatchProgressNotifyInterval,
    DialPeerUrls,
    TestFault,
}

impl Flag {
    const ALL: [Flag; 21] = [
        Flag::Name,
        Flag::DataDir,
        Flag::SnapshotCount,
        Flag::HeartbeatInterval,
        Flag::ElectionTimeout,
        Flag::ListenPeerUrls,
        Flag::ListenClientUrls,
        Flag::QuotaBackendBytes,
        Flag::MaxRequestBytes,
        Flag::InitialAdvertisePeerUrls,
        Flag::InitialCluster,
        Flag::InitialClusterState,
        Flag::InitialClusterToken,
        Flag::AdvertiseClientUrls,
        Flag::AutoCompactionRetention,
        Flag::AutoCompactionMode,
        Flag::ListenMetricsUrls,
        Flag::LogLevel,
        Flag::ExperimentalWatchProgressNotifyInterval,
        Flag::DialPeerUrls,
        Flag::TestFault,
    ];

    /// The name without dashes, as etcd spells it.
    fn name(self) -> &'static str {
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
            Flag::InitialAdvertisePeerUrls => "initial-advertise-peer-urls",
            Flag::InitialCluster => "initial-cluster",
            Flag::InitialClusterState => "initial-cluster-state",
            Flag::InitialClusterToken => "initial-cluster-token",
            Flag::AdvertiseClientUrls => "advertise-client-urls",
            Flag::AutoCompactionRetention => "auto-compaction-retention",
            Flag::AutoCompactionMode => "auto-compaction-mode",
            Flag::ListenMetricsUrls => "listen-metrics-urls",
            Flag::LogLevel => "log-level",
            Flag::ExperimentalWatchProgressNotifyInterval => "experimental-watch-progress-notify-interval",
            Flag::DialPeerUrls => "dial-peer-urls",
            Flag::TestFault => "test-fault",
        }
    }

    fn dashed(self) -> String {
        format!("--{}", self.name())
    }

    fn from_name(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|flag| flag.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// etcd 3.4 and 3.5 flags that berth does not implement (yet). Refused by name so that
/// an operator copying an etcd command line learns what berth would have ignored.
const UNSUPPORTED_FLAGS: &[&str] = &[
    "config-file",
    "wal-dir",
    "max-snapshots",
    "max-wals",
    "max-txn-ops",
    "max-concurrent-streams",
    "max-learners",
    "initial-election-tick-advance",
    "pre-vote",
    "strict-reconfig-check",
    "force-new-cluster",
    "enable-v2",
    "v2-deprecation",
    "enable-grpc-gateway",
    "enable-pprof",
    "metrics",
    "logger",
    "log-outputs",
    "log-format",
    "enable-log-rotation",
    "debug",
    "log-package-levels",
    "cors",
    "host-whitelist",
    "listen-client-http-urls",
    "unsafe-no-fsync",
    "auth-token",
    "auth-token-ttl",
    "bcrypt-cost",
    "cert-file",
    "key-file",
    "ca-file",
    "client-cert-auth",
    "client-crl-file",
    "client-cert-allowed-hostname",
    "client-cert-file",
    "client-key-file",
    "trusted-ca-file",
    "auto-tls",
    "self-signed-cert-validity",
    "cipher-suites",
];

/// Families of unsupported etcd flags, matched by prefix (after the exact supported
/// names, so `--experimental-watch-progress-notify-interval` is still accepted).
const UNSUPPORTED_FLAG_PREFIXES: &[&str] = &[
    "experimental-",
    "discovery",
    "proxy",
    "peer-",
    "grpc-keepalive-",
    "socket-reuse-",
    "backend-batch-",
    "tls-",
    "log-rotation-",
];

fn is_unsupported(name: &str) -> bool {
    UNSUPPORTED_FLAGS.contains(&name) || UNSUPPORTED_FLAG_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// etcd's environment variable for a flag: `data-dir` → `ETCD_DATA_DIR`.
fn env_var_name(flag_name: &str) -> String {
    format!("{ENV_PREFIX}{}", flag_name.to_ascii_uppercase().replace('-', "_"))
}

/// Where a raw value came from, so that errors can say so.
#[derive(Debug, Clone)]
enum Source {
    Arg,
    Env(String),
}

impl Source {
    fn attach(&self, error: FlagError) -> FlagError {
        match self {
            Source::Arg => error,
            Source::Env(var) => FlagError::FromEnv {
                var: var.clone(),
                error: Box::new(error),
            },
        }
    }
}

/// Parses the arguments after `berth store`, with etcd's `ETCD_*` environment variables
/// filling in flags that the arguments do not set.
pub fn parse_store_flags(args: &[String]) -> Result<StoreFlags, FlagError> {
    parse_store_flags_with_env(args, &|var| std::env::var(var).ok())
}

/// [`parse_store_flags`] with the environment given as a lookup, for tests.
pub fn parse_store_flags_with_env(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreFlags, FlagError> {
    let mut raw: Vec<Option<(String, Source)>> = vec![None; Flag::ALL.len()];
    scan_args(args, &mut raw)?;
    read_env(env, &mut raw)?;

    let mut flags = StoreFlags::default();
    for flag in Flag::ALL {
        if let Some((value, source)) = &raw[flag.index()] {
            apply(&mut flags, flag, value).map_err(|error| source.attach(error))?;
        }
    }
    let is_set = |flag: Flag| raw[flag.index()].is_some();
    derive_unset(&mut flags, &is_set)?;
    check(&flags, &raw)?;
    Ok(flags)
}

/// Reads flags and their raw values off the command line, the last occurrence of a
/// flag winning as in Go's flag package.
fn scan_args(args: &[String], raw: &mut [Option<(String, Source)>]) -> Result<(), FlagError> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            // Go's flag package stops at "--"; etcd then refuses whatever follows.
            return match args.next() {
                Some(rest) => Err(FlagError::NotAFlag { arg: rest.clone() }),
                None => Ok(()),
            };
        }
        // Go accepts `-flag` as well as `--flag`.
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|body| !body.is_empty())
        else {
            return Err(FlagError::NotAFlag { arg: arg.clone() });
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        match name {
            "h" | "help" => return Err(FlagError::Help),
            "version" => return Err(FlagError::Version),
            _ => {}
        }
        let Some(flag) = Flag::from_name(name) else {
            let flag = format!("--{name}");
            return Err(if is_unsupported(name) {
                FlagError::UnsupportedFlag { flag }
            } else {
                FlagError::UnknownFlag { flag }
            });
        };
        let value = match inline_value {
            Some(value) => value.to_string(),
            // Unlike Go, a following `--other-flag` is not taken as the value: that is
            // always a forgotten value, and swallowing the next flag hides the mistake.
            None => match args.next() {
                Some(next) if !next.starts_with("--") => next.clone(),
                _ => {
                    return Err(FlagError::MissingValue { flag: flag.dashed() });
                }
            },
        };
        raw[flag.index()] = Some((value, Source::Arg));
    }
    Ok(())
}

/// Fills in flags the command line did not set from `ETCD_*` variables, and refuses
/// variables that set unsupported etcd flags, as the flags themselves are refused.
/// Empty variables are ignored, as etcd does.
fn read_env(env: &dyn Fn(&str) -> Option<String>, raw: &mut [Option<(String, Source)>]) -> Result<(), FlagError> {
    let lookup = |var: &str| env(var).filter(|value| !value.is_empty());
    for flag in Flag::ALL {
        if raw[flag.index()].is_some() {
            continue;
        }
        let var = env_var_name(flag.name());
        if let Some(value) = lookup(&var) {
            raw[flag.index()] = Some((value, Source::Env(var)));
        }
    }
    for name in UNSUPPORTED_FLAGS {
        let var = env_var_name(name);
        if lookup(&var).is_some() {
            return Err(Source::Env(var).attach(FlagError::UnsupportedFlag {
                flag: format!("--{name}"),
            }));
        }
    }
    Ok(())
}

/// Sets one flag's value after checking its syntax. Checks that involve several flags
/// wait for [`check`], when every value is known.
fn apply(flags: &mut StoreFlags, flag: Flag, value: &str) -> Result<(), FlagError> {
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
        Flag::LogLevel => {
            if !LOG_LEVELS.contains(&value) {
                return Err(invalid(&format!("must be one of {}", LOG_LEVELS.join(", "))));
            }
            flags.log_level = value.to_string();
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

/// Fills in the values etcd (or berth, where kinder) derives from other flags.
fn derive_unset(flags: &mut StoreFlags, is_set: &dyn Fn(Flag) -> bool) -> Result<(), FlagError> {
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

/// The host of a URL that [`check_url`] accepted (brackets kept for IPv6).
fn url_host(url: &str) -> &str {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    authority.rsplit_once(':').map_or(authority, |(host, _port)| host)
}

/// The checks that involve several flags, in etcd's order.
fn check(flags: &StoreFlags, raw: &[Option<(String, Source)>]) -> Result<(), FlagError> {
    let source_of = |flag: Flag| {
        raw[flag.index()]
            .as_ref()
            .map_or(Source::Arg, |(_, source)| source.clone())
    };

    if flags.heartbeat_interval_ms == 0 {
        return Err(source_of(Flag::HeartbeatInterval).attach(FlagError::InvalidValue {
            flag: Flag::HeartbeatInterval.dashed(),
            value: "0".to_string(),
            reason: "must be greater than 0".to_string(),
        }));
    }
    if flags.heartbeat_interval_ms.saturating_mul(5) > flags.election_timeout_ms {
        return Err(FlagError::ElectionTimeoutTooShort {
            election_timeout_ms: flags.election_timeout_ms,
            heartbeat_interval_ms: flags.heartbeat_interval_ms,
        });
    }
    if flags.election_timeout_ms > MAX_ELECTION_TIMEOUT_MS {
        return Err(FlagError::ElectionTimeoutTooLong {
            election_timeout_ms: flags.election_timeout_ms,
        });
    }

    flags
        .compaction_retention()
        .map_err(|error| source_of(Flag::AutoCompactionRetention).attach(error))?;

    check_local_member(flags).map_err(|error| source_of(Flag::InitialCluster).attach(error))
}

/// etcd's bootstrap check: this member is in `--initial-cluster`, and when bootstrapping
/// a new cluster, with exactly the peer URLs it advertises (a member joining an existing
/// cluster learns its URLs from the cluster, so etcd only wants its name there). Also
/// refuses a peer URL given to two members, which could never be told apart.
fn check_local_member(flags: &StoreFlags) -> Result<(), FlagError> {
    for (index, (name, url)) in flags.initial_cluster.iter().enumerate() {
        if flags.initial_cluster[..index].iter().any(|(_, earlier)| earlier == url) {
            return Err(FlagError::InvalidClusterEntry {
                entry: format!("{name}={url}"),
                reason: format!("peer URL {url} appears more than once"),
            });
        }
    }

    let members = flags.initial_cluster_members();
    let Some((_, cluster_urls)) = members.iter().find(|(name, _)| *name == flags.name) else {
        return Err(FlagError::MemberNotInCluster {
            name: flags.name.clone(),
            cluster_names: members.iter().map(|(name, _)| name.to_string()).collect(),
        });
    };
    if flags.initial_cluster_state == ClusterState::Existing {
        return Ok(());
    }
    let mut cluster_sorted: Vec<&str> = cluster_urls.clone();
    cluster_sorted.sort_unstable();
    let mut advertised_sorted: Vec<&str> = flags.initial_advertise_peer_urls.iter().map(String::as_str).collect();
    advertised_sorted.sort_unstable();
    advertised_sorted.dedup();
    if cluster_sorted != advertised_sorted {
        return Err(FlagError::PeerUrlsMismatch {
            name: flags.name.clone(),
            cluster_urls: cluster_urls.iter().map(|url| url.to_string()).collect(),
            advertise_urls: flags.initial_advertise_peer_urls.clone(),
        });
    }
    Ok(())
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

/// A comma-separated list of at least one `http://host:port` URL.
fn parse_urls(flag: Flag, value: &str) -> Result<Vec<String>, FlagError> {
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(FlagError::InvalidValue {
            flag: flag.dashed(),
            value: value.to_string(),
            reason: "at least one URL is required".to_string(),
        });
    }
    for url in &urls {
        check_url(url).map_err(|reason| FlagError::InvalidUrl {
            flag: flag.dashed(),
            url: url.clone(),
            reason,
        })?;
    }
    Ok(urls)
}

/// Accepts what berth can serve: `http://host:port` with a numeric port and nothing
/// after it (etcd refuses paths too). An empty host or `0.0.0.0` means every interface.
fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, authority)) = url.split_once("://") else {
        return Err("expected http://host:port".to_string());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        "https" | "unixs" => return Err("TLS is not supported yet".to_string()),
        "unix" => return Err("unix sockets are not supported yet".to_string()),
        _ => return Err(format!("URL scheme must be http, not {scheme:?}")),
    }
    if authority.contains(['/', '?', '#']) {
        return Err("URL must not contain a path".to_string());
    }
    if authority.contains('@') {
        return Err("URL must not contain a user name".to_string());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((_ipv6, after)) = bracketed.split_once(']') else {
            return Err("unclosed '[' in an IPv6 address".to_string());
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(r#"URL address does not have the form "host:port""#.to_string());
        };
        (&authority[..authority.len() - after.len()], port)
    } else {
        let Some((host, port)) = authority.split_once(':') else {
            return Err(r#"URL address does not have the form "host:port""#.to_string());
        };
        if port.contains(':') {
            return Err("an IPv6 address must be written in brackets: [::1]:2379".to_string());
        }
        (host, port)
    };
    if host.contains(char::is_whitespace) {
        return Err("the host must not contain spaces".to_string());
    }
    if port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("port {port} is out of range (0-65535)"));
    }
    Ok(())
}

/// `n1=http://a:2380,n2=http://b:2380`, a name repeated for each of several URLs.
fn parse_initial_cluster(value: &str) -> Result<Vec<(String, String)>, FlagError> {
    let mut members = Vec::new();
    // Empty entries are skipped, as Go's url.ParseQuery (which etcd uses) skips them.
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let invalid = |reason: String| FlagError::InvalidClusterEntry {
            entry: entry.to_string(),
            reason,
        };
        let Some((name, url)) = entry.split_once('=') else {
            return Err(invalid("expected name=http://host:port".to_string()));
        };
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty() {
            return Err(invalid("the member name is empty".to_string()));
        }
        check_url(url).map_err(|reason| invalid(format!("peer URL {url:?}: {reason}")))?;
        members.push((name.to_string(), url.to_string()));
    }
    if members.is_empty() {
        return Err(FlagError::InvalidValue {
            flag: Flag::InitialCluster.dashed(),
            value: value.to_string(),
            reason: "at least one member is required".to_string(),
        });
    }
    Ok(members)
}

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers, each
/// with an optional fraction and a unit out of `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`,
/// as in "500ms", "1.5h" or "1h30m"; "0" needs no unit. Negative durations are refused,
/// since nothing berth configures can go back in time. Truncates to whole milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, FlagError> {
    const NANOS_PER_MS: u128 = 1_000_000;
    // Go's limit: a duration is an i64 count of nanoseconds.
    const MAX_NANOS: u128 = i64::MAX as u128;
    let invalid = |reason: &str| FlagError::InvalidDuration {
        value: s.to_string(),
        reason: reason.to_string(),
    };

    let unsigned = s.strip_prefix('+').unwrap_or(s);
    if unsigned.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    if unsigned == "0" {
        return Ok(0);
    }
    if unsigned.is_empty() {
        return Err(invalid("empty duration"));
    }

    let mut rest = unsigned;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let integer_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (integer, after_integer) = rest.split_at(integer_len);
        let (fraction, after_number) = match after_integer.strip_prefix('.') {
            Some(after_dot) => {
                let len = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
                after_dot.split_at(len)
            }
            None => ("", after_integer),
        };
        if integer.is_empty() && fraction.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "" => return Err(invalid("missing unit (one of ns, us, ms, s, m, h)")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 60 * 60 * 1_000_000_000,
            _ => return Err(invalid(&format!("unknown unit {unit:?}"))),
        };

        let too_long = || invalid("too long (Go durations stop near 292 years)");
        let integer_value: u128 = if integer.is_empty() {
            0
        } else {
            integer.parse().map_err(|_| too_long())?
        };
        let mut nanos = integer_value.checked_mul(unit_nanos).ok_or_else(too_long)?;
        // Digits past the nineteenth cannot matter to a nanosecond count of a unit of
        // at most an hour (3.6e12 ns), and dropping them keeps the arithmetic in range.
        let fraction = &fraction[..fraction.len().min(19)];
        if !fraction.is_empty() {
            let numerator: u128 = fraction.parse().map_err(|_| too_long())?;
            let denominator = 10u128.pow(fraction.len() as u32);
            nanos += numerator * unit_nanos / denominator;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(too_long)?;
        if total_nanos > MAX_NANOS {
            return Err(too_long());
        }
        rest = after_unit;
    }
    // Fits: MAX_NANOS / 1e6 is far below u64::MAX.
    Ok((total_nanos / NANOS_PER_MS) as u64)
}

/// Reads `--auto-compaction-retention` as etcd does: in `periodic` mode a Go duration
/// or a bare integer count of hours ("1" = 1h); in `revision` mode an integer count of
/// revisions. A retention of 0 turns auto compaction off.
pub fn parse_retention(mode: CompactionMode, s: &str) -> Result<CompactionRetention, FlagError> {
    let invalid = |reason: String| FlagError::InvalidValue {
        flag: Flag::AutoCompactionRetention.dashed(),
        value: s.to_string(),
        reason,
    };
    let retention = match mode {
        CompactionMode::Revision => {
            let revisions = s.parse::<u64>().map_err(|_| {
                invalid("not a number (in revision mode the retention is a count of revisions)".to_string())
            })?;
            // etcd's revisions are i64s; a larger retention could only be a mistake.
            if i64::try_from(revisions).is_err() {
                return Err(invalid("too many revisions".to_string()));
            }
            CompactionRetention::Revision { revisions }
        }
        CompactionMode::Periodic => {
            let retention_ms = match s.parse::<u64>() {
                Ok(hours) => hours
                    .checked_mul(60 * 60 * 1000)
                    .ok_or_else(|| invalid("too many hours".to_string()))?,
                Err(_) => parse_duration_ms(s).map_err(|error| match error {
                    FlagError::InvalidDuration { reason, .. } => invalid(format!(
                        "not a duration such as 1h or 30m, nor a number of hours ({reason})"
                    )),
                    other => other,
                })?,
            };
            CompactionRetention::Periodic { retention_ms }
        }
    };
    Ok(match retention {
        CompactionRetention::Periodic { retention_ms: 0 } | CompactionRetention::Revision { revisions: 0 } => {
            CompactionRetention::Disabled
        }
        other => other,
    })
}

/// `berth store --help`, laid out like etcd's.
pub const STORE_USAGE: &str = "\
Usage:

  berth store [flags]
    Start a berth store replica: an etcd-compatible key-value server (etcdctl works).

  berth store --version
    Show the version of berth.

  berth store -h | --help
    Show this help.

Flags are etcd's: `--flag value` or `--flag=value`. Each can also be set by an
environment variable, ETCD_ followed by the flag name in upper case with dashes as
underscores (ETCD_NAME, ETCD_INITIAL_CLUSTER, ...); a flag on the command line wins.

Member:
  --name 'default'
    Human-readable name for this member.
  --data-dir '${name}.etcd'
    Path to the data directory.
  --snapshot-count '100000'
    Number of committed transactions to trigger a snapshot to disk.
  --heartbeat-interval '100'
    Time (in milliseconds) of a heartbeat interval.
  --election-timeout '1000'
    Time (in milliseconds) for an election to timeout. At least 5 times the heartbeat
    interval, at most 50000.
  --listen-peer-urls 'http://localhost:2380'
    List of URLs to listen on for peer traffic.
  --listen-client-urls 'http://localhost:2379'
    List of URLs to listen on for client traffic.
  --quota-backend-bytes '0'
    Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).
  --max-request-bytes '1572864'
    Maximum client request size in bytes the server will accept.

Clustering:
  --initial-advertise-peer-urls 'http://localhost:2380'
    List of this member's peer URLs to advertise to the rest of the cluster.
    Defaults to --listen-peer-urls when those are set and name a host.
  --initial-cluster 'default=http://localhost:2380'
    Initial cluster configuration for bootstrapping: name=peer-url,... (a name
    repeats for each of its URLs). Defaults to ${name}=${initial-advertise-peer-urls}.
  --initial-cluster-state 'new'
    Initial cluster state ('new' or 'existing').
  --initial-cluster-token 'etcd-cluster'
    Initial cluster token for the etcd cluster during bootstrap.
  --advertise-client-urls 'http://localhost:2379'
    List of this member's client URLs to advertise to the public.
    Defaults to --listen-client-urls when those are set and name a host.
  --auto-compaction-retention '0'
    Auto compaction retention length. 0 means disable auto compaction.
  --auto-compaction-mode 'periodic'
    Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for
    duration based retention, defaulting to hours if no time unit is provided (e.g.
    '5m'). 'revision' for revision number based retention.

Profiling and Monitoring:
  --listen-metrics-urls ''
    List of URLs to listen on for the metrics and health endpoints.

Logging:
  --log-level 'info'
    Configures log level. Only supports debug, info, warn, error, panic, or fatal.

Experimental feature:
  --experimental-watch-progress-notify-interval '10m'
    Duration of periodical watch progress notification.

berth's own flags:
  --dial-peer-urls ''
    Reach the named members through these URLs instead of their advertised peer
    URLs, as name=url,name=url (a proxy in front of them; the fault-injection
    suite routes every peer link through one).
  --test-fault ''
    Deliberately break a guarantee, for the fault-injection suite's self-test:
    stale-reads (linearizable reads served locally, without a read index).
    Never use it for real data.

URLs are http://host:port; TLS (https) and unix sockets are not supported yet.
Other etcd flags (--wal-dir, --cert-file, --discovery, --proxy, ...) are refused
by name until berth supports them.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(line: &str) -> Result<StoreFlags, FlagError> {
        parse_store_flags_with_env(&args(line), &no_env)
    }

    fn parse_err(line: &str) -> String {
        match parse(line) {
            Ok(flags) => panic!("{line:?} parsed, to {flags:?}"),
            Err(error) => error.to_string(),
        }
    }

    const THREE_MEMBERS: &str = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380";

    #[test]
    fn no_flags_gives_etcd_defaults() {
        let flags = parse("").unwrap();
        assert_eq!(flags, StoreFlags::default());
        assert_eq!(flags.name, "default");
        assert_eq!(flags.data_dir(), PathBuf::from("default.etcd"));
        assert_eq!(flags.listen_client_urls, ["http://localhost:2379"]);
        assert_eq!(flags.advertise_client_urls, ["http://localhost:2379"]);
        assert_eq!(flags.listen_peer_urls, ["http://localhost:2380"]);
        assert_eq!(flags.initial_advertise_peer_urls, ["http://localhost:2380"]);
        assert_eq!(
            flags.initial_cluster,
            [("default".to_string(), "http://localhost:2380".to_string())]
        );
        assert_eq!(flags.initial_cluster_state, ClusterState::New);
        assert_eq!(flags.initial_cluster_token, "etcd-cluster");
        assert_eq!(flags.heartbeat_interval_ms, 100);
        assert_eq!(flags.election_timeout_ms, 1000);
        assert_eq!(flags.snapshot_count, 100_000);
        assert_eq!(flags.quota_backend_bytes, 0);
        assert_eq!(flags.effective_quota_backend_bytes(), 2 * 1024 * 1024 * 1024);
        assert_eq!(flags.max_request_bytes, 1_572_864);
        assert_eq!(flags.auto_compaction_mode, CompactionMode::Periodic);
        assert_eq!(flags.auto_compaction_retention, "0");
        assert_eq!(flags.compaction_retention().unwrap(), CompactionRetention::Disabled);
        assert!(flags.listen_metrics_urls.is_empty());
        assert_eq!(flags.experimental_watch_progress_notify_interval_ms, 600_000);
        assert_eq!(flags.log_level, "info");
    }

    #[test]
    fn a_three_member_command_line() {
        let flags = parse(&format!(
            "--name n2 --data-dir /tmp/berth/n2 \
             --listen-client-urls http://127.0.0.1:22379 \
             --advertise-client-urls http://127.0.0.1:22379 \
             --listen-peer-urls http://127.0.0.1:22380 \
             --initial-advertise-peer-urls http://127.0.0.1:22380 \
             --initial-cluster {THREE_MEMBERS} \
             --initial-cluster-state new --initial-cluster-token tok \
             --heartbeat-interval 50 --election-timeout 500 --snapshot-count 10 \
             --quota-backend-bytes 1024 --max-request-bytes 2048 \
             --auto-compaction-mode revision --auto-compaction-retention 1000 \
             --listen-metrics-urls http://127.0.0.1:22381 --log-level debug \
             --experimental-watch-progress-notify-interval 5s"
        ))
        .unwrap();
        assert_eq!(flags.name, "n2");
        assert_eq!(flags.data_dir(), PathBuf::from("/tmp/berth/n2"));
        assert_eq!(flags.initial_cluster.len(), 3);
        assert_eq!(flags.initial_cluster[1].0, "n2");
        assert_eq!(flags.initial_cluster_token, "tok");
        assert_eq!(flags.heartbeat_interval_ms, 50);
        assert_eq!(flags.election_timeout_ms, 500);
        assert_eq!(flags.snapshot_count, 10);
        assert_eq!(flags.effective_quota_backend_bytes(), 1024);
        assert_eq!(flags.max_request_bytes, 2048);
        assert_eq!(
            flags.compaction_retention().unwrap(),
            CompactionRetention::Revision { revisions: 1000 }
        );
        assert_eq!(flags.listen_metrics_urls, ["http://127.0.0.1:22381"]);
        assert_eq!(flags.log_level, "debug");
        assert_eq!(flags.experimental_watch_progress_notify_interval_ms, 5000);
    }

    #[test]
    fn equals_form_and_single_dash_form() {
        let flags = parse(
            "--name=n1 -data-dir=/d --heartbeat-interval=10 -election-timeout 50 \
             --initial-cluster=n1=http://localhost:2380",
        )
        .unwrap();
        assert_eq!(flags.name, "n1");
        assert_eq!(flags.data_dir(), PathBuf::from("/d"));
        assert_eq!(flags.heartbeat_interval_ms, 10);
        assert_eq!(flags.election_timeout_ms, 50);
        assert_eq!(
            flags.initial_cluster,
            [("n1".to_string(), "http://localhost:2380".to_string())]
        );
    }

    #[test]
    fn an_empty_inline_value_is_a_value() {
        assert_eq!(parse("--initial-cluster-token=").unwrap().initial_cluster_token, "");
    }

    #[test]
    fn the_last_occurrence_of_a_flag_wins() {
        assert_eq!(
            parse("--snapshot-count 1 --snapshot-count 2").unwrap().snapshot_count,
            2
        );
    }

    #[test]
    fn help_and_version_are_their_own_errors() {
        for line in ["-h", "--help", "-help", "--name n1 --help"] {
            assert_eq!(parse(line), Err(FlagError::Help), "{line}");
        }
        assert_eq!(parse("--version"), Err(FlagError::Version));
        assert!(STORE_USAGE.contains("--initial-cluster"));
        for flag in Flag::ALL {
            assert!(STORE_USAGE.contains(&flag.dashed()), "usage lacks {}", flag.dashed());
        }
    }

    #[test]
    fn unknown_flags_are_refused_by_name() {
        assert_eq!(parse_err("--foo"), "unknown flag: --foo");
        assert_eq!(parse_err("--foo=1"), "unknown flag: --foo");
        assert_eq!(parse_err("-x"), "unknown flag: --x");
    }

    #[test]
    fn unsupported_etcd_flags_are_refused_by_name() {
        assert_eq!(
            parse_err("--wal-dir /w"),
            "flag --wal-dir is an etcd flag berth does not support yet"
        );
        for flag in [
            "--max-snapshots",
            "--max-wals",
            "--cors",
            "--enable-v2",
            "--discovery",
            "--discovery-srv",
            "--discovery-fallback",
            "--discovery-proxy",
            "--proxy",
            "--proxy-dial-timeout",
            "--cert-file",
            "--key-file",
            "--client-cert-auth",
            "--trusted-ca-file",
            "--auto-tls",
            "--peer-cert-file",
            "--peer-key-file",
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            "--peer-auto-tls",
            "--grpc-keepalive-min-time",
            "--enable-pprof",
            "--metrics",
            "--logger",
            "--log-outputs",
            "--auth-token",
            "--strict-reconfig-check",
            "--enable-grpc-gateway",
            "--force-new-cluster",
            "--experimental-initial-corrupt-check",
            "--experimental-enable-lease-checkpoint",
            "--pre-vote",
            "--initial-election-tick-advance",
            "--listen-client-http-urls",
            "--socket-reuse-port",
            "--max-txn-ops",
            "--backend-batch-limit",
            "--unsafe-no-fsync",
            "--self-signed-cert-validity",
            "--tls-min-version",
            "--cipher-suites",
            "--config-file",
        ] {
            let message = parse_err(&format!("{flag} x"));
            assert_eq!(
                message,
                format!("flag {flag} is an etcd flag berth does not support yet")
            );
            // The `=` form and a bare boolean are refused the same way.
            assert_eq!(parse_err(&format!("{flag}=true")), message);
            assert_eq!(parse_err(flag), message);
        }
    }

    #[test]
    fn a_missing_value_names_the_flag() {
        assert_eq!(parse_err("--name"), "flag needs an argument: --name");
        assert_eq!(parse_err("--data-dir --name n1"), "flag needs an argument: --data-dir");
    }

    #[test]
    fn a_bare_word_is_not_a_flag() {
        assert_eq!(parse_err("bogus"), "'bogus' is not a valid flag");
        assert_eq!(parse_err("--name n1 extra"), "'extra' is not a valid flag");
        assert_eq!(parse_err("-- extra"), "'extra' is not a valid flag");
        assert_eq!(parse("--name n1 --").unwrap().name, "n1");
    }

    #[test]
    fn bad_numbers_name_the_flag() {
        assert_eq!(
            parse_err("--heartbeat-interval abc"),
            r#"invalid value "abc" for flag --heartbeat-interval: not a number"#
        );
        for flag in [
            "--election-timeout",
            "--snapshot-count",
            "--quota-backend-bytes",
            "--max-request-bytes",
        ] {
            assert_eq!(
                parse_err(&format!("{flag} 1.5")),
                format!(r#"invalid value "1.5" for flag {flag}: not a number"#)
            );
        }
        assert_eq!(
            parse_err("--quota-backend-bytes=-1"),
            r#"invalid value "-1" for flag --quota-backend-bytes: must not be negative"#
        );
        assert!(parse_err("--heartbeat-interval 0").contains("--heartbeat-interval"));
    }

    #[test]
    fn bad_urls_name_the_flag_and_the_url() {
        let cases = [
            (
                "--listen-client-urls",
                "https://127.0.0.1:2379",
                "TLS is not supported yet",
            ),
            ("--advertise-client-urls", "http://127.0.0.1", "host:port"),
            ("--listen-peer-urls", "http://127.0.0.1:abc", "not a number"),
            ("--initial-advertise-peer-urls", "http://h:99999", "out of range"),
            ("--listen-metrics-urls", "http://h:2381/metrics", "path"),
            ("--listen-client-urls", "127.0.0.1:2379", "http://host:port"),
            ("--listen-client-urls", "ftp://h:1", "scheme"),
            ("--listen-client-urls", "unix://sock:1", "unix"),
            ("--listen-client-urls", "http://::1:2379", "brackets"),
        ];
        for (flag, url, reason) in cases {
            let message = parse_err(&format!("{flag} http://127.0.0.1:1,{url}"));
            assert!(
                message.starts_with(&format!("invalid URL {url:?} for flag {flag}: ")),
                "{message}"
            );
            assert!(message.contains(reason), "{message}");
        }
        assert!(parse_err("--listen-client-urls ,").contains("--listen-client-urls"));
    }

    #[test]
    fn ipv6_and_wildcard_urls_are_accepted() {
        let flags = parse(
            "--listen-client-urls http://[::1]:2379,http://0.0.0.0:2379 \
             --advertise-client-urls http://[::1]:2379",
        )
        .unwrap();
        assert_eq!(flags.listen_client_urls.len(), 2);
        assert_eq!(flags.advertise_client_urls, ["http://[::1]:2379"]);
    }

    #[test]
    fn advertise_urls_default_to_listen_urls_that_name_a_host() {
        let flags = parse(
            "--name n1 --listen-client-urls http://127.0.0.1:2379 \
             --listen-peer-urls http://127.0.0.1:2380 \
             --initial-cluster n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380",
        )
        .unwrap();
        assert_eq!(flags.advertise_client_urls, ["http://127.0.0.1:2379"]);
        assert_eq!(flags.initial_advertise_peer_urls, ["http://127.0.0.1:2380"]);

        let message = parse_err("--listen-client-urls http://0.0.0.0:2379");
        assert!(message.starts_with("--advertise-client-urls is required"), "{message}");
        assert!(message.contains("--listen-client-urls"), "{message}");
        let message = parse_err("--listen-peer-urls http://[::]:2380");
        assert!(
            message.starts_with("--initial-advertise-peer-urls is required"),
            "{message}"
        );
    }

    #[test]
    fn bad_initial_cluster_entries_are_named() {
        let message = parse_err("--initial-cluster n1");
        assert_eq!(
            message,
            r#"invalid --initial-cluster entry "n1": expected name=http://host:port"#
        );
        let message = parse_err("--initial-cluster default=http://localhost:2380,=http://h:1");
        assert!(message.contains(r#"entry "=http://h:1""#), "{message}");
        let message = parse_err("--initial-cluster default=https://localhost:2380");
        assert!(message.contains("default=https://localhost:2380"), "{message}");
        assert!(message.contains("TLS is not supported yet"), "{message}");
        assert!(parse_err("--initial-cluster ,").contains("--initial-cluster"));
        let message = parse_err("--initial-cluster default=http://localhost:2380,n2=http://localhost:2380");
        assert!(message.contains("n2=http://localhost:2380"), "{message}");
        assert!(message.contains("more than once"), "{message}");
    }

    #[test]
    fn a_member_name_may_repeat_for_several_urls() {
        let flags = parse(
            "--name n1 --initial-advertise-peer-urls http://10.0.0.1:2380,http://10.0.1.1:2380 \
             --initial-cluster n1=http://10.0.1.1:2380,n2=http://10.0.0.2:2380,n1=http://10.0.0.1:2380",
        )
        .unwrap();
        assert_eq!(flags.initial_cluster.len(), 3);
        assert_eq!(
            flags.initial_cluster_members(),
            [
                ("n1", vec!["http://10.0.1.1:2380", "http://10.0.0.1:2380"]),
                ("n2", vec!["http://10.0.0.2:2380"]),
            ]
        );
    }

    #[test]
    fn initial_cluster_defaults_to_name_and_advertised_peer_urls() {
        let flags =
            parse("--name n7 --initial-advertise-peer-urls http://127.0.0.1:7380,http://127.0.0.2:7380").unwrap();
        assert_eq!(
            flags.initial_cluster,
            [
                ("n7".to_string(), "http://127.0.0.1:7380".to_string()),
                ("n7".to_string(), "http://127.0.0.2:7380".to_string()),
            ]
        );
        assert_eq!(flags.data_dir(), PathBuf::from("n7.etcd"));
    }

    #[test]
    fn this_member_must_be_in_the_initial_cluster() {
        let message = parse_err(&format!("--name n4 --initial-cluster {THREE_MEMBERS}"));
        assert!(message.contains(r#""n4""#), "{message}");
        assert!(message.contains("--initial-cluster"), "{message}");
        assert!(message.contains("n1, n2, n3"), "{message}");
        // Joining an existing cluster still needs the name.
        let message = parse_err(&format!(
            "--name n4 --initial-cluster-state existing --initial-cluster {THREE_MEMBERS}"
        ));
        assert!(message.contains(r#""n4""#), "{message}");
    }

    #[test]
    fn this_member_must_have_exactly_its_advertised_peer_urls() {
        let message = parse_err(&format!(
            "--name n1 --initial-advertise-peer-urls http://127.0.0.1:9999 \
             --initial-cluster {THREE_MEMBERS}"
        ));
        assert_eq!(
            message,
            "--initial-cluster has n1=http://127.0.0.1:2380 but --initial-advertise-peer-urls \
             is http://127.0.0.1:9999 (member \"n1\" must have exactly its advertised peer URLs)"
        );
        // A subset is not enough either.
        let message = parse_err(
            "--name n1 --initial-advertise-peer-urls http://a:1,http://b:1 \
             --initial-cluster n1=http://a:1",
        );
        assert!(message.contains("--initial-cluster has n1=http://a:1 but"), "{message}");
        // etcd only checks the URLs when bootstrapping a new cluster.
        parse(&format!(
            "--name n1 --initial-advertise-peer-urls http://127.0.0.1:9999 \
             --initial-cluster-state existing --initial-cluster {THREE_MEMBERS}"
        ))
        .unwrap();
        // The etcd default initial cluster does not follow a changed advertise URL.
        let message = parse_err(
            "--initial-advertise-peer-urls http://127.0.0.1:2380 \
             --initial-cluster default=http://localhost:2380",
        );
        assert!(message.contains("default=http://localhost:2380"), "{message}");
        assert!(message.contains("http://127.0.0.1:2380"), "{message}");
    }

    #[test]
    fn election_timeout_must_be_five_heartbeats_and_at_most_fifty_seconds() {
        assert_eq!(
            parse_err("--election-timeout 100"),
            "--election-timeout[100ms] should be at least as 5 times as \
             --heartbeat-interval[100ms]"
        );
        assert_eq!(
            parse_err("--heartbeat-interval 1000 --election-timeout 1"),
            "--election-timeout[1ms] should be at least as 5 times as \
             --heartbeat-interval[1000ms]"
        );
        parse("--heartbeat-interval 200 --election-timeout 1000").unwrap();
        assert_eq!(
            parse_err("--election-timeout 60000"),
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
        );
    }

    #[test]
    fn enumerated_values_are_checked() {
        let message = parse_err("--initial-cluster-state bogus");
        assert!(
            message.starts_with(r#"invalid value "bogus" for flag --initial-cluster-state"#),
            "{message}"
        );
        let message = parse_err("--auto-compaction-mode bogus");
        assert!(
            message.starts_with(r#"invalid value "bogus" for flag --auto-compaction-mode"#),
            "{message}"
        );
        assert!(parse_err("--log-level loud").contains("--log-level"));
        assert_eq!(
            parse("--initial-cluster-state existing").unwrap().initial_cluster_state,
            ClusterState::Existing
        );
    }

    #[test]
    fn retention_is_checked_against_the_mode() {
        let message = parse_err("--auto-compaction-retention abc");
        assert!(
            message.starts_with(r#"invalid value "abc" for flag --auto-compaction-retention"#),
            "{message}"
        );
        // The mode may come after the retention.
        let message = parse_err("--auto-compaction-retention 5m --auto-compaction-mode revision");
        assert!(message.contains("--auto-compaction-retention"), "{message}");
        let flags = parse("--auto-compaction-retention 90m").unwrap();
        assert_eq!(
            flags.compaction_retention().unwrap(),
            CompactionRetention::Periodic {
                retention_ms: 90 * 60 * 1000
            }
        );
    }

    #[test]
    fn bad_durations_name_the_flag() {
        let message = parse_err("--experimental-watch-progress-notify-interval abc");
        assert!(
            message.starts_with(r#"invalid value "abc" for flag --experimental-watch-progress-notify-interval"#),
            "{message}"
        );
    }

    #[test]
    fn environment_variables_fill_in_unset_flags() {
        let env = |var: &str| match var {
            "ETCD_NAME" => Some("from-env".to_string()),
            "ETCD_DATA_DIR" => Some("/env/dir".to_string()),
            "ETCD_INITIAL_CLUSTER" => Some("n1=http://127.0.0.1:2380".to_string()),
            "ETCD_HEARTBEAT_INTERVAL" => Some("20".to_string()),
            "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL" => Some("1s".to_string()),
            // Empty variables are ignored, as etcd does.
            "ETCD_LOG_LEVEL" => Some(String::new()),
            _ => None,
        };
        let flags = parse_store_flags_with_env(
            &args("--name n1 --initial-advertise-peer-urls http://127.0.0.1:2380"),
            &env,
        )
        .unwrap();
        assert_eq!(flags.name, "n1", "a flag wins over its variable");
        assert_eq!(flags.data_dir(), PathBuf::from("/env/dir"));
        assert_eq!(
            flags.initial_cluster,
            [("n1".to_string(), "http://127.0.0.1:2380".to_string())]
        );
        assert_eq!(flags.heartbeat_interval_ms, 20);
        assert_eq!(flags.experimental_watch_progress_notify_interval_ms, 1000);
        assert_eq!(flags.log_level, "info");
    }

    #[test]
    fn errors_in_environment_variables_name_the_variable_and_the_flag() {
        let env = |var: &str| (var == "ETCD_SNAPSHOT_COUNT").then(|| "lots".to_string());
        let error = parse_store_flags_with_env(&[], &env).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("--snapshot-count"), "{message}");
        assert!(message.contains("ETCD_SNAPSHOT_COUNT"), "{message}");
        assert!(std::error::Error::source(&error).is_some());

        let env = |var: &str| (var == "ETCD_WAL_DIR").then(|| "/w".to_string());
        let message = parse_store_flags_with_env(&[], &env).unwrap_err().to_string();
        assert!(message.contains("--wal-dir"), "{message}");
        assert!(message.contains("ETCD_WAL_DIR"), "{message}");

        let env = |var: &str| (var == "ETCD_INITIAL_CLUSTER").then(|| "other=http://127.0.0.1:1".to_string());
        let message = parse_store_flags_with_env(&[], &env).unwrap_err().to_string();
        assert!(message.contains("ETCD_INITIAL_CLUSTER"), "{message}");
    }

    #[test]
    fn env_var_names_follow_etcd() {
        assert_eq!(env_var_name("data-dir"), "ETCD_DATA_DIR");
        assert_eq!(
            env_var_name("experimental-watch-progress-notify-interval"),
            "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL"
        );
    }

    #[test]
    fn go_durations() {
        let cases = [
            ("0", 0),
            ("500ms", 500),
            ("5s", 5_000),
            ("10m", 600_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("2h45m30s", 9_930_000),
            ("1.5h", 5_400_000),
            (".5s", 500),
            ("1.s", 1_000),
            ("+3s", 3_000),
            ("1500us", 1),
            ("1500µs", 1),
            ("999999ns", 0),
            ("1m0.25s", 60_250),
            ("0.000000001s", 0),
        ];
        for (input, expected_ms) in cases {
            assert_eq!(parse_duration_ms(input), Ok(expected_ms), "{input}");
        }
    }

    #[test]
    fn bad_go_durations() {
        for (input, reason) in [
            ("", "empty"),
            ("10", "missing unit"),
            ("1h30", "missing unit"),
            ("5x", "unknown unit"),
            ("abc", "expected a number"),
            (".s", "expected a number"),
            ("-5s", "negative"),
            ("3000000h", "too long"),
            ("99999999999999999999999h", "too long"),
        ] {
            let message = parse_duration_ms(input).unwrap_err().to_string();
            assert!(message.starts_with(&format!("invalid duration {input:?}")), "{message}");
            assert!(message.contains(reason), "{input}: {message}");
        }
    }

    #[test]
    fn retention_parsing() {
        use CompactionMode::{Periodic, Revision};
        assert_eq!(parse_retention(Periodic, "0"), Ok(CompactionRetention::Disabled));
        assert_eq!(parse_retention(Periodic, "0s"), Ok(CompactionRetention::Disabled));
        assert_eq!(
            parse_retention(Periodic, "1"),
            Ok(CompactionRetention::Periodic {
                retention_ms: 3_600_000
            })
        );
        assert_eq!(
            parse_retention(Periodic, "30m"),
            Ok(CompactionRetention::Periodic {
                retention_ms: 1_800_000
            })
        );
        assert_eq!(
            parse_retention(Revision, "1000"),
            Ok(CompactionRetention::Revision { revisions: 1000 })
        );
        assert_eq!(parse_retention(Revision, "0"), Ok(CompactionRetention::Disabled));
        assert!(parse_retention(Revision, "1h").is_err());
        assert!(parse_retention(Revision, &u64::MAX.to_string()).is_err());
        assert!(parse_retention(Periodic, "-1").is_err());
        assert!(parse_retention(Periodic, "one").is_err());
    }
}
