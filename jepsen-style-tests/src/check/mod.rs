//! Checkers: pure functions from a recorded history to a verdict. No I/O, no async, no
//! clock except to measure their own running time and honour a deadline.
//!
//! ```text
//!  history (events) ──pair()──► Completed ops ─┬─► linearizable  (registers, per key)
//!                                              ├─► revisions     (etcd's revision rules)
//!  watch sessions ─────────────────────────────┼─► watch         (ordered, unique, atomic, reliable, resumable, prev_kv)
//!                                              ├─► lease         (keys live while their lease lives)
//!  final lists ────────────────────────────────┴─► append        (list-append, a small Elle)
//! ```
//!
//! Every checker answers a [`CheckResult`]:
//! - `Valid`: it examined everything it was given and found nothing wrong;
//! - `Invalid`: at least one anomaly, each naming the history indices involved;
//! - `Unknown`: nothing wrong found, but it could not finish (deadline), the input
//!   broke an assumption it relies on, or it had nothing to check. The reason is then
//!   in `anomalies`, with a kind starting with [`UNDECIDED`]. A checker never says
//!   `Valid` when it did not finish.
//!
//! A checker that checked nothing proves nothing: `ops_checked` counts what it really
//! examined (acknowledged operations, or delivered events for `watch`), and when that
//! is zero the verdict is `Unknown` with a [`NOTHING_CHECKED`] reason naming the
//! checker, never `Valid`. [`Findings::finish`] applies the rule for every checker, so
//! a run whose workload produced nothing for a checker it enabled fails, saying which.
//!
//! Checkers are conservative: `info` operations may or may not have happened, and an
//! anomaly is reported only when no interpretation of the history explains it.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::history::{Completed, Consistency, Kind, Op};

pub mod append;
mod append_graph;
mod append_observation;
mod bitset;
pub mod lease;
mod lease_life;
pub mod linearizable;
mod register_model;
mod revision_clock;
pub mod revisions;
mod search;
pub mod watch;
mod watch_coverage;
mod watch_delivery;
mod watch_prev_kv;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod selftest;
#[cfg(test)]
mod simulation;

/// Prefix of the kinds that explain an `Unknown` verdict rather than report a bug.
pub const UNDECIDED: &str = "undecided-";

/// The kind (after [`UNDECIDED`]) of the reason a checker that checked nothing gives.
pub const NOTHING_CHECKED: &str = "nothing-checked";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// A short stable name, e.g. `stale-read`, `watch-gap`, `shared-revision`.
    pub kind: String,
    pub description: String,
    /// History indices (`Completed::index`) of the operations involved.
    pub ops: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub verdict: Verdict,
    pub anomalies: Vec<Anomaly>,
    pub ops_checked: usize,
    pub elapsed: Duration,
}

impl CheckResult {
    /// The anomalies that report a bug (not the reasons for an `Unknown`).
    pub fn bugs(&self) -> impl Iterator<Item = &Anomaly> {
        self.anomalies.iter().filter(|a| !a.kind.starts_with(UNDECIDED))
    }
}

/// What a checker found so far; `finish` turns it into a verdict, so that the rule
/// "anomalies ⇒ Invalid, else undecided ⇒ Unknown, else Valid" lives in one place.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    anomalies: Vec<Anomaly>,
    undecided: Vec<Anomaly>,
}

impl Findings {
    pub(crate) fn flag(&mut self, kind: &str, ops: Vec<usize>, description: String) {
        debug_assert!(!kind.starts_with(UNDECIDED), "use undecided() for {kind}");
        self.anomalies.push(Anomaly {
            kind: kind.to_string(),
            description,
            ops,
        });
    }

    pub(crate) fn undecided(&mut self, kind: &str, ops: Vec<usize>, description: String) {
        self.undecided.push(Anomaly {
            kind: format!("{UNDECIDED}{kind}"),
            description,
            ops,
        });
    }

    /// The verdict. Zero `ops_checked` with no anomaly is `Unknown`: the checker saw
    /// nothing it could have failed on.
    pub(crate) fn finish(mut self, name: &'static str, ops_checked: usize, started: Instant) -> CheckResult {
        if ops_checked == 0 && self.anomalies.is_empty() {
            self.undecided(
                NOTHING_CHECKED,
                Vec::new(),
                format!("the {name} checker checked nothing: no acknowledged operation to check, so it cannot pass"),
            );
        }
        let verdict = if !self.anomalies.is_empty() {
            Verdict::Invalid
        } else if !self.undecided.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Valid
        };
        let mut anomalies = self.anomalies;
        anomalies.extend(self.undecided);
        CheckResult {
            name,
            verdict,
            anomalies,
            ops_checked,
            elapsed: started.elapsed(),
        }
    }
}

/// A readable name for an operation in anomaly descriptions, e.g.
/// `write "p3-7" to "r/1" (#120)`.
pub(crate) fn describe(c: &Completed) -> String {
    let what = match &c.op {
        Op::Read {
            key,
            value,
            consistency,
        } => {
            let how = match consistency {
                Consistency::Linearizable => "linearizable",
                Consistency::Serializable => "serializable",
            };
            if c.kind == Kind::Ok {
                format!("{how} read of {key:?} returning {}", show(value.as_deref()))
            } else {
                format!("{how} read of {key:?}")
            }
        }
        Op::Write { key, value } => format!("write of {value:?} to {key:?}"),
        Op::Cas {
            key,
            from,
            to,
            succeeded,
        } => {
            let outcome = match succeeded {
                Some(true) => "succeeded",
                Some(false) => "failed",
                None => "outcome unknown",
            };
            format!("cas of {key:?} from {from:?} to {to:?} ({outcome})")
        }
        Op::Append { keys, element, .. } => format!("append of {element} to {keys:?}"),
        Op::LeaseGrant { lease, key, .. } => format!("grant of lease {lease} for {key:?}"),
        Op::LeaseKeepAlive { lease, ttl_s } => match ttl_s {
            Some(ttl) => format!("keepalive of lease {lease} answering ttl {ttl} s"),
            None => format!("keepalive of lease {lease}"),
        },
        Op::LeaseRevoke { lease } => format!("revoke of lease {lease}"),
        Op::LeaseRead { key, present, .. } => match present {
            Some(true) => format!("read of {key:?} finding it present"),
            Some(false) => format!("read of {key:?} finding it absent"),
            None => format!("read of {key:?}"),
        },
    };
    let kind = match c.kind {
        Kind::Info => " [info]",
        Kind::Fail => " [fail]",
        _ => "",
    };
    format!("{what}{kind} (#{})", c.index)
}

/// A register value as text: quoted, or `absent`.
pub(crate) fn show(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "absent".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomalies_make_a_result_invalid_even_when_something_was_undecided() {
        let mut f = Findings::default();
        f.undecided("deadline", vec![], "ran out of time".into());
        f.flag("stale-read", vec![3], "old value".into());
        let r = f.finish("t", 1, Instant::now());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.bugs().count(), 1);
        assert_eq!(r.anomalies.len(), 2);
    }

    #[test]
    fn undecided_alone_is_unknown_never_valid() {
        let mut f = Findings::default();
        f.undecided("deadline", vec![], "ran out of time".into());
        let r = f.finish("t", 1, Instant::now());
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.anomalies[0].kind.starts_with(UNDECIDED));
        assert_eq!(
            Findings::default().finish("t", 1, Instant::now()).verdict,
            Verdict::Valid
        );
    }

    #[test]
    fn a_checker_that_checked_nothing_is_not_valid_and_says_which_and_why() {
        let r = Findings::default().finish("watch", 0, Instant::now());
        assert_eq!(r.verdict, Verdict::Unknown);
        assert_eq!(r.anomalies.len(), 1);
        assert_eq!(r.anomalies[0].kind, format!("{UNDECIDED}{NOTHING_CHECKED}"));
        assert!(
            r.anomalies[0].description.contains("the watch checker checked nothing")
                && r.anomalies[0]
                    .description
                    .contains("no acknowledged operation to check"),
            "{}",
            r.anomalies[0].description
        );
    }

    /// Every history checker, on the same history (the final lists empty).
    fn every_checker(history: &[Completed], sessions: &[crate::history::WatchSession]) -> Vec<CheckResult> {
        let deadline = Instant::now() + Duration::from_secs(10);
        vec![
            linearizable::check(history, deadline),
            revisions::check(history),
            watch::check(sessions, history, "r/"),
            lease::check(history, sessions),
            append::check(history, &Default::default()),
        ]
    }

    #[test]
    fn an_empty_history_fails_every_checker() {
        for r in every_checker(&[], &[]) {
            assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
            assert_eq!(r.ops_checked, 0, "{r:?}");
            let reason = &r.anomalies[0];
            assert_eq!(reason.kind, format!("{UNDECIDED}{NOTHING_CHECKED}"), "{r:?}");
            assert!(reason.description.contains(r.name), "{r:?}");
        }
    }

    #[test]
    fn a_history_of_only_unknown_outcomes_fails_every_checker() {
        use fixture::{History, append, grant, put, read, session, write};
        let mut h = History::new();
        h.info(1, write("r/a", "1"), 0);
        h.info(2, read("r/a", None), 5);
        h.info(3, append(&["a/0", "a/1"], 1, None), 10);
        h.info(4, grant(0, 3, "l/0"), 20);
        let nothing_delivered = session(1, 1, vec![]);
        for r in every_checker(&h.ops, &[nothing_delivered]) {
            assert_ne!(r.verdict, Verdict::Valid, "{r:?}");
            assert_eq!(r.ops_checked, 0, "{r:?}");
        }
        // The same history with one acknowledged write is checked, and valid.
        h.ok(5, write("r/b", "2"), 30, 40, Some(2));
        let delivered = session(2, 1, vec![vec![put("r/b", "2", 2, 2, 1, None)]]);
        let r = linearizable::check(&h.ops, Instant::now() + Duration::from_secs(10));
        assert_eq!((r.verdict, r.ops_checked), (Verdict::Valid, 1), "{r:?}");
        let r = watch::check(&[delivered], &h.ops, "r/");
        assert_eq!((r.verdict, r.ops_checked), (Verdict::Valid, 1), "{r:?}");
    }

    #[test]
    fn an_anomaly_found_without_checked_operations_stays_invalid() {
        let mut f = Findings::default();
        f.flag("unavailable", vec![], "the healed cluster does not answer".into());
        let r = f.finish("durability", 0, Instant::now());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies.len(), 1, "{:?}", r.anomalies);
    }

    #[test]
    fn results_serialise_for_the_report() {
        let mut f = Findings::default();
        f.flag("watch-gap", vec![1, 2], "missing".into());
        let json = serde_json::to_string(&f.finish("watch", 2, Instant::now())).unwrap();
        assert!(
            json.contains("\"verdict\":\"invalid\"") && json.contains("\"kind\":\"watch-gap\""),
            "{json}"
        );
    }
}
