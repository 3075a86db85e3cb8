//! The orchestrator's view of the store: the etcd v3 API over gRPC, narrowed to what
//! the API server, the controllers, the scheduler and the agents need: reads at a
//! revision, conditional writes (create if absent, update if unchanged since a
//! revision, each optionally fenced by a leadership record), prefix watches from a
//! revision, and leases.
//!
//! Every part of the orchestrator reaches the store through this, also inside a
//! control-plane replica (over loopback), so there is one path to test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use berth_proto::etcdserverpb::kv_client::KvClient;
use berth_proto::etcdserverpb::lease_client::LeaseClient;
use berth_proto::etcdserverpb::request_op::Request as Op;
use berth_proto::etcdserverpb::response_op::Response as OpResponse;
use berth_proto::etcdserverpb::watch_client::WatchClient;
use berth_proto::etcdserverpb::watch_request::RequestUnion;
use berth_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use berth_proto::mvccpb::{KeyValue, event::EventType};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

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
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (compact revision {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
}

pub type Result<T, E = KvError> = std::result::Result<T, E>;

fn status_error(s: tonic::Status) -> KvError {
    use tonic::Code;
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {
            KvError::Unavailable(s.message().to_string())
        }
        _ => KvError::Other(s.message().to_string()),
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
}

/// One event of a watch, in revision order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Put(KeyValue),
    /// The deleted key with its last value (`prev_kv`) and the deletion revision.
    Delete {
        prev: KeyValue,
        revision: i64,
    },
}

impl Event {
    pub fn revision(&self) -> i64 {
        match self {
            Event::Put(kv) => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
}

/// A watch over a prefix. `next` yields batches of events (one revision's events
/// are never split), or progress-only batches (empty) with the store's revision.
pub struct Watch {
    events: mpsc::Receiver<Result<(i64, Vec<Event>)>>,
    _task: AbortOnDrop,
}

/// A task that ends with its owner.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Watch {
    /// The next batch as (header revision, events); `None` when the stream ended
    /// (the caller re-watches from its last revision + 1).
    pub async fn next(&mut self) -> Option<Result<(i64, Vec<Event>)>> {
        self.events.recv().await
    }
}

/// Keeps a lease alive until dropped; `lost` resolves when a keep-alive says the
/// lease is gone (TTL 0) or no keep-alive succeeded within the TTL.
pub struct KeepAlive {
    lost: tokio::sync::watch::Receiver<bool>,
    _task: AbortOnDrop,
}

impl KeepAlive {
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Kv {
    /// Clients for each endpoint (`http://host:port`); connections are made lazily.
    pub fn connect(urls: &[String]) -> Result<Kv> {
        if urls.is_empty() {
            return Err(KvError::Other("no store endpoints given".into()));
        }
        let mut endpoints = Vec::new();
        for url in urls {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| KvError::Other(format!("bad store endpoint {url:?}: {e}")))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(3));
            let channel = endpoint.connect_lazy();
            endpoints.push(Clients {
                url: url.clone(),
                kv: KvClient::new(channel.clone()),
                watch: WatchClient::new(channel.clone()),
                lease: LeaseClient::new(channel),
            });
        }
        Ok(Kv {
            endpoints: Arc::new(endpoints),
            current: Arc::new(AtomicUsize::new(0)),
        })
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

    /// Reads are idempotent, so one that fails for want of a leader (an election
    /// under way) or an endpoint is retried, on the next endpoint, for up to the
    /// request timeout: callers see an election as a slow read, not an error.
    async fn range(&self, request: RangeRequest) -> Result<(Vec<KeyValue>, i64)> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            let (i, mut c) = self.clients();
            let error = match c.kv.range(Self::request(request.clone())).await {
                Ok(r) => {
                    let r = r.into_inner();
                    return Ok((r.kvs, r.header.map_or(0, |h| h.revision)));
                }
                Err(s) => status_error(s),
            };
            self.failed(i, &error);
            if !matches!(error, KvError::Unavailable(_)) || tokio::time::Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// A linearizable read of one key.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let (mut kvs, _) = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })
            .await?;
        Ok(kvs.pop())
    }

    /// A linearizable read of one key as it was at `revision` (its latest version at
    /// or before it); fails once that revision has been compacted.
    pub async fn get_at(&self, key: &str, revision: i64) -> Result<Option<KeyValue>> {
        let (mut kvs, _) = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                revision,
                ..Default::default()
            })
            .await?;
        Ok(kvs.pop())
    }

    /// A linearizable read of every key under `prefix`, in key order, and the
    /// store's revision at the read.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        self.range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        })
        .await
    }

    async fn txn(&self, request: TxnRequest) -> Result<berth_proto::etcdserverpb::TxnResponse> {
        let (i, mut c) = self.clients();
        match c.kv.txn(Self::request(request)).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    /// Runs `success` if every compare holds; otherwise works out why not from the
    /// keys read in the failure branch: the fence first, then the object.
    async fn guarded(
        &self,
        key: &str,
        object: Compare,
        fence: Option<&Fence>,
        success: Vec<RequestOp>,
    ) -> Result<berth_proto::etcdserverpb::TxnResponse> {
        let mut compare = vec![object];
        let mut failure = vec![get_op(key)];
        if let Some(fence) = fence {
            compare.push(mod_revision_is(&fence.key, fence.mod_revision));
            failure.push(get_op(&fence.key));
        }
        let response = self
            .txn(TxnRequest {
                compare,
                success,
                failure,
            })
            .await?;
        if response.succeeded {
            return Ok(response);
        }
        let read = |n: usize| -> Option<KeyValue> {
            match response.responses.get(n)?.response.as_ref()? {
                OpResponse::ResponseRange(r) => r.kvs.first().cloned(),
                _ => None,
            }
        };
        if let Some(fence) = fence
            && read(1).map(|kv| kv.mod_revision) != Some(fence.mod_revision)
        {
            return Err(KvError::Fenced);
        }
        Err(match read(0) {
            None => KvError::NotFound,
            Some(kv) => KvError::Conflict {
                current: kv.mod_revision,
            },
        })
    }

    /// Writes `key` only if it does not exist; returns the write's revision.
    pub async fn create(&self, key: &str, value: Vec<u8>, lease: i64, fence: Option<&Fence>) -> Result<i64> {
        let put = put_op(key, value, lease);
        match self.guarded(key, create_revision_is(key, 0), fence, vec![put]).await {
            Ok(r) => Ok(r.header.map_or(0, |h| h.revision)),
            Err(KvError::Conflict { .. }) => Err(KvError::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    /// Replaces `key` only if its mod_revision is still `mod_revision`.
    pub async fn update(&self, key: &str, value: Vec<u8>, mod_revision: i64, fence: Option<&Fence>) -> Result<i64> {
        let put = put_op(key, value, 0);
        let r = self
            .guarded(key, mod_revision_is(key, mod_revision), fence, vec![put])
            .await?;
        Ok(r.header.map_or(0, |h| h.revision))
    }

    /// Deletes `key` if it exists (and, when given, is still at `mod_revision`);
    /// returns the deleted value.
    pub async fn delete(&self, key: &str, mod_revision: Option<i64>, fence: Option<&Fence>) -> Result<KeyValue> {
        let compare = match mod_revision {
            Some(rev) => mod_revision_is(key, rev),
            None => Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Create as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                ..Default::default()
            },
        };
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                prev_kv: true,
                ..Default::default()
            })),
        };
        let r = self.guarded(key, compare, fence, vec![delete]).await?;
        match r.responses.first().and_then(|r| r.response.as_ref()) {
            Some(OpResponse::ResponseDeleteRange(d)) => d.prev_kvs.first().cloned().ok_or(KvError::NotFound),
            _ => Err(KvError::NotFound),
        }
    }

    /// An unconditional put (for records that have a single writer, such as a
    /// node's heartbeat key); returns the write's revision.
    pub async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64> {
        let (i, mut c) = self.clients();
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            ..Default::default()
        };
        match c.kv.put(Self::request(request)).await {
            Ok(r) => Ok(r.into_inner().header.map_or(0, |h| h.revision)),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    /// Puts `value` only if `key` exists and its value sorts strictly before `than`
    /// (byte order); returns the write's revision. `Conflict` when the stored value
    /// is not smaller, `NotFound` when the key is absent. The leadership record uses
    /// it: its value starts with a zero-padded term, so byte order is term order.
    pub async fn put_if_value_less(&self, key: &str, than: &[u8], value: Vec<u8>) -> Result<i64> {
        let compare = Compare {
            result: CompareResult::Less as i32,
            target: CompareTarget::Value as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::Value(than.to_vec())),
            ..Default::default()
        };
        let response = self
            .txn(TxnRequest {
                compare: vec![compare],
                success: vec![put_op(key, value, 0)],
                failure: vec![get_op(key)],
            })
            .await?;
        if response.succeeded {
            return Ok(response.header.map_or(0, |h| h.revision));
        }
        match first_read(&response, 0) {
            None => Err(KvError::NotFound),
            Some(kv) => Err(KvError::Conflict {
                current: kv.mod_revision,
            }),
        }
    }

    /// Replaces `key` only if its mod_revision is still `mod_revision` and every
    /// `(other key, mod_revision)` in `also` is unchanged too (a missing key has
    /// mod_revision 0); fenced like [`Kv::update`]. The scheduler binds a pod with
    /// it, comparing the node it read. A changed `also` key gives `Conflict` with
    /// that key's current mod_revision.
    pub async fn update_if(
        &self,
        key: &str,
        value: Vec<u8>,
        mod_revision: i64,
        also: &[(&str, i64)],
        fence: Option<&Fence>,
    ) -> Result<i64> {
        let mut compare = vec![mod_revision_is(key, mod_revision)];
        let mut failure = vec![get_op(key)];
        for (other, revision) in also {
            compare.push(mod_revision_is(other, *revision));
            failure.push(get_op(other));
        }
        if let Some(fence) = fence {
            compare.push(mod_revision_is(&fence.key, fence.mod_revision));
            failure.push(get_op(&fence.key));
        }
        let response = self
            .txn(TxnRequest {
                compare,
                success: vec![put_op(key, value, 0)],
                failure,
            })
            .await?;
        if response.succeeded {
            return Ok(response.header.map_or(0, |h| h.revision));
        }
        let mod_of = |n: usize| first_read(&response, n).map_or(0, |kv| kv.mod_revision);
        if let Some(fence) = fence
            && mod_of(1 + also.len()) != fence.mod_revision
        {
            return Err(KvError::Fenced);
        }
        match first_read(&response, 0) {
            None => return Err(KvError::NotFound),
            Some(kv) if kv.mod_revision != mod_revision => {
                return Err(KvError::Conflict {
                    current: kv.mod_revision,
                });
            }
            Some(_) => {}
        }
        let changed = also
            .iter()
            .enumerate()
            .find(|(i, (_, revision))| mod_of(1 + i) != *revision);
        Err(KvError::Conflict {
            current: changed.map_or(0, |(i, _)| mod_of(1 + i)),
        })
    }

    /// Watches every key under `prefix` from `start_revision` (inclusive), with the
    /// previous value of deleted keys. Fails with `Compacted` when the start is
    /// older than the store keeps.
    pub async fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watch> {
        let (i, mut c) = self.clients();
        let (requests, rx) = mpsc::channel(4);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision,
                prev_kv: true,
                progress_notify: true,
                ..Default::default()
            })),
        };
        requests
            .send(create)
            .await
            .map_err(|_| KvError::Other("watch request channel closed".into()))?;
        let mut stream = match c.watch.watch(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                return Err(e);
            }
        };
        // The first response says whether the watch was created or refused.
        let first = match stream.message().await {
            Ok(Some(first)) => first,
            Ok(None) => return Err(KvError::Unavailable("the watch stream closed".into())),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                return Err(e);
            }
        };
        if first.compact_revision > 0 || (first.canceled && !first.created) {
            return Err(KvError::Compacted {
                requested: start_revision,
                compacted: first.compact_revision,
            });
        }
        let (tx, events) = mpsc::channel(64);
        let pending = (!first.events.is_empty()).then_some(first);
        let task = tokio::spawn(async move {
            let _requests = requests; // closing it would end the watch
            let mut next = pending;
            loop {
                let response = match next.take() {
                    Some(r) => r,
                    None => match stream.message().await {
                        Ok(Some(r)) => r,
                        Ok(None) => return,
                        Err(s) => {
                            let _ = tx.send(Err(status_error(s))).await;
                            return;
                        }
                    },
                };
                if response.canceled {
                    let e = if response.compact_revision > 0 {
                        KvError::Compacted {
                            requested: start_revision,
                            compacted: response.compact_revision,
                        }
                    } else {
                        KvError::Unavailable(format!("watch cancelled: {}", response.cancel_reason))
                    };
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                let revision = response.header.map_or(0, |h| h.revision);
                let events = response
                    .events
                    .into_iter()
                    .filter_map(|e| {
                        let kv = e.kv?;
                        Some(if e.r#type == EventType::Delete as i32 {
                            let revision = kv.mod_revision;
                            Event::Delete {
                                prev: e.prev_kv.unwrap_or(KeyValue {
                                    key: kv.key,
                                    ..Default::default()
                                }),
                                revision,
                            }
                        } else {
                            Event::Put(kv)
                        })
                    })
                    .collect();
                if tx.send(Ok((revision, events))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Watch {
            events,
            _task: AbortOnDrop(task),
        })
    }

    /// Grants a lease of `ttl` seconds; returns its ID.
    pub async fn grant(&self, ttl: i64) -> Result<i64> {
        let (i, mut c) = self.clients();
        match c
            .lease
            .lease_grant(Self::request(LeaseGrantRequest { ttl, id: 0 }))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                if r.error.is_empty() {
                    Ok(r.id)
                } else {
                    Err(KvError::Other(r.error))
                }
            }
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    pub async fn revoke(&self, id: i64) -> Result<()> {
        let (i, mut c) = self.clients();
        match c.lease.lease_revoke(Self::request(LeaseRevokeRequest { id })).await {
            Ok(_) => Ok(()),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    /// Keeps lease `id` (of `ttl` seconds) alive, renewing every third of the TTL
    /// over whichever endpoint answers.
    pub fn keep_alive(&self, id: i64, ttl: i64) -> KeepAlive {
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        let kv = self.clone();
        let ttl = Duration::from_secs(ttl.max(1) as u64);
        let task = tokio::spawn(async move {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                match kv.keep_alive_once(id).await {
                    Ok(remaining) if remaining > 0 => last_renewed = tokio::time::Instant::now(),
                    Ok(_) => {
                        tracing::warn!(lease = format!("{id:x}"), "the lease has expired");
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(lease = format!("{id:x}"), error = %e, "lease keep-alive failed");
                        if last_renewed.elapsed() >= ttl {
                            tracing::warn!(lease = format!("{id:x}"), "no keep-alive succeeded within the TTL");
                            let _ = lost_tx.send(true);
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
                tokio::time::sleep(ttl / 3).await;
            }
        });
        KeepAlive {
            lost,
            _task: AbortOnDrop(task),
        }
    }

    async fn keep_alive_once(&self, id: i64) -> Result<i64> {
        let (i, mut c) = self.clients();
        let request = tokio_stream::once(LeaseKeepAliveRequest { id });
        let result = async {
            let mut stream = c.lease.lease_keep_alive(request).await?.into_inner();
            match stream.message().await? {
                Some(r) => Ok(r.ttl),
                None => Err(tonic::Status::unavailable("keep-alive stream closed")),
            }
        };
        match tokio::time::timeout(Duration::from_secs(2), result).await {
            Ok(Ok(ttl)) => Ok(ttl),
            Ok(Err(s)) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
            Err(_) => {
                let e = KvError::Unavailable("keep-alive timed out".into());
                self.failed(i, &e);
                Err(e)
            }
        }
    }
}

fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// The first key read by the `n`th operation of a txn's response, if any.
fn first_read(response: &berth_proto::etcdserverpb::TxnResponse, n: usize) -> Option<KeyValue> {
    match response.responses.get(n)?.response.as_ref()? {
        OpResponse::ResponseRange(r) => r.kvs.first().cloned(),
        _ => None,
    }
}

fn put_op(key: &str, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

fn mod_revision_is(key: &str, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(TargetUnion::ModRevision(revision)),
        ..Default::default()
    }
}

fn create_revision_is(key: &str, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conditional_writes_fences_and_watches_against_a_real_store() {
        let t = crate::testing::store().await;
        let kv = &t.kv;
        let rev = kv
            .create("/registry/pods/default/a", b"1".to_vec(), 0, None)
            .await
            .unwrap();
        assert_eq!(
            kv.create("/registry/pods/default/a", b"2".to_vec(), 0, None).await,
            Err(KvError::AlreadyExists)
        );
        let rev2 = kv
            .update("/registry/pods/default/a", b"2".to_vec(), rev, None)
            .await
            .unwrap();
        assert_eq!(
            kv.update("/registry/pods/default/a", b"3".to_vec(), rev, None).await,
            Err(KvError::Conflict { current: rev2 })
        );
        assert_eq!(
            kv.update("/registry/pods/default/b", b"3".to_vec(), rev, None).await,
            Err(KvError::NotFound)
        );

        let leader = kv.put("/berth/leader", b"term 1".to_vec(), 0).await.unwrap();
        let fence = Fence {
            key: "/berth/leader".into(),
            mod_revision: leader,
        };
        kv.create("/registry/pods/default/c", b"1".to_vec(), 0, Some(&fence))
            .await
            .unwrap();
        kv.put("/berth/leader", b"term 2".to_vec(), 0).await.unwrap();
        assert_eq!(
            kv.create("/registry/pods/default/d", b"1".to_vec(), 0, Some(&fence))
                .await,
            Err(KvError::Fenced)
        );
        assert_eq!(kv.get("/registry/pods/default/d").await.unwrap(), None);

        let (items, at) = kv.list("/registry/pods/").await.unwrap();
        assert_eq!(items.len(), 2);
        let mut watch = kv.watch("/registry/pods/", at + 1).await.unwrap();
        let deleted = kv.delete("/registry/pods/default/a", None, None).await.unwrap();
        assert_eq!(deleted.value, b"2");
        // Progress notifications (empty batches) may come first.
        let events = loop {
            let (_, events) = watch.next().await.unwrap().unwrap();
            if !events.is_empty() {
                break events;
            }
        };
        assert!(
            matches!(&events[..], [Event::Delete { prev, .. }] if prev.value == b"2"),
            "{events:?}"
        );
        assert_eq!(
            kv.delete("/registry/pods/default/a", None, None).await,
            Err(KvError::NotFound)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn value_less_puts_and_multi_key_updates() {
        let t = crate::testing::store().await;
        let kv = &t.kv;
        assert_eq!(
            kv.put_if_value_less("/r", b"5", b"5 x".to_vec()).await,
            Err(KvError::NotFound)
        );
        let at = kv.put("/r", b"3 a".to_vec(), 0).await.unwrap();
        let put = kv.put_if_value_less("/r", b"5", b"5 b".to_vec()).await.unwrap();
        assert!(put > at);
        assert_eq!(
            kv.put_if_value_less("/r", b"5", b"5 c".to_vec()).await,
            Err(KvError::Conflict { current: put }),
            "\"5 b\" does not sort before \"5\""
        );
        assert_eq!(kv.get("/r").await.unwrap().unwrap().value, b"5 b");

        let pod = kv.put("/pod", b"1".to_vec(), 0).await.unwrap();
        let node = kv.put("/node", b"1".to_vec(), 0).await.unwrap();
        let fence = Fence {
            key: "/r".into(),
            mod_revision: put,
        };
        let bound = kv
            .update_if(
                "/pod",
                b"2".to_vec(),
                pod,
                &[("/node", node), ("/absent", 0)],
                Some(&fence),
            )
            .await
            .unwrap();
        let node2 = kv.put("/node", b"2".to_vec(), 0).await.unwrap();
        assert_eq!(
            kv.update_if("/pod", b"3".to_vec(), bound, &[("/node", node)], Some(&fence))
                .await,
            Err(KvError::Conflict { current: node2 }),
            "the other key changed"
        );
        assert_eq!(
            kv.update_if("/pod", b"3".to_vec(), pod, &[("/node", node2)], None)
                .await,
            Err(KvError::Conflict { current: bound })
        );
        assert_eq!(
            kv.update_if("/gone", b"3".to_vec(), 1, &[], None).await,
            Err(KvError::NotFound)
        );
        kv.put("/r", b"6 z".to_vec(), 0).await.unwrap();
        assert_eq!(
            kv.update_if("/pod", b"3".to_vec(), bound, &[("/node", node2)], Some(&fence))
                .await,
            Err(KvError::Fenced)
        );
        assert_eq!(kv.get("/pod").await.unwrap().unwrap().value, b"2");
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
