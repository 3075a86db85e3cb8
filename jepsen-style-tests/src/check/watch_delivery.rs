//! Whether the sessions delivered what they had to: every committed write in a range
//! they covered (reliable), the same events as every other session covering the same
//! revision (agreement), from the right place when resumed (resumable), and no value
//! that was never written.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::watch::Reported;
use super::watch_coverage::{Coverage, EventSignature, show_events};
use super::{Findings, describe};
use crate::history::{Completed, Kind, Op};

/// A committed write the history knows the revision of.
struct KnownWrite<'a> {
    position: usize,
    key: &'a str,
    value: &'a str,
}

/// Every `ok` write and successful cas under the prefix must appear, with its value,
/// in every session that covered its revision — and nothing else at that revision.
pub(crate) fn check_against_history(
    coverage: &[Coverage],
    history: &[Completed],
    prefix: &str,
    reported: &mut Reported,
    findings: &mut Findings,
) {
    let mut writes: BTreeMap<i64, Vec<KnownWrite>> = BTreeMap::new();
    for (position, c) in history.iter().enumerate() {
        let (key, value) = match (&c.op, c.kind) {
            (Op::Write { key, value }, Kind::Ok) => (key, value),
            (
                Op::Cas {
                    key,
                    to,
                    succeeded: Some(true),
                    ..
                },
                Kind::Ok,
            ) => (key, to),
            _ => continue,
        };
        if let Some(revision) = c.revision.filter(|&r| r > 0)
            && key.starts_with(prefix)
        {
            writes
                .entry(revision)
                .or_default()
                .push(KnownWrite { position, key, value });
        }
    }
    for (&revision, expected) in &writes {
        let ops: Vec<usize> = expected.iter().map(|w| history[w.position].index).collect();
        let names: Vec<String> = expected.iter().map(|w| describe(&history[w.position])).collect();
        for (si, c) in coverage.iter().enumerate().filter(|(_, c)| c.covers(revision)) {
            let delivered = c.signature(revision);
            if delivered.is_empty() {
                reported.insert((si, revision));
                findings.flag(
                    "watch-gap",
                    ops.clone(),
                    format!(
                        "{} covered revision {revision} but never delivered it: {}",
                        c.label(),
                        names.join("; ")
                    ),
                );
                continue;
            }
            let matches = delivered.len() == expected.len()
                && expected.iter().all(|w| {
                    delivered
                        .iter()
                        .any(|d| d.key == w.key && !d.is_delete && d.value == w.value)
                });
            if !matches {
                reported.insert((si, revision));
                findings.flag(
                    "watch-wrong-event",
                    ops.clone(),
                    format!(
                        "{} delivered {} at revision {revision}, but what committed there was: {}",
                        c.label(),
                        show_events(&delivered),
                        names.join("; ")
                    ),
                );
            }
        }
    }
}

/// Which sessions delivered events at each revision.
fn seen_by(coverage: &[Coverage]) -> BTreeMap<i64, Vec<usize>> {
    let mut out: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (si, c) in coverage.iter().enumerate() {
        for &revision in c.events.keys() {
            out.entry(revision).or_default().push(si);
        }
    }
    out
}

/// A session resumed at revision s must start with the first revision >= s that has
/// events: if another session saw an earlier one, this session skipped it.
pub(crate) fn check_resumption(coverage: &[Coverage], reported: &mut Reported, findings: &mut Findings) {
    let seen = seen_by(coverage);
    for (si, c) in coverage.iter().enumerate() {
        let start = c.session.start_revision;
        let Some(&first) = c.events.keys().next() else { continue };
        if start <= 0 || first <= start {
            continue;
        }
        let skipped = seen
            .range(start..first)
            .find_map(|(&r, by)| by.iter().find(|&&sj| sj != si).map(|&sj| (r, sj)));
        if let Some((revision, other)) = skipped
            && reported.insert((si, revision))
        {
            findings.flag(
                "watch-resume-gap",
                Vec::new(),
                format!(
                    "{} resumed at revision {start} and began with revision {first}, skipping revision {revision} ({}), which {} delivered",
                    c.label(),
                    show_events(&coverage[other].signature(revision)),
                    coverage[other].label(),
                ),
            );
        }
    }
}

/// Wherever two sessions both covered a revision, they delivered the same events.
pub(crate) fn check_agreement(coverage: &[Coverage], reported: &mut Reported, findings: &mut Findings) {
    for revision in seen_by(coverage).into_keys() {
        let mut groups: BTreeMap<Vec<EventSignature>, Vec<usize>> = BTreeMap::new();
        for (si, c) in coverage.iter().enumerate() {
            if c.covers(revision) && !reported.contains(&(si, revision)) {
                groups.entry(c.signature(revision)).or_default().push(si);
            }
        }
        if groups.len() < 2 {
            continue;
        }
        let (witness_events, witness) = groups
            .iter()
            .find(|(events, _)| !events.is_empty())
            .map(|(events, sessions)| (events.clone(), sessions[0]))
            .expect("two different groups: at least one is not empty");
        if let Some(silent) = groups.remove(&Vec::new()) {
            for si in silent {
                reported.insert((si, revision));
                findings.flag(
                    "watch-gap",
                    Vec::new(),
                    format!(
                        "{} covered revision {revision} but delivered nothing there, while {} delivered {}",
                        coverage[si].label(),
                        coverage[witness].label(),
                        show_events(&witness_events)
                    ),
                );
            }
        }
        if groups.len() > 1 {
            let versions: Vec<String> = groups
                .iter()
                .map(|(events, sessions)| {
                    let names: Vec<String> = sessions
                        .iter()
                        .map(|&si| coverage[si].session.watcher.to_string())
                        .collect();
                    format!("sessions {} saw {}", names.join(", "), show_events(events))
                })
                .collect();
            findings.flag(
                "watch-disagreement",
                Vec::new(),
                format!(
                    "watch sessions disagree on revision {revision}: {}",
                    versions.join("; ")
                ),
            );
        }
    }
}

/// A put on a register key must carry a value some operation that may have happened
/// wrote: not one that was never written, nor one only a failed operation wrote.
pub(crate) fn check_values(coverage: &[Coverage], history: &[Completed], findings: &mut Findings) {
    let mut possible: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut failed: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for c in history {
        let Some(key) = c.op.register_key() else { continue };
        let entry = possible.entry(key).or_default();
        let (value, wrote) = match (&c.op, c.kind) {
            (Op::Write { value, .. }, kind) => (value, kind != Kind::Fail),
            (Op::Cas { to, succeeded, .. }, kind) => (to, kind != Kind::Fail && *succeeded != Some(false)),
            _ => continue,
        };
        if wrote {
            entry.insert(value);
        } else {
            failed.entry((key, value)).or_default().push(c.index);
        }
    }
    let mut judged: BTreeSet<(&str, i64)> = BTreeSet::new();
    for c in coverage {
        for (&revision, events) in &c.events {
            for e in events.iter().filter(|e| !e.is_delete) {
                let Some(values) = possible.get(e.key.as_str()) else {
                    continue;
                };
                if values.contains(e.value.as_str()) || !judged.insert((&e.key, revision)) {
                    continue;
                }
                let failed_ops = failed
                    .get(&(e.key.as_str(), e.value.as_str()))
                    .cloned()
                    .unwrap_or_default();
                let why = if failed_ops.is_empty() {
                    "no operation wrote that value".to_string()
                } else {
                    "only failed operations wrote that value".to_string()
                };
                findings.flag(
                    "watch-phantom-value",
                    failed_ops,
                    format!(
                        "{} delivered put {:?}={:?} at revision {revision}, but {why}",
                        c.label(),
                        e.key,
                        e.value
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check::fixture::{History, cas, put, session, write};
    use crate::check::{Verdict, watch};

    fn kinds(r: &crate::check::CheckResult) -> Vec<&str> {
        r.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn every_covered_write_must_be_delivered() {
        let mut h = History::new();
        h.ok(1, write("r/a", "1"), 0, 10, Some(2));
        let lost = h.ok(1, write("r/a", "2"), 20, 30, Some(3));
        h.ok(1, write("r/a", "3"), 40, 50, Some(4));
        let s = session(
            7,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "3", 4, 2, 3, Some("2"))],
            ],
        );
        let r = watch::check(&[s], &h.ops, "r/");
        assert_eq!(kinds(&r), vec!["watch-gap"]);
        assert_eq!(r.anomalies[0].ops, vec![lost]);
        assert!(
            r.anomalies[0].description.contains("watch session 7"),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn writes_outside_the_covered_range_need_not_be_delivered() {
        let mut h = History::new();
        h.ok(1, write("r/a", "1"), 0, 10, Some(2));
        h.ok(1, write("r/a", "2"), 20, 30, Some(3));
        h.ok(1, write("r/a", "3"), 40, 50, Some(4));
        h.ok(1, write("x/other", "3"), 40, 50, Some(5));
        // Resumed at 3, and saw up to 3 only.
        let s = session(7, 3, vec![vec![put("r/a", "2", 3, 2, 2, Some("1"))]]);
        let r = watch::check(&[s], &h.ops, "r/");
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    }

    #[test]
    fn a_progress_notification_extends_what_the_session_vouched_for() {
        let mut h = History::new();
        h.ok(1, write("r/a", "1"), 0, 10, Some(2));
        let mut s = session(7, 1, vec![]);
        s.progress_revision = 2;
        assert_eq!(kinds(&watch::check(&[s], &h.ops, "r/")), vec!["watch-gap"]);
    }

    #[test]
    fn a_delivered_event_must_carry_the_written_value() {
        let mut h = History::new();
        h.ok(1, write("r/a", "1"), 0, 10, Some(2));
        h.ok(1, write("r/a", "9"), 0, 10, Some(3));
        let s = session(
            7,
            1,
            vec![
                vec![put("r/a", "9", 2, 2, 1, None)],
                vec![put("r/a", "9", 3, 2, 2, Some("9"))],
            ],
        );
        let r = watch::check(&[s], &h.ops, "r/");
        assert!(kinds(&r).contains(&"watch-wrong-event"), "{r:?}");
    }

    #[test]
    fn two_sessions_covering_a_revision_must_agree() {
        // Nothing in the history: the sessions are compared with each other only.
        let a = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "2", 3, 2, 2, Some("1"))],
                vec![put("r/a", "3", 4, 2, 3, Some("2"))],
            ],
        );
        let b = session(
            2,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "X", 3, 2, 2, Some("1"))],
            ],
        );
        let gap = session(
            3,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "3", 4, 2, 3, Some("2"))],
            ],
        );
        let r = watch::check(&[a.clone(), b], &[], "r/");
        assert_eq!(kinds(&r), vec!["watch-disagreement"]);
        let r = watch::check(&[a, gap], &[], "r/");
        assert_eq!(kinds(&r), vec!["watch-gap"]);
        assert!(
            r.anomalies[0].description.contains("watch session 3"),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn a_resumed_session_must_start_at_the_first_revision_after_its_start() {
        let first = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "2", 3, 2, 2, Some("1"))],
            ],
        );
        let resumed_ok = session(2, 3, vec![vec![put("r/a", "2", 3, 2, 2, Some("1"))]]);
        assert_eq!(
            watch::check(&[first.clone(), resumed_ok], &[], "r/").verdict,
            Verdict::Valid
        );
        let resumed_late = session(2, 2, vec![vec![put("r/a", "2", 3, 2, 2, Some("1"))]]);
        let r = watch::check(&[first, resumed_late], &[], "r/");
        assert_eq!(kinds(&r), vec!["watch-resume-gap"], "reported once, not again as a gap");
    }

    #[test]
    fn a_value_only_a_failed_write_wrote_must_not_be_delivered() {
        let mut h = History::new();
        let failed = h.fail(1, write("r/a", "ghost"), 0, 10);
        h.ok(1, cas("r/a", "x", "nope", Some(false)), 0, 10, Some(1));
        let s = session(
            1,
            1,
            vec![
                vec![put("r/a", "ghost", 2, 2, 1, None)],
                vec![put("r/a", "nope", 3, 2, 2, Some("ghost"))],
            ],
        );
        let r = watch::check(&[s], &h.ops, "r/");
        assert_eq!(kinds(&r), vec!["watch-phantom-value", "watch-phantom-value"]);
        assert_eq!(r.anomalies[0].ops, vec![failed]);
    }
}
