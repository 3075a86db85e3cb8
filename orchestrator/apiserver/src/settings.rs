//! The API server's limits: what bounds the work one client can make it do. The
//! defaults are kube-apiserver's where it has the setting (its flag names are
//! `berth server`'s), and Go's `http.Server` values kube-apiserver sets where it has
//! no flag.

use std::time::Duration;

/// kube-apiserver's `--max-requests-inflight` default.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// kube-apiserver's `--max-mutating-requests-inflight` default.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;
/// kube-apiserver's `--request-timeout` default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// kube-apiserver's `ReadHeaderTimeout` (not a flag there).
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(32);
/// kube-apiserver's `IdleTimeout` (not a flag there).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// kube-apiserver has no connection cap; berth's default bound, lowered to half the
/// process's open-file limit where that is smaller (see [`default_max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// etcd's (and berth-store's) default `--max-request-bytes`.
pub const DEFAULT_STORE_MAX_REQUEST_BYTES: usize = 1536 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// At most this many read-only requests at once; more are answered 429 with
    /// `Retry-After: 1`. Watches and logs are exempt, as in Kubernetes. 0: no limit.
    pub max_requests_inflight: usize,
    /// The same for creates, updates, patches and deletes.
    pub max_mutating_requests_inflight: usize,
    /// A request other than a watch or a log that takes longer is answered 504.
    pub request_timeout: Duration,
    /// A connection that takes longer to send a request's head (the first from the
    /// accept, later ones from their first byte) is closed: a slowloris client holds
    /// a connection this long at most.
    pub read_header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// At most this many open connections; the server stops accepting at the cap, so
    /// further connections wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// The store's request limit (`--max-request-bytes` of the store): an object too
    /// large to write in one request is answered 413 with this number.
    pub store_max_request_bytes: usize,
    /// Where Services' cluster IPs and node ports come from
    /// (`--service-cluster-ip-range`, `--service-node-port-range`).
    pub service_network: crate::services::ServiceNetwork,
    /// The address the `kubernetes` Service lists for this server
    /// (`--advertise-address`); `None`: the listener's, if pods can reach it.
    pub advertise_address: Option<std::net::Ipv4Addr>,
    /// `--authorization-mode`: the authorizers asked, in order (`AlwaysAllow` by
    /// default until requests carry credentials; `RBAC`).
    pub authorization_modes: Vec<crate::auth::authz::Mode>,
    /// Admission's settings (`--pod-security-default-enforce`).
    pub admission: berth_client::admission::Admission,
    /// `--isolate-namespaces`: namespaces created get `berth.io/isolation:
    /// namespace` (unless they carry the label already), which the agents read as
    /// an implied policy admitting only the namespace's own pods.
    pub isolate_namespaces: bool,
    /// `--watch-cache`: watches and `resourceVersion=0` lists served from one
    /// store watch per kind (watch_cache/); off, each watch is a store watch.
    pub watch_cache: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_requests_inflight: DEFAULT_MAX_REQUESTS_INFLIGHT,
            max_mutating_requests_inflight: DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: default_max_connections(),
            store_max_request_bytes: DEFAULT_STORE_MAX_REQUEST_BYTES,
            service_network: Default::default(),
            advertise_address: None,
            authorization_modes: crate::auth::authz::DEFAULT_MODES.to_vec(),
            admission: Default::default(),
            isolate_namespaces: false,
            watch_cache: true,
        }
    }
}

/// [`DEFAULT_MAX_CONNECTIONS`], or half the process's soft open-file limit if that
/// is less: the store runs in the same process and needs descriptors of its own
/// (files, peers, its clients), which a flood of connections must not take.
pub fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match soft.and_then(|n| usize::try_from(n / 2).ok()) {
        Some(half) => half.clamp(1, DEFAULT_MAX_CONNECTIONS),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}
