//! The list-then-watch loop over the Kubernetes API, feeding the same [`Sink`] the
//! store's [`reflect`](crate::reflector::reflect) feeds:
//!
//! ```text
//!  GET collection?limit=500[&fieldSelector] (pages, continue) ──► sink.replace(records, R)
//!        ▲                                                              │
//!        │                         GET ?watch=true&resourceVersion=R&allowWatchBookmarks=true
//!        │                                                              │ ADDED/MODIFIED/DELETED: sink.apply, R = its resourceVersion
//!        │ 410 Gone / ERROR Expired                                     │ BOOKMARK: R = its resourceVersion
//!        └──────────────────────────────────────────────────────────────┤ the stream ended, broke, or the
//!                                                                       └─► server failed: watch again from R
//! ```
//!
//! The client's failover (`HttpClient`) picks the API server each list and watch
//! connects to, so a watch that breaks resumes on another one from the same R.

use std::sync::Arc;
use std::time::Duration;

use berth_api::kinds::KindDescriptor;

use super::ApiSource;
use super::records::{WatchEvent, decode_event, is_expired_status, response_error};
use crate::kv::{Event, KvError};
use crate::reflector::Sink;

/// How long to wait before listing or watching again after a failure.
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// The `timeoutSeconds` of each watch: the server ends it then, and it is opened
/// again from where it was.
const WATCH_TIMEOUT: Duration = Duration::from_secs(300);
/// A watch that sends nothing (not even its end) this long after its timeout is
/// taken for a dead connection.
const WATCH_SILENCE: Duration = Duration::from_secs(WATCH_TIMEOUT.as_secs() + 60);

/// How one watch request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// The server ended the stream (its timeout): nothing is wrong.
    Ended,
    /// The revision to watch from is gone (`410`, or an ERROR event `Expired`).
    Expired,
    /// The request or the stream failed, or the server sent an ERROR.
    Failed(String),
}

/// What the loop does after a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// List again, then watch from the list's resourceVersion.
    Relist,
    /// Watch again from the last resourceVersion seen, after this pause.
    Rewatch(Duration),
}

/// The re-list decision.
pub fn next_after(end: &WatchEnd) -> Next {
    match end {
        WatchEnd::Expired => Next::Relist,
        WatchEnd::Ended => Next::Rewatch(Duration::ZERO),
        WatchEnd::Failed(_) => Next::Rewatch(RETRY_DELAY),
    }
}

/// Lists then watches `kind` (those objects `field_selector` selects, if given)
/// forever, feeding `sink`.
pub async fn reflect(
    api: ApiSource,
    kind: &'static KindDescriptor,
    field_selector: Option<String>,
    sink: Arc<dyn Sink>,
) {
    reflect_in(api, kind, None, field_selector, sink).await
}

/// [`reflect`] within `namespace` (all of them with `None`): a node watches one
/// Secret as `/api/v1/namespaces/<ns>/secrets?fieldSelector=metadata.name=<name>`,
/// which the Node authorizer allows when a pod of the node names it.
pub async fn reflect_in(
    api: ApiSource,
    kind: &'static KindDescriptor,
    namespace: Option<String>,
    field_selector: Option<String>,
    sink: Arc<dyn Sink>,
) {
    let selector = field_selector.unwrap_or_default();
    let namespace = namespace.as_deref();
    // The first list takes what the API server's watch cache has (resourceVersion
    // 0), as client-go's reflectors do; after a 410 the list is a consistent one,
    // whole, which the cache serves once it has caught up with the store (paged,
    // the store would serve it: a node's few pods read out of all of them).
    let mut read = ListRead::Any;
    loop {
        let listed = api.list_from(kind, namespace, &selector, read).await;
        let mut revision = match listed {
            Ok((records, revision)) => {
                sink.replace(records, revision);
                revision
            }
            Err(e) => {
                tracing::warn!(kind = kind.plural, error = %e, "list through the API server failed; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        loop {
            let end = watch_once(&api, kind, namespace, &selector, &mut revision, sink.as_ref()).await;
            match next_after(&end) {
                Next::Relist => {
                    read = ListRead::Current;
                    tracing::info!(
                        kind = kind.plural,
                        revision,
                        "the watch's resourceVersion expired; listing again"
                    );
                    break;
                }
                Next::Rewatch(pause) => {
                    if let WatchEnd::Failed(e) = &end {
                        tracing::warn!(kind = kind.plural, revision, error = %e, "watch through the API server failed; resuming");
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// One watch request from `revision`, which moves with every event and bookmark.
async fn watch_once(
    api: &ApiSource,
    kind: &'static KindDescriptor,
    namespace: Option<&str>,
    selector: &str,
    revision: &mut i64,
    sink: &dyn Sink,
) -> WatchEnd {
    let from = revision.to_string();
    let timeout = WATCH_TIMEOUT.as_secs().to_string();
    let path = super::records::collection_query(
        kind,
        namespace,
        &[
            ("watch", "true"),
            ("resourceVersion", &from),
            ("allowWatchBookmarks", "true"),
            ("fieldSelector", selector),
            ("timeoutSeconds", &timeout),
        ],
    );
    let mut stream = match api.http.stream("GET", &path).await {
        Ok(stream) => stream,
        Err(e) => return WatchEnd::Failed(e.to_string()),
    };
    if !stream.is_success() {
        let status = stream.status;
        let body = stream.read_to_end().await.unwrap_or_default();
        let status_object = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        if status == 410 || is_expired_status(&status_object) {
            return WatchEnd::Expired;
        }
        return WatchEnd::Failed(response_error(status, &body).to_string());
    }
    loop {
        let line = match tokio::time::timeout(WATCH_SILENCE, stream.next_line()).await {
            Err(_) => return WatchEnd::Failed(format!("nothing from the watch for {} s", WATCH_SILENCE.as_secs())),
            Ok(Err(e)) => return WatchEnd::Failed(e.to_string()),
            Ok(Ok(None)) => return WatchEnd::Ended,
            Ok(Ok(Some(line))) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_event(kind, &line) {
            Ok(WatchEvent::Change(event) | WatchEvent::Gone(event)) => apply(sink, event, revision),
            Ok(WatchEvent::Bookmark(at)) => *revision = (*revision).max(at),
            Ok(WatchEvent::Expired(_)) => return WatchEnd::Expired,
            Ok(WatchEvent::Failed(message)) => return WatchEnd::Failed(message),
            // One object that cannot be read is skipped, as a store sink skips one
            // that does not decode; the watch goes on.
            Err(e) => tracing::warn!(kind = kind.plural, error = %e, "skipping a watch event"),
        }
    }
}

pub(super) fn apply(sink: &dyn Sink, event: Event, revision: &mut i64) {
    let at = event.revision();
    // An event older than what was seen (never expected) was applied already. One
    // at the revision seen is not: a transaction that writes several objects (the
    // scheduler's batched binds) gives each the same revision.
    if at < *revision {
        return;
    }
    *revision = at;
    sink.apply(vec![event], at);
}

/// How a list through the API server is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRead {
    /// `resourceVersion=0`: what the API server's watch cache holds, at its
    /// revision, in one response.
    Any,
    /// No `resourceVersion` and no `limit`: at the store's current revision, in one
    /// response (the watch cache serves it once it has caught up).
    Current,
    /// No `resourceVersion`, pages of 500: the store serves them, at one revision.
    Pages,
}

impl ApiSource {
    /// Every object of `kind` the selector selects (all with ""), read in pages at
    /// one resourceVersion, and that resourceVersion.
    pub async fn list(
        &self,
        kind: &'static KindDescriptor,
        field_selector: &str,
    ) -> Result<(Vec<crate::kv::Record>, i64), KvError> {
        self.list_in(kind, None, field_selector).await
    }

    /// [`list`](Self::list) within `namespace` (all of them with `None`).
    pub async fn list_in(
        &self,
        kind: &'static KindDescriptor,
        namespace: Option<&str>,
        field_selector: &str,
    ) -> Result<(Vec<crate::kv::Record>, i64), KvError> {
        self.list_from(kind, namespace, field_selector, ListRead::Pages).await
    }

    /// [`list_in`](Self::list_in), read as `read` says.
    pub async fn list_from(
        &self,
        kind: &'static KindDescriptor,
        namespace: Option<&str>,
        field_selector: &str,
        read: ListRead,
    ) -> Result<(Vec<crate::kv::Record>, i64), KvError> {
        let mut records = Vec::new();
        let mut continue_token = String::new();
        loop {
            // A continued list names no resourceVersion.
            let any = if read == ListRead::Any && continue_token.is_empty() {
                "0"
            } else {
                ""
            };
            let limit = if read == ListRead::Current { "" } else { "500" };
            let path = super::records::collection_query(
                kind,
                namespace,
                &[
                    ("resourceVersion", any),
                    ("limit", limit),
                    ("fieldSelector", field_selector),
                    ("continue", &continue_token),
                ],
            );
            let body = self.get_ok(&path).await?;
            let mut list: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| KvError::Other(format!("a {} list that is not JSON: {e}", kind.kind)))?;
            let items = match list.get_mut("items").map(serde_json::Value::take) {
                Some(serde_json::Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for item in items {
                records.push(super::records::record_of(kind, item).map_err(KvError::Other)?);
            }
            continue_token = list
                .pointer("/metadata/continue")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            if continue_token.is_empty() {
                let revision = list
                    .pointer("/metadata/resourceVersion")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|rv| rv.parse::<i64>().ok())
                    .ok_or_else(|| KvError::Other(format!("a {} list without a resourceVersion", kind.kind)))?;
                return Ok((records, revision));
            }
        }
    }
}
