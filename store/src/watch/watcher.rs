//! One watcher: a task that owes its stream every matching event from `next`
//! on, in order, exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use berth_proto::etcdserverpb::{ResponseHeader, WatchResponse, watch_create_request::FilterType};
use berth_proto::mvccpb::{Event, event::EventType};
use tokio::sync::{broadcast, mpsc};

use super::WatchHub;
use super::hub::PrevKvInterest;
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
    /// Held while the watcher runs, when it wants previous values.
    _prev_kv: Option<PrevKvInterest>,
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
        let prev_kv = spec.prev_kv.then(|| hub.want_prev_kv());
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
            _prev_kv: prev_kv,
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
                .events_between(self.next, current, CATCH_UP_REVISIONS, self.spec.prev_kv)
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
                    .map(|e| self.shape(e)),
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

    /// The event as this watcher sends it: with the previous value if it asked for
    /// it. A put applied before the watcher registered its wish has none; it is read
    /// from history then, and left out if compaction removed it, as etcd does.
    fn shape(&self, event: &Event) -> Event {
        let prev_kv = match (&event.kv, &event.prev_kv) {
            _ if !self.spec.prev_kv => None,
            (_, Some(prev)) => Some(prev.clone()),
            (Some(kv), None) if event.r#type == EventType::Put as i32 && kv.version > 1 => {
                self.state.read().kv.get_at(&kv.key, kv.mod_revision - 1).ok().flatten()
            }
            _ => None,
        };
        Event {
            r#type: event.r#type,
            kv: event.kv.clone(),
            prev_kv,
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_proto::berthpb::{Command, command};
    use berth_proto::etcdserverpb::PutRequest;

    use super::*;
    use crate::backend::{MemoryBackend, SharedBackend, Tree, WriteBatch};
    use crate::state_machine::AppliedState;

    /// Applies a put and commits it as the state machine does; returns its events.
    fn put(state: &StateHandle, value: &str, events_carry_prev_kv: bool) -> RevisionEvents {
        let mut state = state.write();
        state.kv.set_events_carry_prev_kv(events_carry_prev_kv);
        let request = PutRequest {
            key: b"k".to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        };
        let command = Command {
            command: Some(command::Command::Put(request)),
        };
        let applied = state.apply(&command, &mut WriteBatch::new()).unwrap();
        let batch = state.kv.take_batch();
        state.kv.backend().write(Tree::State, batch).unwrap();
        applied.events.unwrap()
    }

    async fn watch(state: &StateHandle, hub: &WatchHub, prev_kv: bool) -> mpsc::Receiver<WatchResponse> {
        let spec = WatchSpec {
            watch_id: 1,
            range: KeyRange::new(b"k", b""),
            start_revision: 0,
            prev_kv,
            filter_put: false,
            filter_delete: false,
            progress_notify: None,
        };
        let (out, rx) = mpsc::channel(16);
        let (watcher, _) = Watcher::new(spec, state.clone(), hub, out);
        tokio::spawn(watcher.run());
        // Let it catch up, so that what follows arrives through the hub.
        tokio::time::sleep(Duration::from_millis(100)).await;
        rx
    }

    async fn next_event(rx: &mut mpsc::Receiver<WatchResponse>) -> Event {
        let resp = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the watcher runs");
        assert_eq!(resp.events.len(), 1, "{resp:?}");
        resp.events[0].clone()
    }

    #[tokio::test]
    async fn a_put_applied_without_its_previous_value_gets_it_from_history() {
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        let state = StateHandle::new(AppliedState::load(&backend).unwrap());
        let hub = WatchHub::new();
        put(&state, "v1", false);
        let mut with_prev = watch(&state, &hub, true).await;
        let mut without_prev = watch(&state, &hub, false).await;
        assert!(hub.wants_prev_kv());

        // Applied as if the check came before the watcher registered its wish.
        let events = put(&state, "v2", false);
        assert_eq!(events.events[0].prev_kv, None);
        hub.publish(vec![events]);
        let event = next_event(&mut with_prev).await;
        assert_eq!(event.kv.unwrap().value, b"v2");
        assert_eq!(event.prev_kv.expect("the previous value").value, b"v1");
        assert_eq!(next_event(&mut without_prev).await.prev_kv, None);

        // Applied while the wish is known: the event carries it, the watcher that did
        // not ask still gets none.
        let events = put(&state, "v3", hub.wants_prev_kv());
        hub.publish(vec![events]);
        assert_eq!(next_event(&mut with_prev).await.prev_kv.unwrap().value, b"v2");
        assert_eq!(next_event(&mut without_prev).await.prev_kv, None);

        drop(with_prev);
        // The watcher notices its stream is gone at its next send.
        hub.publish(vec![put(&state, "v4", true)]);
        next_event(&mut without_prev).await;
        tokio::time::timeout(Duration::from_secs(10), async {
            while hub.wants_prev_kv() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the wish ends with the watcher");
    }
}
