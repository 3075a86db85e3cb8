//! The history recorder shared by every client: appends events with a timestamp
//! from one monotonic clock, so the order of the log is real-time order.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::history::{Event, Kind, Op, WatchSession};

#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
    sessions: Arc<Mutex<Vec<WatchSession>>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            events: Arc::default(),
            sessions: Arc::default(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Records an invocation; the timestamp is taken under the lock, so log order
    /// and time order agree.
    pub fn invoke(&self, process: u64, op: &Op) {
        self.push(process, Kind::Invoke, op.clone(), None, None);
    }

    pub fn complete(&self, process: u64, kind: Kind, op: Op, revision: Option<i64>, error: Option<String>) {
        self.push(process, kind, op, revision, error);
    }

    fn push(&self, process: u64, kind: Kind, op: Op, revision: Option<i64>, error: Option<String>) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let time_ns = self.now_ns();
        events.push(Event {
            process,
            kind,
            op,
            time_ns,
            revision,
            error,
        });
    }

    pub fn add_session(&self, session: WatchSession) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).push(session);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn sessions(&self) -> Vec<WatchSession> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
