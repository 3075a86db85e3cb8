//! The orchestrator's view of the store: the etcd v3 API over gRPC, narrowed to what
//! the API server, the controllers, the scheduler and the agents need: reads at a
//! revision, conditional writes (create if absent, update if unchanged since a
//! revision, each optionally fenced by a leadership record), prefix watches from a
//! revision, and leases.
//!
//! Every part of the orchestrator reaches the store through this, also inside a
//! control-plane replica (over loopback), so there is one path to test. What it
//! returns is its own [`Record`], not the store's protobuf messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_proto::etcdserverpb::kv_client::KvClient;
use berth_proto::etcdserverpb::lease_client::LeaseClient;
use berth_proto::etcdserverpb::watch_client::WatchClient;
use tonic::transport::{Channel, Endpoint};

use crate::envelope::Envelope;

mod group;
mod lease;
mod read;
mod record;
#[cfg(test)]
mod tests;
mod tls;
mod together;
mod watch;
mod write;

pub use group::{Group, MAX_GROUP_OPS};
pub use lease::KeepAlive;
pub use read::{LIST_PAGE, Page};
pub use record::Record;
pub use together::Together;
pub use watch::{Event, Watch};
pub use write::Write;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KvError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    /// The object changed since the revision the writer read it at.
    #[error("the object has been modified (now at revision {current})")]
    Conflict { current: i64 },
    /// The leadership record the write was fenced by has been replaced.
    #[error("no longer the leader: the leadership record changed")]
    Fenced,
    /// The requested revision has been compacted away. (`compacted` is 0 when the store
    /// did not say: a read's error, unlike a watch's, does not carry it.)
    #[error("revision {requested} has been compacted (compact revision {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// A read at a revision the store has not reached yet.
    #[error("revision {requested} is a future revision")]
    FutureRevision { requested: i64 },
    /// The write is larger than the store takes in one request (etcd's
    /// `--max-request-bytes`, 1.5 MiB by default); nothing was written.
    #[error("the request is larger than the store takes ({REQUEST_TOO_LARGE})")]
    RequestTooLarge,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
}

pub type Result<T, E = KvError> = std::result::Result<T, E>;

/// etcd's error strings (clients match on them; berth's store sends the same).
const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REVISION: &str = "etcdserver: mvcc: required revision is a future revision";

/// The largest response the client decodes: etcd's client default (`math.MaxInt32`),
/// not tonic's 4 MiB, which a list of a few thousand objects (or four of 1.2 MB)
/// would pass. Reads of a prefix come in pages (`read.rs`), so this is never one
/// unbounded message.
pub const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

fn status_error(s: tonic::Status) -> KvError {
    use tonic::Code;
    match (s.code(), s.message()) {
        (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted, _) => {
            KvError::Unavailable(with_causes(&s))
        }
        (Code::InvalidArgument, REQUEST_TOO_LARGE) => KvError::RequestTooLarge,
        _ => KvError::Other(s.message().to_string()),
    }
}

/// The status's message and what caused it (a connection's failure says only
/// "transport error" without its causes: "connection reset", a GOAWAY's reason).
fn with_causes(s: &tonic::Status) -> String {
    let mut message = s.message().to_string();
    let mut cause = std::error::Error::source(s);
    while let Some(error) = cause {
        let said = error.to_string();
        if !message.ends_with(&said) {
            message = format!("{message}: {said}");
        }
        cause = error.source();
    }
    message
}

/// A read's error: as [`status_error`], and a read at `revision` may be of a
/// revision compacted away or not reached yet.
fn read_error(s: tonic::Status, revision: i64) -> KvError {
    match (s.code(), s.message()) {
        (tonic::Code::OutOfRange, COMPACTED) => KvError::Compacted {
            requested: revision,
            compacted: 0,
        },
        (tonic::Code::OutOfRange, FUTURE_REVISION) => KvError::FutureRevision { requested: revision },
        _ => status_error(s),
    }
}

/// A write guard: the write happens only if `key` still has `mod_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub mod_revision: i64,
}

#[derive(Clone)]
struct Clients {
    url: String,
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
}

/// A store client over one or more endpoints. A call that cannot reach its endpoint
/// fails with `Unavailable` and the next call goes to the next endpoint; reads are
/// retried on the others at once, writes are not (their outcome is unknown).
#[derive(Clone)]
pub struct Kv {
    endpoints: Arc<Vec<Clients>>,
    current: Arc<AtomicUsize>,
    /// Encryption at rest: what is written is sealed, what is read opened.
    envelope: Option<Arc<Envelope>>,
}

/// A task that ends with its owner.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Kv {
    /// Clients for each endpoint (`http://host:port`); connections are made lazily.
    pub fn connect(urls: &[String]) -> Result<Kv> {
        Kv::connect_with_tls(urls, None)
    }

    /// As [`Kv::connect`], `https://` endpoints dialled with `tls` (the CA that signed
    /// the store's certificate, and the client certificate it asks for, if any).
    pub fn connect_with_tls(urls: &[String], tls: Option<&rustls::ClientConfig>) -> Result<Kv> {
        if urls.is_empty() {
            return Err(KvError::Other("no store endpoints given".into()));
        }
        let grpc_tls = tls.map(tls::for_grpc);
        let mut endpoints = Vec::new();
        for url in urls {
            let dialled = match (tls::is_https(url), &grpc_tls) {
                (false, _) => url.clone(),
                (true, Some(_)) => format!("http://{}", &url[8..]),
                (true, None) => {
                    return Err(KvError::Other(format!(
                        "store endpoint {url:?} is https, but no TLS settings (a CA, and a client certificate if \
                         the store asks for one) were given"
                    )));
                }
            };
            let endpoint = Endpoint::from_shared(dialled)
                .map_err(|e| KvError::Other(format!("bad store endpoint {url:?}: {e}")))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(3));
            let channel = match (&grpc_tls, tls::is_https(url)) {
                (Some(config), true) => {
                    endpoint.connect_with_connector_lazy(tls::StoreConnector { config: config.clone() })
                }
                _ => endpoint.connect_lazy(),
            };
            endpoints.push(Clients {
                url: url.clone(),
                kv: KvClient::new(channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES),
                watch: WatchClient::new(channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES),
                lease: LeaseClient::new(channel),
            });
        }
        Ok(Kv {
            endpoints: Arc::new(endpoints),
            current: Arc::new(AtomicUsize::new(0)),
            envelope: None,
        })
    }

    /// This client with encryption at rest: every value written under a resource
    /// the envelope covers is sealed, every value read is opened (a value no key
    /// opens is handed on sealed, for the registry to refuse by name).
    pub fn with_envelope(mut self, envelope: Arc<Envelope>) -> Kv {
        self.envelope = Some(envelope);
        self
    }

    /// The value to store under `key`.
    fn seal(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        match &self.envelope {
            Some(envelope) => envelope.seal(key, value).map_err(KvError::Other),
            None => Ok(value),
        }
    }

    /// A record as read, opened.
    fn open(&self, record: Record) -> Record {
        open_record(self.envelope.as_deref(), record)
    }

    fn clients(&self) -> (usize, Clients) {
        let i = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        (i, self.endpoints[i].clone())
    }

    /// Moves on from endpoint `i` after it failed (if no other call already did).
    fn failed(&self, i: usize, error: &KvError) {
        if matches!(error, KvError::Unavailable(_)) && self.endpoints.len() > 1 {
            let _ =
                self.current
                    .compare_exchange(i, (i + 1) % self.endpoints.len(), Ordering::Relaxed, Ordering::Relaxed);
            tracing::debug!(endpoint = %self.endpoints[i].url, %error, "store endpoint failed; trying the next");
        }
    }

    fn request<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(REQUEST_TIMEOUT);
        request
    }
}

/// A record as read, opened with `envelope` when it is sealed and a key of it
/// opens it; left as it is otherwise.
fn open_record(envelope: Option<&Envelope>, mut record: Record) -> Record {
    let Some(envelope) = envelope else {
        return record;
    };
    match envelope.open(&record.key, &record.value) {
        Ok(Some(plain)) => record.value = plain,
        Ok(None) => {}
        Err(e) => tracing::warn!(key = %record.key, error = %e, "cannot decrypt a stored value"),
    }
    record
}

/// The end of the range of keys that start with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
