//! The etcd Watch service: one bidirectional stream carries many watchers.
//!
//! A stream's responses leave in order: `created` before a watcher's events, a
//! watcher's events before a progress response that covers them, and nothing of a
//! watcher after its `canceled` response.
//!
//! Two sources feed the stream. The stream's own answers (`created`, `canceled`, a
//! duplicate ID) wait in `answers`, in the order the requests came, and go out before
//! anything else; a watcher starts only once its `created` is out, so its events
//! cannot overtake it. Watchers' events and progress responses share one queue: a
//! progress response is queued after the events it covers. Events still queued for
//! a watcher that has been canceled are dropped.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::time::Duration;

use berth_proto::etcdserverpb::watch_server::Watch;
use berth_proto::etcdserverpb::{WatchRequest, WatchResponse, watch_request};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth;
use crate::auth::checks;
use crate::mvcc::KeyRange;
use crate::store::Store;
use crate::watch::{WatchSpec, Watcher, WatcherProgress};

/// etcd's `clientv3.InvalidWatchID`: a progress response belongs to no watcher.
const PROGRESS_WATCH_ID: i64 = -1;
const STREAM_QUEUE: usize = 256;
/// What a watcher refused by auth is canceled with, etcd's words.
const PERMISSION_DENIED: &str = "etcdserver: permission denied";

pub struct WatchService {
    pub store: Store,
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        // etcd refuses a watcher, not the stream: each create is checked (see `on_request`).
        let caller = auth::caller(&self.store, &request).map_err(|_| ());
        Ok(Response::new(watch_stream(
            self.store.clone(),
            caller,
            request.into_inner(),
        )))
    }
}

/// One watch stream over any source of requests (a gRPC stream, or the JSON
/// gateway's request body); it ends when the requests do. `caller`: who opened it
/// (`grpc::auth::caller`), or why it is nobody.
pub fn watch_stream<S>(store: Store, caller: Result<Option<String>, ()>, requests: S) -> WatchStream
where
    S: Stream<Item = Result<WatchRequest, Status>> + Send + Unpin + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(WatchStreamTask::new(store, caller, out_tx).run(requests));
    Box::pin(ReceiverStream::new(out_rx))
}

struct WatchStreamTask {
    store: Store,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    queue_tx: mpsc::Sender<WatchResponse>,
    queue_rx: mpsc::Receiver<WatchResponse>,
    /// Every live watcher: its task once started (after its `created` is out).
    watchers: HashMap<i64, (Option<JoinHandle<()>>, WatcherProgress)>,
    /// Watchers waiting for their `created` to go out.
    unstarted: HashMap<i64, Watcher>,
    /// The stream's own answers, sent before the queue.
    answers: VecDeque<WatchResponse>,
    next_watch_id: i64,
    /// Who opened the stream, checked against each watcher's range while auth is on.
    caller: Result<Option<String>, ()>,
}

impl WatchStreamTask {
    fn new(store: Store, caller: Result<Option<String>, ()>, out: mpsc::Sender<Result<WatchResponse, Status>>) -> Self {
        let (queue_tx, queue_rx) = mpsc::channel(STREAM_QUEUE);
        Self {
            store,
            out,
            queue_tx,
            queue_rx,
            watchers: HashMap::new(),
            unstarted: HashMap::new(),
            answers: VecDeque::new(),
            next_watch_id: 0,
            caller,
        }
    }

    async fn run<S>(mut self, mut incoming: S)
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
    {
        loop {
            if let Some(answer) = self.answers.pop_front() {
                let started = answer.created && !answer.canceled;
                let watch_id = answer.watch_id;
                if !self.send(answer).await {
                    break;
                }
                if started {
                    self.start(watch_id);
                }
                continue;
            }
            tokio::select! {
                request = incoming.next() => match request {
                    Some(Ok(request)) => self.on_request(request),
                    Some(Err(_)) | None => break,
                },
                Some(response) = self.queue_rx.recv() => {
                    let is_progress = response.watch_id == PROGRESS_WATCH_ID;
                    if !is_progress && !self.watchers.contains_key(&response.watch_id) {
                        continue; // queued before its watcher was canceled
                    }
                    if response.canceled
                        && let Some((Some(task), _)) = self.watchers.remove(&response.watch_id)
                    {
                        task.abort();
                    }
                    if !self.send(response).await {
                        break;
                    }
                }
            }
        }
        for (_, (task, _)) in self.watchers.drain() {
            if let Some(task) = task {
                task.abort();
            }
        }
    }

    /// Runs a watcher whose `created` has gone out (unless it was canceled first).
    fn start(&mut self, watch_id: i64) {
        if let (Some(watcher), Some((task, _))) = (self.unstarted.remove(&watch_id), self.watchers.get_mut(&watch_id)) {
            *task = Some(tokio::spawn(watcher.run()));
        }
    }

    async fn send(&self, mut response: WatchResponse) -> bool {
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        response.header = Some(self.store.header(revision));
        self.store.count_watch_events(response.events.len() as u64);
        self.out.send(Ok(response)).await.is_ok()
    }

    /// Queues a response behind everything already queued, without blocking the
    /// loop that drains the queue.
    fn enqueue(&self, response: WatchResponse) {
        let tx = self.queue_tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(response).await;
        });
    }

    fn on_request(&mut self, request: WatchRequest) {
        match request.request_union {
            Some(watch_request::RequestUnion::CreateRequest(create)) => {
                let watch_id = if create.watch_id != 0 {
                    create.watch_id
                } else {
                    self.allocate_id()
                };
                if self.watchers.contains_key(&watch_id) {
                    self.answers.push_back(WatchResponse {
                        watch_id,
                        created: true,
                        canceled: true,
                        cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
                        ..Default::default()
                    });
                    return;
                }
                if !self.may_watch(&create.key, &create.range_end) {
                    // etcd's answer: the watcher is canceled as it is created.
                    self.answers.push_back(WatchResponse {
                        watch_id,
                        created: true,
                        canceled: true,
                        cancel_reason: PERMISSION_DENIED.into(),
                        ..Default::default()
                    });
                    return;
                }
                let spec = WatchSpec {
                    watch_id,
                    range: KeyRange::new(&create.key, &create.range_end),
                    start_revision: create.start_revision,
                    prev_kv: create.prev_kv,
                    filter_put: false,
                    filter_delete: false,
                    progress_notify: create.progress_notify.then(|| self.progress_interval()),
                }
                .with_filters(&create.filters);
                let (watcher, progress) = Watcher::new(
                    spec,
                    self.store.state().clone(),
                    self.store.hub(),
                    self.queue_tx.clone(),
                );
                self.answers.push_back(WatchResponse {
                    header: Some(berth_proto::etcdserverpb::ResponseHeader {
                        revision: self.store.current_revision(),
                        ..Default::default()
                    }),
                    watch_id,
                    created: true,
                    ..Default::default()
                });
                self.unstarted.insert(watch_id, watcher);
                self.watchers.insert(watch_id, (None, progress));
            }
            Some(watch_request::RequestUnion::CancelRequest(cancel)) => {
                if let Some((task, _)) = self.watchers.remove(&cancel.watch_id) {
                    if let Some(task) = task {
                        task.abort();
                    }
                    self.unstarted.remove(&cancel.watch_id);
                    self.answers.push_back(WatchResponse {
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    });
                }
            }
            Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                // Only what every watcher of this stream has already queued.
                let revision = self
                    .watchers
                    .values()
                    .map(|(_, progress)| progress.get())
                    .min()
                    .unwrap_or_else(|| self.store.current_revision());
                self.enqueue(WatchResponse {
                    header: Some(berth_proto::etcdserverpb::ResponseHeader {
                        revision,
                        ..Default::default()
                    }),
                    watch_id: PROGRESS_WATCH_ID,
                    ..Default::default()
                });
            }
            None => {}
        }
    }

    /// Whether the caller may read `key`..`range_end` (always, while auth is off).
    fn may_watch(&self, key: &[u8], range_end: &[u8]) -> bool {
        if !self.store.auth().is_enabled() {
            return true;
        }
        match &self.caller {
            Ok(Some(user)) => self
                .store
                .check_auth(|state| checks::watch(&state.auth, user, key, range_end))
                .is_ok(),
            Ok(None) | Err(()) => false,
        }
    }

    fn allocate_id(&mut self) -> i64 {
        while self.watchers.contains_key(&self.next_watch_id) {
            self.next_watch_id += 1;
        }
        let id = self.next_watch_id;
        self.next_watch_id += 1;
        id
    }

    fn progress_interval(&self) -> Duration {
        self.store.config().watch_progress_notify_interval
    }
}
