//! Prefix watches from a revision, as batches of events in revision order.

use berth_proto::etcdserverpb::watch_request::RequestUnion;
use berth_proto::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest};
use berth_proto::mvccpb::event::EventType;
use tokio::sync::mpsc;

use super::{AbortOnDrop, Kv, KvError, Record, Result, open_record, prefix_end, status_error};

/// One event of a watch, in revision order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Put(Record),
    /// The deleted key with its last value (`prev_kv`) and the deletion revision.
    Delete {
        prev: Record,
        revision: i64,
    },
}

impl Event {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put(kv) => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }

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
    requests: mpsc::Sender<WatchRequest>,
    _task: AbortOnDrop,
}

impl Watch {
    /// The next batch as (header revision, events); `None` when the stream ended
    /// (the caller re-watches from its last revision + 1).
    pub async fn next(&mut self) -> Option<Result<(i64, Vec<Event>)>> {
        self.events.recv().await
    }

    /// Asks the store for a progress notification (etcd's `WatchProgressRequest`):
    /// an empty batch at the store's current revision once every event up to it
    /// has been sent, which [`next`](Self::next) yields as any other. A watch
    /// whose stream has ended ignores it.
    pub async fn request_progress(&self) {
        let request = WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        };
        let _ = self.requests.send(request).await;
    }
}

impl Kv {
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
        let envelope = self.envelope.clone();
        let kept = requests.clone();
        let task = tokio::spawn(async move {
            let _requests = kept; // closing it would end the watch
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
                        let open =
                            |kv: berth_proto::mvccpb::KeyValue| open_record(envelope.as_deref(), Record::from(kv));
                        let kv = open(e.kv?);
                        Some(if e.r#type == EventType::Delete as i32 {
                            let revision = kv.mod_revision;
                            Event::Delete {
                                prev: e.prev_kv.map_or(
                                    Record {
                                        key: kv.key,
                                        ..Default::default()
                                    },
                                    open,
                                ),
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
            requests,
            _task: AbortOnDrop(task),
        })
    }
}
