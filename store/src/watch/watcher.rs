//! One watcher: a task that owes its stream every matching event from `next`
//! on, in order, exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use berth_proto::etcdserverpb::{ResponseHeader, WatchResponse, watch_create_request::FilterType};
use berth_proto::mvccpb::{Event, event::EventType};
use tokio::sync::{broadcast, mpsc};

use super::WatchHub;
use crate::mvcc::{KeyRange, MvccError, RevisionEvents};
use crate::state_machine::StateHandle;

/// Revisions read from history per step of a catch-up.
const CATCH_UP_REVISIONS: usize = 256;
/// Events per response, split only between revisions so a transaction's events
/// always arrive together.
const MAX_EVENTS_PER_RESPONSE: usize = 1000;

#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub watch_id: i64,
    pub range: KeyRange,
    /// 0: from the next revision.
    pub start_revision: i64,
    pub prev_kv: bool,
    pub filter_put: bool,
    pub filter_delete: bool,
    /// Send an empty response with the watcher's revision at this interval when idle.
    pub progress_notify: Option<Duration>,
}

impl WatchSpec {
    pub fn with_filters(mut self, filters: &[i32]) -> Self {
        for f in filters {
            match FilterType::try_from(*f) {
                Ok(FilterType::Noput) => self.filter_put = true,
                Ok(FilterType::Nodelete) => self.filter_delete = true,
                Err(_) => {}
            }
        }
        self
    }

    fn accepts(&self, event: &Event) -> bool {
        let Some(kv) = &event.kv else { return false };
        if !self.range.contains(&kv.key) {
            return false;
        }
        let is_put = event.r#type == EventType::Put as i32;
        !(is_put && self.filter_put || !is_put && self.filter_delete)
    }

    fn shape(&self, event: &Event) -> Event {
        Event {
            r#type: event.r#type,
            kv: event.kv.clone(),
            prev_kv: if self.prev_kv { event.prev_kv.clone() } else { None },
        }
    }
}

/// The revision up to which a watcher has sent everything it owes. Shared with the
/// stream so that a progress response never claims more than was sent.
#[derive(Debug, Clone, Default)]
pub struct WatcherProgress(Arc<AtomicI64>);

impl WatcherProgress {
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, revision: i64) {
        self.0.store(revision, Ordering::Release);
    }
}

pub struct Watcher {
    spec: WatchSpec,
    state: StateHandle,
    rx: broadcast::Receiver<Arc<Vec<RevisionEvents>>>,
    out: mpsc::Sender<WatchResponse>,
    progress: WatcherProgress,
    /// The next revision this watcher owes.
    next: i64,
}

enum Step {
    Continue,
    Stop,
}

impl Watcher {
    /// Subscribes before reading the current revision, so nothing committed after
    /// that read can be missed.
    pub fn new(
        spec: WatchSpec,
        state: StateHandle,
        hub: &WatchHub,
        out: mpsc::Sender<WatchResponse>,
    ) -> (Self, WatcherProgress) {
        let rx = hub.subscribe();
        let current = state.read().kv.current_revision();
        let next = if spec.start_revision > 0 {
            spec.start_revision
        } else {
            current + 1
        };
        let progress = WatcherProgress::default();
        progress.set((next - 1).min(current));
        let watcher = Self {
            spec,
            state,
            rx,
            out,
            progress: progress.clone(),
            next,
        };
        (watcher, progress)
    }

    pub async fn run(mut self) {
        let mut ticker = self.spec.progress_notify.map(|every| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let step = match self.catch_up().await {
                Some(step) => step,
                None => {
                    tokio::select! {
                        received = self.rx.recv() => self.on_broadcast(received).await,
                        _ = tick(&mut ticker) => self.notify_progress().await,
                    }
                }
            };
            if let Step::Stop = step {
                return;
            }
        }
    }

    /// Reads history while the watcher is behind the committed revision. Returns
    /// `None` once caught up.
    async fn catch_up(&mut self) -> Option<Step> {
        let read = {
            let state = self.state.read();
            let current = state.kv.current_revision();
            if self.next > current {
                return None;
            }
            state
                .kv
                .events_between(self.next, current, CATCH_UP_REVISIONS)
                .map(|events| (events, current))
        };
        match read {
            Ok((events, current)) => {
                let last = events.last().map_or(current, |e| e.revision);
                // Revisions with no records (none exist today) are skipped safely.
                let upto = if events.len() < CATCH_UP_REVISIONS {
                    current
                } else {
                    last
                };
                Some(self.deliver(&events, upto).await)
            }
            Err(MvccError::Compacted { compacted, .. }) => {
                let resp = WatchResponse {
                    header: Some(ResponseHeader {
                        revision: compacted,
                        ..Default::default()
                    }),
                    watch_id: self.spec.watch_id,
                    canceled: true,
                    compact_revision: compacted,
                    cancel_reason: "mvcc: required revision has been compacted".into(),
                    ..Default::default()
                };
                let _ = self.out.send(resp).await;
                Some(Step::Stop)
            }
            Err(e) => {
                tracing::error!(watch_id = self.spec.watch_id, error = %e, "watch catch-up failed");
                let resp = WatchResponse {
                    watch_id: self.spec.watch_id,
                    canceled: true,
                    cancel_reason: e.to_string(),
                    ..Default::default()
                };
                let _ = self.out.send(resp).await;
                Some(Step::Stop)
            }
        }
    }

    async fn on_broadcast(&mut self, received: Result<Arc<Vec<RevisionEvents>>, broadcast::error::RecvError>) -> Step {
        match received {
            Ok(batch) => {
                let first_new = batch.iter().position(|r| r.revision >= self.next);
                let Some(first_new) = first_new else {
                    return Step::Continue;
                };
                if batch[first_new].revision > self.next {
                    // A gap: what is missing is in history; catch_up reads it next.
                    return Step::Continue;
                }
                let upto = batch.last().map_or(self.next - 1, |r| r.revision);
                self.deliver(&batch[first_new..], upto).await
            }
            // Fell behind the hub: history has everything.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::info!(
                    watch_id = self.spec.watch_id,
                    missed,
                    next = self.next,
                    "watcher fell behind; catching up from history"
                );
                Step::Continue
            }
            Err(broadcast::error::RecvError::Closed) => Step::Stop,
        }
    }

    /// Sends the matching events of `revisions` (consecutive, starting at `next`)
    /// and records that everything up to `upto` has been delivered.
    async fn deliver(&mut self, revisions: &[RevisionEvents], upto: i64) -> Step {
        let mut events = Vec::new();
        let mut last_revision = 0;
        for rev in revisions {
            let before = events.len();
            events.extend(
                rev.events
                    .iter()
                    .filter(|e| self.spec.accepts(e))
                    .map(|e| self.spec.shape(e)),
            );
            if events.len() > before {
                last_revision = rev.revision;
            }
            if events.len() >= MAX_EVENTS_PER_RESPONSE {
                if !self.send_events(std::mem::take(&mut events), last_revision).await {
                    return Step::Stop;
                }
                self.next = rev.revision + 1;
                self.progress.set(rev.revision);
            }
        }
        if !events.is_empty() && !self.send_events(events, last_revision).await {
            return Step::Stop;
        }
        self.next = upto + 1;
        self.progress.set(upto);
        Step::Continue
    }

    async fn send_events(&self, events: Vec<Event>, revision: i64) -> bool {
        let resp = WatchResponse {
            header: Some(ResponseHeader {
                revision,
                ..Default::default()
            }),
            watch_id: self.spec.watch_id,
            events,
            ..Default::default()
        };
        self.out.send(resp).await.is_ok()
    }

    async fn notify_progress(&mut self) -> Step {
        let resp = WatchResponse {
            header: Some(ResponseHeader {
                revision: self.progress.get(),
                ..Default::default()
            }),
            watch_id: self.spec.watch_id,
            ..Default::default()
        };
        if self.out.send(resp).await.is_ok() {
            Step::Continue
        } else {
            Step::Stop
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
