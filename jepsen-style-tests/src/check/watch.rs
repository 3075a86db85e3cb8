//! etcd's watch guarantees, from the sessions the watchers recorded and the history of
//! writes they should have seen.
//!
//! ```text
//!  each session on its own ──► ordered   mod_revision never decreases
//!                              unique    no (revision, key) twice
//!                              atomic    one revision's events in one response
//!                              resumable nothing before the start revision
//!  sessions × history ───────► reliable  every ok write in a covered range delivered, with its value
//!  sessions × sessions ──────► agreement same events wherever two sessions both covered a revision
//!                              resumable a resumed session's first event is the first revision
//!                                        at or after its start that anyone saw
//!  union of all events ──────► prev_kv   a put's prev_kv is the value of the put before it
//! ```
//!
//! Every session is assumed to watch the whole of `prefix` (events outside it are
//! ignored). A session cancelled because its start was compacted is judged like any
//! other: it covered what it delivered, and must not have delivered anything wrong.
//! A revision found missing from a session is reported once, by the first check that
//! finds it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use super::watch_coverage::Coverage;
use super::{CheckResult, Findings, watch_delivery, watch_prev_kv};
use crate::history::{Completed, WatchSession};

pub const NAME: &str = "watch";

/// (session position, revision) pairs already reported missing.
pub(crate) type Reported = HashSet<(usize, i64)>;

/// Checks the watch sessions against each other and against `history`.
/// `ops_checked` counts the events delivered.
pub fn check(sessions: &[WatchSession], history: &[Completed], prefix: &str) -> CheckResult {
    let started = Instant::now();
    let mut findings = Findings::default();
    for s in sessions {
        check_stream(s, &mut findings);
    }
    let coverage: Vec<Coverage> = sessions.iter().map(|s| Coverage::new(s, prefix)).collect();
    let mut reported = Reported::new();
    watch_delivery::check_against_history(&coverage, history, prefix, &mut reported, &mut findings);
    watch_delivery::check_resumption(&coverage, &mut reported, &mut findings);
    watch_delivery::check_agreement(&coverage, &mut reported, &mut findings);
    watch_delivery::check_values(&coverage, history, &mut findings);
    watch_prev_kv::check(&coverage, &mut findings);
    let events = sessions.iter().flat_map(|s| &s.responses).map(Vec::len).sum();
    findings.finish(NAME, events, started)
}

/// The guarantees one session must keep on its own: ordered, unique, atomic, and
/// nothing before its start revision.
fn check_stream(s: &WatchSession, findings: &mut Findings) {
    let label = format!("watch session {}", s.watcher);
    let mut previous: Option<(usize, i64)> = None;
    let mut seen: BTreeSet<(i64, &str)> = BTreeSet::new();
    let mut responses_by_revision: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
    for (response, events) in s.responses.iter().enumerate() {
        for e in events {
            let revision = e.mod_revision;
            if let Some((earlier_response, earlier)) = previous
                && revision < earlier
            {
                findings.flag(
                    "watch-reordered",
                    Vec::new(),
                    format!(
                        "{label} delivered revision {revision} ({:?}, response {response}) after revision {earlier} (response {earlier_response})",
                        e.key
                    ),
                );
            }
            previous = Some((response, revision));
            if !seen.insert((revision, &e.key)) {
                findings.flag(
                    "watch-duplicate",
                    Vec::new(),
                    format!("{label} delivered the event for {:?} at revision {revision} twice (again in response {response})", e.key),
                );
            }
            if s.start_revision > 0 && revision < s.start_revision {
                findings.flag(
                    "watch-before-start",
                    Vec::new(),
                    format!(
                        "{label} started at revision {} but delivered revision {revision} ({:?}, response {response})",
                        s.start_revision, e.key
                    ),
                );
            }
            responses_by_revision.entry(revision).or_default().insert(response);
        }
    }
    for (revision, responses) in responses_by_revision.into_iter().filter(|(_, r)| r.len() > 1) {
        findings.flag(
            "watch-split-revision",
            Vec::new(),
            format!("{label} delivered the events of revision {revision} split across responses {responses:?}: a transaction must arrive whole"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::fixture::{History, put, session, write};

    fn kinds(r: &CheckResult) -> Vec<&str> {
        r.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn a_well_behaved_session_is_valid() {
        let s = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "2", 3, 2, 2, Some("1")), put("r/b", "1", 3, 3, 1, None)],
            ],
        );
        let r = check(&[s], &[], "r/");
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.ops_checked, 3);
    }

    #[test]
    fn a_reordered_event_is_flagged() {
        let s = session(
            1,
            1,
            vec![
                vec![put("r/a", "2", 3, 2, 2, Some("1"))],
                vec![put("r/a", "1", 2, 2, 1, None)],
            ],
        );
        assert_eq!(kinds(&check(&[s], &[], "r/")), vec!["watch-reordered"]);
    }

    #[test]
    fn a_duplicate_event_is_flagged() {
        let s = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "1", 2, 2, 1, None)],
            ],
        );
        let r = check(&[s], &[], "r/");
        assert!(kinds(&r).contains(&"watch-duplicate"), "{r:?}");
    }

    #[test]
    fn a_revision_split_across_responses_is_flagged() {
        let s = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/b", "1", 2, 2, 1, None)],
            ],
        );
        assert_eq!(kinds(&check(&[s], &[], "r/")), vec!["watch-split-revision"]);
    }

    #[test]
    fn an_event_before_the_start_revision_is_flagged() {
        let s = session(
            1,
            5,
            vec![
                vec![put("r/a", "1", 4, 4, 1, None)],
                vec![put("r/a", "2", 6, 4, 2, Some("1"))],
            ],
        );
        assert_eq!(kinds(&check(&[s], &[], "r/")), vec!["watch-before-start"]);
    }

    #[test]
    fn a_compacted_session_that_delivered_nothing_is_fine() {
        let mut s = session(1, 2, vec![]);
        s.compacted = Some(10);
        let mut h = History::new();
        h.ok(1, write("r/a", "1"), 0, 10, Some(3));
        // Another session saw the write, so there is something to check.
        let seen = session(2, 1, vec![vec![put("r/a", "1", 3, 3, 1, None)]]);
        let r = check(&[s, seen], &h.ops, "r/");
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.ops_checked, 1);
    }

    #[test]
    fn sessions_that_delivered_nothing_of_nothing_written_are_not_valid() {
        let r = check(&[session(1, 1, vec![])], &[], "r/");
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(kinds(&r).contains(&"undecided-nothing-checked"), "{r:?}");
    }
}
