//! What a watch session vouches for: the revisions it covered, and the events it
//! delivered there, grouped by revision.
//!
//! A session covers `from..=to`:
//! - `from` is its start revision; a session "from now" (start 0) starts just after
//!   the header revision of its `created` response, as etcd's server does
//!   (`start = current + 1`). Without that header there is no known start, and the
//!   session covers nothing before its first event.
//! - `to` is the highest revision it vouched for: its highest event (watch events come
//!   in revision order, whole revisions at a time, so everything up to it was sent) or
//!   its highest progress notification, whichever is higher.
//!
//! Within the range, a session must have delivered every event under the prefix.

use std::collections::BTreeMap;

use crate::history::{WatchEvent, WatchSession};

#[derive(Debug)]
pub(crate) struct Coverage<'a> {
    pub session: &'a WatchSession,
    pub from: i64,
    pub to: i64,
    /// Events under the prefix, by revision, in delivery order.
    pub events: BTreeMap<i64, Vec<&'a WatchEvent>>,
}

impl<'a> Coverage<'a> {
    pub(crate) fn new(session: &'a WatchSession, prefix: &str) -> Self {
        let all = || session.responses.iter().flatten();
        let first = all().map(|e| e.mod_revision).min();
        let last = all().map(|e| e.mod_revision).max().unwrap_or(0);
        let from = if session.start_revision > 0 {
            session.start_revision
        } else if session.created_revision > 0 {
            session.created_revision + 1
        } else {
            first.unwrap_or(i64::MAX)
        };
        let mut events: BTreeMap<i64, Vec<&WatchEvent>> = BTreeMap::new();
        for e in all().filter(|e| e.key.starts_with(prefix)) {
            events.entry(e.mod_revision).or_default().push(e);
        }
        Self {
            session,
            from,
            to: last.max(session.progress_revision),
            events,
        }
    }

    pub(crate) fn covers(&self, revision: i64) -> bool {
        self.from <= revision && revision <= self.to
    }

    /// The events at `revision`, as comparable signatures (sorted, deduplicated;
    /// `prev_kv` left out: it is the prev_kv checker's, and a per-watch option).
    pub(crate) fn signature(&self, revision: i64) -> Vec<EventSignature> {
        let mut out: Vec<EventSignature> = self
            .events
            .get(&revision)
            .into_iter()
            .flatten()
            .map(|e| EventSignature::of(e))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn label(&self) -> String {
        format!(
            "watch session {} (revisions {}..={})",
            self.session.watcher, self.from, self.to
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EventSignature {
    pub key: String,
    pub is_delete: bool,
    pub value: String,
    pub create_revision: i64,
    pub version: i64,
}

impl EventSignature {
    pub(crate) fn of(e: &WatchEvent) -> Self {
        Self {
            key: e.key.clone(),
            is_delete: e.is_delete,
            value: e.value.clone(),
            create_revision: e.create_revision,
            version: e.version,
        }
    }
}

impl std::fmt::Display for EventSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_delete {
            write!(f, "delete {:?}", self.key)
        } else {
            write!(f, "put {:?}={:?}", self.key, self.value)
        }
    }
}

pub(crate) fn show_events(events: &[EventSignature]) -> String {
    if events.is_empty() {
        return "nothing".to_string();
    }
    events.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixture::{put, session};

    #[test]
    fn a_resumed_session_covers_from_its_start_to_its_last_event_or_progress() {
        let mut s = session(
            1,
            5,
            vec![
                vec![put("r/a", "x", 6, 6, 1, None)],
                vec![put("r/b", "y", 9, 9, 1, None)],
            ],
        );
        let c = Coverage::new(&s, "r/");
        assert_eq!((c.from, c.to), (5, 9));
        assert!(c.covers(5) && c.covers(9) && !c.covers(4) && !c.covers(10));
        s.progress_revision = 12;
        assert_eq!(Coverage::new(&s, "r/").to, 12);
    }

    #[test]
    fn a_session_from_now_starts_after_its_created_revision() {
        let mut s = session(1, 0, vec![vec![put("r/a", "x", 9, 9, 1, None)]]);
        s.created_revision = 4;
        assert_eq!(Coverage::new(&s, "r/").from, 5);
        s.created_revision = 0;
        assert_eq!(
            Coverage::new(&s, "r/").from,
            9,
            "unknown start: nothing before the first event"
        );
        let empty = session(1, 0, vec![]);
        let c = Coverage::new(&empty, "r/");
        assert!(!c.covers(1) && !c.covers(i64::MAX - 1));
    }

    #[test]
    fn events_outside_the_prefix_are_not_counted_but_still_extend_the_range() {
        let s = session(
            1,
            1,
            vec![
                vec![put("r/a", "x", 2, 2, 1, None), put("l/z", "y", 2, 2, 1, None)],
                vec![put("l/z", "w", 3, 2, 2, None)],
            ],
        );
        let c = Coverage::new(&s, "r/");
        assert_eq!(c.signature(2).len(), 1);
        assert!(c.signature(3).is_empty());
        assert_eq!(c.to, 3);
    }
}
