//! etcd flags berth does not implement yet. They are refused by name rather than as
//! unknown, so that an operator copying an etcd command line learns which setting berth
//! would otherwise have silently ignored.

/// etcd 3.4 and 3.5 flags that berth does not implement (yet). Refused by name so that
/// an operator copying an etcd command line learns what berth would have ignored.
pub(super) const UNSUPPORTED_FLAGS: &[&str] = &[
    "config-file",
    "wal-dir",
    "max-snapshots",
    "max-wals",
    "max-txn-ops",
    "max-learners",
    "initial-election-tick-advance",
    "pre-vote",
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
    "bcrypt-cost",
    "ca-file",
    "client-crl-file",
    "client-cert-allowed-hostname",
    "client-cert-file",
    "client-key-file",
];

/// Families of unsupported etcd flags, matched by prefix (after the exact supported
/// names, so `--experimental-watch-progress-notify-interval` and `--peer-cert-file` are
/// still accepted, while `--peer-crl-file` and `--peer-cert-allowed-cn` are refused).
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

pub(super) fn is_unsupported(name: &str) -> bool {
    UNSUPPORTED_FLAGS.contains(&name) || UNSUPPORTED_FLAG_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}
