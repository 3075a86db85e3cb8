//! What a store replica is told at start-up. The command line (`berth store`) fills
//! this from etcd's flags; embedded users build it directly.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `initial_cluster`.
    New,
    /// Join a cluster that already runs (after `MemberAdd`).
    Existing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much history (by time).
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    /// Every initial member: name and peer URLs.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    pub quota_backend_bytes: u64,
    pub max_request_bytes: usize,
    /// The streams (calls in flight, watches) one client connection may have open at
    /// once; more wait in the client until one ends (`--max-concurrent-streams`).
    pub max_concurrent_streams: u32,
    pub auto_compaction: Option<AutoCompaction>,
    pub listen_metrics_urls: Vec<String>,
    pub watch_progress_notify_interval: Duration,
    /// How often the leader compares its hash with every member's
    /// (`--experimental-corrupt-check-time`); `None`: never.
    pub corrupt_check_time: Option<Duration>,
    /// Member name → URL to dial instead of the member's advertised peer URL.
    pub dial_peer_urls: std::collections::BTreeMap<String, String>,
    /// TLS on the `https` client URLs.
    pub client_tls: TlsInfo,
    /// TLS on the `https` peer URLs, and the certificate this replica dials peers with.
    pub peer_tls: TlsInfo,
    /// TLS 1.2 cipher suites by Go's names (`--cipher-suites`); empty for rustls'
    /// defaults. TLS 1.3 always uses its own suites, as in Go.
    pub cipher_suites: Vec<String>,
    /// How long `--auto-tls` certificates are valid (`--self-signed-cert-validity`).
    pub self_signed_cert_validity_years: u32,
    /// Guarantees deliberately broken, so the fault-injection suite can prove it
    /// notices. Empty in any real use.
    pub test_faults: TestFaults,
    /// `--experimental-initial-corrupt-check`: a restarted replica compares its data's
    /// hash with its peers' before it serves, and refuses to start on a mismatch.
    pub initial_corrupt_check: bool,
    /// `--strict-reconfig-check`: membership changes that would cost the quorum of
    /// started (or reachable) members are refused.
    pub strict_reconfig_check: bool,
    /// How long a simple auth token lives unused on a member (`--auth-token-ttl`).
    pub auth_token_ttl: Duration,
}

/// TLS on one kind of URL, client or peer, as etcd's flags say it (`--cert-file`,
/// `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--auto-tls`, and their
/// `--peer-` twins). Used only by `https` URLs; `http` URLs stay plain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Clients (or peers) must present a certificate signed by one of these CAs; the
    /// peer dialler also verifies the other side against them.
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    /// Generate a self-signed certificate in the data dir when no cert and key are given.
    pub auto_tls: bool,
}

impl TlsInfo {
    /// Whether a certificate is given (etcd's `TLSInfo.Empty()` is the opposite).
    pub fn has_cert(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// Switches that break the store on purpose (see `--test-fault`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestFaults {
    /// Serve linearizable reads from local state without a read index.
    pub stale_reads: bool,
    /// Delay each raft log sync as the data dir's slow-disk control file says
    /// (see `crate::slow_disk`).
    pub slow_disk: bool,
}

pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// `--max-concurrent-streams`. etcd leaves it unbounded; berth's HTTP/2 server closes
/// a connection (GOAWAY, ENHANCE_YOUR_CALM) on which more small request frames wait
/// unread than its window allows for, so a client that fires thousands of calls at
/// once (a control plane's burst, on a loaded host) would lose every call and watch
/// on it. Bounded, the calls past the bound wait in the client instead.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1000;
/// etcd's `--auth-token-ttl`: 300 s.
pub const DEFAULT_AUTH_TOKEN_TTL: Duration = Duration::from_secs(300);

impl StoreConfig {
    /// A single replica on the given ports with etcd's defaults otherwise.
    pub fn single(name: &str, data_dir: impl Into<PathBuf>, client_port: u16, peer_port: u16) -> Self {
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        Self {
            name: name.to_string(),
            data_dir: data_dir.into(),
            listen_client_urls: vec![client.clone()],
            advertise_client_urls: vec![client],
            listen_peer_urls: vec![peer.clone()],
            initial_advertise_peer_urls: vec![peer.clone()],
            initial_cluster: vec![(name.to_string(), vec![peer])],
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "etcd-cluster".into(),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_count: 100_000,
            quota_backend_bytes: DEFAULT_QUOTA_BACKEND_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            auto_compaction: None,
            listen_metrics_urls: Vec::new(),
            watch_progress_notify_interval: Duration::from_secs(600),
            corrupt_check_time: None,
            dial_peer_urls: Default::default(),
            client_tls: TlsInfo::default(),
            peer_tls: TlsInfo::default(),
            cipher_suites: Vec::new(),
            self_signed_cert_validity_years: 1,
            test_faults: TestFaults::default(),
            initial_corrupt_check: false,
            strict_reconfig_check: true,
            auth_token_ttl: DEFAULT_AUTH_TOKEN_TTL,
        }
    }

    /// The minimum lease TTL: etcd's `ceil(1.5 × election timeout)`, at least 1 s.
    pub fn min_lease_ttl_seconds(&self) -> i64 {
        let ms = self.election_timeout.as_millis() as i64 * 3 / 2;
        ((ms + 999) / 1000).max(1)
    }
}

/// FNV-1a, 64 bits: deterministic IDs that every replica derives alike.
fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A member's ID from its peer URLs and the cluster token, as etcd derives it
/// (etcd hashes with SHA-1; berth's IDs need only be stable and distinct).
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let joined = urls.join(",");
    fnv64(&[joined.as_bytes(), cluster_token.as_bytes()]).max(1)
}

/// The ID MemberAdd gives a new member: unlike the initial members' IDs it also
/// depends on where the log stood, so a member removed and added again with the same
/// peer URLs is a new member (a fresh replica must never reuse an ID that voted).
pub fn added_member_id(peer_urls: &[String], cluster_token: &str, log_index: u64) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let joined = urls.join(",");
    fnv64(&[joined.as_bytes(), cluster_token.as_bytes(), &log_index.to_be_bytes()]).max(1)
}

/// The cluster's ID. etcd derives it from the initial members; berth derives it
/// from the cluster token alone, so that a member that joins later (started with
/// `--initial-cluster-state existing`) computes the same ID without asking.
pub fn cluster_id(cluster_token: &str) -> u64 {
    fnv64(&[b"cluster", cluster_token.as_bytes()]).max(1)
}
