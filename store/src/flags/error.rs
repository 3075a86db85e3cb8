//! [`FlagError`]: why a command line was refused, worded as etcd words it where etcd has
//! the same check, so that an operator searching for the message finds etcd's answers.

use std::fmt;

use super::MAX_ELECTION_TIMEOUT_MS;

/// Why a command line was refused, or that it asked for help or the version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlagError {
    /// `-h`/`--help`: print [`STORE_USAGE`](super::STORE_USAGE) and exit 0.
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
    /// A Go duration that does not parse ([`parse_duration_ms`](super::parse_duration_ms)).
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
    /// One flag is given without another it cannot work without.
    FlagNeedsFlag {
        flag: String,
        needs: String,
        why: String,
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
            Self::FlagNeedsFlag { flag, needs, why } => write!(f, "{flag} requires {needs}: {why}"),
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
