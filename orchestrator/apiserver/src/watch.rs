//! Watches over HTTP: a chunked response with one JSON event per line,
//! `{"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}`.
//!
//! ```text
//! resourceVersion unset or 0:  list ──► ADDED for each ──► watch from the list's revision + 1
//! resourceVersion N:                                       watch from N + 1 (410 if compacted)
//!
//! store batch ──► decode ──► selector transitions ──► lines ──► one chunk
//! progress (empty batch) ──► BOOKMARK, when the client allows bookmarks
//! compacted mid-way ──► ERROR with a 410 Status, then the end; any other failure ──► the end
//! ```
//!
//! With selectors, Kubernetes' rule applies: an object that starts to pass them is
//! ADDED, one that stops is DELETED. Whether an object passed before a put is known
//! from the list or an earlier event; else it is read at the revision before the put.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ApiServer;
use super::route::Kind;
use super::selector::Filter;
use super::status::ApiError;
use super::storage::{decode, stamp};
use super::table::Include;
use super::watch_cache::lines::WatcherSpec;
use super::watch_cache::{From, Unserved};
use berth_client::kv::{Event, Kv, KvError, Record, Watch};

#[derive(Debug, Clone, Default)]
pub struct WatchRequest {
    /// `resourceVersion`: unset lists (from the store) first; 0 starts from the
    /// cache's objects, whatever its revision; N sends the changes after N.
    pub resource_version: Option<i64>,
    pub filter: Filter,
    pub allow_bookmarks: bool,
    /// `timeoutSeconds`, if any (the caller bounds it).
    pub timeout: Option<Duration>,
    /// Each object as a one-row `Table` of this apiVersion (`kubectl get -w`).
    pub table: Option<(&'static str, Include)>,
}

/// What a watcher is told about a change, given whether the object passed its
/// selectors before and passes them now.
pub fn event_type(passed_before: bool, passes_now: bool) -> Option<&'static str> {
    match (passed_before, passes_now) {
        (false, true) => Some("ADDED"),
        (true, true) => Some("MODIFIED"),
        (true, false) => Some("DELETED"),
        (false, false) => None,
    }
}

/// An event's line, its object as a one-row Table when the client asked for tables.
pub(crate) fn object_line(
    kind: &Kind,
    table: Option<(&'static str, Include)>,
    event_type: &str,
    object: &Value,
) -> Vec<u8> {
    match table {
        Some((version, include)) => line(event_type, &super::table::table(kind, version, object, false, include)),
        None => line(event_type, object),
    }
}

/// A BOOKMARK line: nothing of the kind changed up to `revision` that was not sent.
pub(crate) fn bookmark_line(kind: &Kind, revision: i64) -> Vec<u8> {
    let bookmark = json!({
        "kind": kind.kind,
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
    });
    line("BOOKMARK", &bookmark)
}

/// A line of `event_type` for an object already in JSON.
pub(crate) fn raw_line(event_type: &str, object: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut line, event_type).expect("strings serialize");
    line.extend_from_slice(b",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    line
}

fn line(event_type: &str, object: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({"type": event_type, "object": object})).expect("values serialize");
    line.push(b'\n');
    line
}

/// Starts a watch; errors before the first event (a compacted revision: 410) are
/// the response's status.
pub async fn watch(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: Option<&str>,
    request: WatchRequest,
) -> Result<Response, ApiError> {
    let prefix = kind.prefix(namespace);
    let mut first = Vec::new();
    let mut passed = HashMap::new();
    let after = match request.resource_version {
        Some(revision) if revision > 0 => revision,
        Some(_) => 0,
        None => {
            let (kvs, revision) = api.kv.list(&prefix).await.map_err(|e| ApiError::from_kv(e, kind, ""))?;
            for kv in &kvs {
                let Ok(object) = decode(kind, kv) else { continue };
                let passes = request.filter.matches(&object);
                if passes {
                    first.extend(object_line(kind, request.table, "ADDED", &object));
                }
                if !request.filter.is_everything() {
                    passed.insert(kv.key.clone(), passes);
                }
            }
            revision
        }
    };
    let deadline = request.timeout.and_then(|t| Instant::now().checked_add(t));
    if api.settings.watch_cache {
        let cache = api.watch_caches.of(&api.kv, kind);
        let spec = WatcherSpec::new(
            kind,
            prefix.clone(),
            request.filter.clone(),
            request.allow_bookmarks,
            request.table,
        );
        let from = match request.resource_version {
            Some(0) => From::Any,
            _ => From::After(after),
        };
        let subscribed = cache.subscribe(spec, from).await;
        if let Err(Unserved::TooOld { oldest }) = subscribed {
            return Err(ApiError::expired(after, oldest));
        }
        if let Ok(subscription) = subscribed {
            first.extend(subscription.first);
            let watcher = CachedWatcher {
                lines: subscription.lines,
                first: (!first.is_empty()).then_some(first),
                deadline,
            };
            let metrics = api.request_metrics.clone();
            return Ok(streaming(futures::stream::unfold(watcher, move |mut watcher| {
                let metrics = metrics.clone();
                async move {
                    let chunk = watcher.next_chunk().await?;
                    metrics.count_watch_events(kind, lines_in(&chunk));
                    Some((Ok::<_, Infallible>(Bytes::from(chunk)), watcher))
                }
            })));
        }
    }
    // Not from the cache: the store's own watch, from the list, or the revision asked.
    if request.resource_version == Some(0) {
        return Box::pin(watch(
            api,
            kind,
            namespace,
            WatchRequest {
                resource_version: None,
                ..request
            },
        ))
        .await;
    }
    let store_watch = open(api, kind, &prefix, after).await?;
    api.request_metrics.count_watch_events(kind, lines_in(&first));
    let watcher = Watcher {
        metrics: api.request_metrics.clone(),
        kv: api.kv.clone(),
        kind,
        watch: store_watch,
        filter: request.filter,
        passed,
        allow_bookmarks: request.allow_bookmarks,
        table: request.table,
        // A deadline past what an Instant holds is no deadline.
        deadline,
        first: (!first.is_empty()).then_some(first),
        is_done: false,
    };
    Ok(streaming(futures::stream::unfold(watcher, |mut watcher| async move {
        let chunk = watcher.next_chunk().await?;
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), watcher))
    })))
}

/// The response of a watch: its chunks as they come.
fn streaming(chunks: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static) -> Response {
    Response::builder()
        .status(200)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(chunks))
        .expect("a valid response")
}

/// A watch the cache feeds.
struct CachedWatcher {
    lines: tokio::sync::mpsc::Receiver<Bytes>,
    first: Option<Vec<u8>>,
    deadline: Option<Instant>,
}

impl CachedWatcher {
    /// The lines that are ready, at least one; `None` ends the response (its
    /// timeout, or the cache closed it).
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        let line = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.lines.recv()).await.ok()?,
            None => self.lines.recv().await,
        }?;
        let mut chunk = line.to_vec();
        while chunk.len() < CHUNK_BYTES {
            match self.lines.try_recv() {
                Ok(line) => chunk.extend_from_slice(&line),
                Err(_) => break,
            }
        }
        Some(chunk)
    }
}

/// How many bytes of ready lines one chunk of a cached watch gathers at most.
const CHUNK_BYTES: usize = 256 * 1024;

/// The events in a chunk: one line each.
fn lines_in(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Opens the store watch from `after + 1`, or fails with 410 if that is compacted.
///
/// The store, like etcd, accepts a watch from a compacted revision and cancels it
/// right after; a read at the start revision tells at once whether it will be, so
/// the client gets a 410 response rather than a 200 with an ERROR event.
async fn open(api: &ApiServer, kind: &Kind, prefix: &str, after: i64) -> Result<Watch, ApiError> {
    let mut store_watch = api.kv.watch(prefix, after + 1).await.map_err(|e| match e {
        KvError::Compacted { compacted, .. } => ApiError::expired(after, compacted),
        e => ApiError::from_kv(e, kind, ""),
    })?;
    match api.kv.get_at(prefix, after + 1).await {
        Err(KvError::Compacted { .. }) => {
            // The cancellation carries the compact revision; it follows at once.
            let compacted = match tokio::time::timeout(Duration::from_secs(5), store_watch.next()).await {
                Ok(Some(Err(KvError::Compacted { compacted, .. }))) => compacted,
                _ => 0,
            };
            Err(ApiError::expired(after, compacted))
        }
        _ => Ok(store_watch),
    }
}

struct Watcher {
    /// Where the events sent are counted.
    metrics: std::sync::Arc<crate::request_metrics::RequestMetrics>,
    kv: Kv,
    kind: &'static Kind,
    watch: Watch,
    filter: Filter,
    /// Whether each key seen passed the selectors (only kept when there are selectors).
    passed: HashMap<String, bool>,
    allow_bookmarks: bool,
    table: Option<(&'static str, Include)>,
    deadline: Option<Instant>,
    /// The ADDED events of the initial list.
    first: Option<Vec<u8>>,
    is_done: bool,
}

impl Watcher {
    /// The lines of the next store batch that has any for this client; `None` ends
    /// the response.
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.is_done {
            return None;
        }
        loop {
            let next = match self.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.watch.next()).await.ok()?,
                None => self.watch.next().await,
            };
            let (revision, events) = match next? {
                Ok(batch) => batch,
                Err(KvError::Compacted { requested, compacted }) => {
                    self.is_done = true;
                    return Some(line("ERROR", &ApiError::expired(requested - 1, compacted).status()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the store's watch ended; so does the client's");
                    return None;
                }
            };
            let mut chunk = Vec::new();
            if events.is_empty() && self.allow_bookmarks {
                chunk.extend(bookmark_line(self.kind, revision));
            }
            for event in events {
                self.translate(event, &mut chunk).await;
            }
            if !chunk.is_empty() {
                self.metrics.count_watch_events(self.kind, lines_in(&chunk));
                return Some(chunk);
            }
        }
    }

    async fn translate(&mut self, event: Event, out: &mut Vec<u8>) {
        match event {
            Event::Put(kv) => {
                let object = match decode(self.kind, &kv) {
                    Ok(object) => object,
                    Err(e) => {
                        tracing::warn!(error = %e, "not sending an object that does not decode");
                        return;
                    }
                };
                let passes_now = self.filter.matches(&object);
                let passed_before = if kv.create_revision == kv.mod_revision {
                    false
                } else if self.filter.is_everything() {
                    true
                } else {
                    match self.passed.get(&kv.key) {
                        Some(passed) => *passed,
                        None => self.passed_before(&kv).await.unwrap_or(passes_now),
                    }
                };
                if !self.filter.is_everything() {
                    self.passed.insert(kv.key.clone(), passes_now);
                }
                if let Some(event_type) = event_type(passed_before, passes_now) {
                    out.extend(object_line(self.kind, self.table, event_type, &object));
                }
            }
            Event::Delete { prev, revision } => {
                self.passed.remove(&prev.key);
                let mut object = decode(self.kind, &prev).unwrap_or_else(|_| identity_of(self.kind, &prev.key));
                stamp(self.kind, &mut object, revision);
                if self.filter.matches(&object) {
                    out.extend(object_line(self.kind, self.table, "DELETED", &object));
                }
            }
        }
    }

    /// Whether the object passed the selectors before this put, read from the store.
    async fn passed_before(&self, kv: &Record) -> Option<bool> {
        let key = &kv.key;
        match self.kv.get_at(key, kv.mod_revision - 1).await {
            Ok(None) => Some(false),
            Ok(Some(previous)) => decode(self.kind, &previous).ok().map(|o| self.filter.matches(&o)),
            Err(e) => {
                tracing::debug!(error = %e, %key, "cannot read the previous version");
                None
            }
        }
    }
}

/// An object known only by its key (`/registry/<resource>/[<namespace>/]<name>`),
/// for a deletion whose last value the store did not send.
fn identity_of(kind: &Kind, key: &str) -> Value {
    let mut parts = key.rsplit('/');
    let name = parts.next().unwrap_or_default();
    let mut metadata = json!({"name": name});
    if kind.namespaced {
        metadata["namespace"] = parts.next().unwrap_or_default().into();
    }
    json!({"metadata": metadata})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_transitions_follow_kubernetes() {
        assert_eq!(event_type(false, true), Some("ADDED"));
        assert_eq!(event_type(true, true), Some("MODIFIED"));
        assert_eq!(event_type(true, false), Some("DELETED"));
        assert_eq!(event_type(false, false), None);
    }

    #[test]
    fn lines_are_one_event_each() {
        let bytes = line("ADDED", &json!({"metadata": {"name": "a"}}));
        assert_eq!(bytes.last(), Some(&b'\n'));
        let event: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["metadata"]["name"], "a");
    }

    #[test]
    fn deleted_keys_name_their_object() {
        let pods = crate::tests::kind("pods");
        let object = identity_of(pods, "/registry/pods/dev/p");
        assert_eq!(object, json!({"metadata": {"name": "p", "namespace": "dev"}}));
        let nodes = crate::tests::kind("nodes");
        assert_eq!(
            identity_of(nodes, "/registry/nodes/n1"),
            json!({"metadata": {"name": "n1"}})
        );
    }
}
