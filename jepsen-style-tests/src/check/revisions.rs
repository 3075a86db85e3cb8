//! etcd's revision rules, from the response headers the history recorded:
//!
//! - every committed write transaction gets a revision of its own: an `ok` write, and an
//!   `ok` cas whose compare held, carry a revision, and no two writes share one;
//! - revisions follow real time: if A completed before B was invoked, then
//!   revision(A) <= revision(B), and strictly < when both wrote.
//!
//! The second rule is checked in O(n log n): operations sorted by completion, swept in
//! invocation order while keeping the highest revision (and the highest written one)
//! among those already completed. Each operation that breaks it is reported once, with
//! the earlier operation that shows it.
//!
//! Taking part: `ok` writes, `ok` cas, `ok` linearizable reads, and `ok` appends (one
//! write transaction each, so they count as writes when they carry a revision).
//! Serializable reads may be stale, `info` and `fail` ops carry no header, and lease
//! operations are the lease checker's.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{CheckResult, Findings, describe};
use crate::history::{Completed, Consistency, Kind, Op};

pub const NAME: &str = "revisions";

#[derive(Debug, Clone, Copy)]
struct Revisioned {
    position: usize,
    invoke_ns: u64,
    complete_ns: u64,
    revision: i64,
    wrote: bool,
}

/// Checks revision uniqueness and real-time order (see the module doc).
pub fn check(history: &[Completed]) -> CheckResult {
    let started = Instant::now();
    let mut findings = Findings::default();
    let ops = collect(history, &mut findings);
    check_unique(history, &ops, &mut findings);
    check_real_time(history, &ops, &mut findings);
    findings.finish(NAME, ops.len(), started)
}

fn collect(history: &[Completed], findings: &mut Findings) -> Vec<Revisioned> {
    let mut ops = Vec::new();
    for (position, c) in history.iter().enumerate() {
        if c.kind != Kind::Ok {
            continue;
        }
        let (must_write, wrote) = match &c.op {
            Op::Write { .. } => (true, true),
            Op::Cas {
                succeeded: Some(true), ..
            } => (true, true),
            // A cas whose outcome was not recorded may or may not have written.
            Op::Cas { .. } => (false, false),
            Op::Read {
                consistency: Consistency::Linearizable,
                ..
            } => (false, false),
            Op::Append { .. } => (false, true),
            _ => continue,
        };
        let revision = c.revision.filter(|&r| r > 0);
        let (Some(revision), Some(complete_ns)) = (revision, c.complete_ns) else {
            if must_write {
                findings.flag(
                    "missing-revision",
                    vec![c.index],
                    format!(
                        "{} committed but its response carried no revision ({:?})",
                        describe(c),
                        c.revision
                    ),
                );
            }
            continue;
        };
        ops.push(Revisioned {
            position,
            invoke_ns: c.invoke_ns,
            complete_ns,
            revision,
            wrote,
        });
    }
    ops
}

/// No two write transactions share a revision.
fn check_unique(history: &[Completed], ops: &[Revisioned], findings: &mut Findings) {
    let mut by_revision: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.wrote) {
        by_revision.entry(o.revision).or_default().push(o.position);
    }
    for (revision, positions) in by_revision.into_iter().filter(|(_, p)| p.len() > 1) {
        let names: Vec<String> = positions.iter().map(|&p| describe(&history[p])).collect();
        findings.flag(
            "shared-revision",
            positions.iter().map(|&p| history[p].index).collect(),
            format!(
                "{} writes share revision {revision}: {}",
                positions.len(),
                names.join("; ")
            ),
        );
    }
}

/// Highest revision seen so far, and which op carried it.
#[derive(Debug, Clone, Copy, Default)]
struct Highest(Option<(i64, usize)>);

impl Highest {
    fn offer(&mut self, revision: i64, position: usize) {
        if self.0.is_none_or(|(r, _)| revision > r) {
            self.0 = Some((revision, position));
        }
    }
}

fn check_real_time(history: &[Completed], ops: &[Revisioned], findings: &mut Findings) {
    let mut by_completion: Vec<&Revisioned> = ops.iter().collect();
    by_completion.sort_by_key(|o| (o.complete_ns, o.position));
    let mut by_invocation: Vec<&Revisioned> = ops.iter().collect();
    by_invocation.sort_by_key(|o| (o.invoke_ns, o.position));

    let (mut any, mut written) = (Highest::default(), Highest::default());
    let mut done = 0;
    for b in by_invocation {
        // Everything that completed strictly before b was invoked.
        while done < by_completion.len() && by_completion[done].complete_ns < b.invoke_ns {
            let a = by_completion[done];
            any.offer(a.revision, a.position);
            if a.wrote {
                written.offer(a.revision, a.position);
            }
            done += 1;
        }
        let earlier = match (any.0, written.0) {
            (Some((r, a)), _) if r > b.revision => Some((a, "a lower revision than")),
            (_, Some((r, a))) if b.wrote && r >= b.revision => Some((a, "no higher revision than")),
            _ => None,
        };
        if let Some((a, relation)) = earlier {
            let (a, b_op) = (&history[a], &history[b.position]);
            findings.flag(
                "revision-order",
                vec![a.index, b_op.index],
                format!(
                    "{} was invoked after {} completed, yet has {relation} it ({} vs {})",
                    describe(b_op),
                    describe(a),
                    b.revision,
                    a.revision.unwrap_or_default(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::fixture::{History, append, cas, read, sread, write};

    #[test]
    fn increasing_revisions_in_real_time_are_valid() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.ok(2, read("k", Some("a")), 5, 15, Some(2));
        h.ok(1, cas("k", "a", "b", Some(true)), 20, 30, Some(3));
        h.ok(2, cas("k", "a", "c", Some(false)), 40, 50, Some(3));
        h.ok(3, append(&["x", "y"], 1, Some(vec![vec![], vec![]])), 60, 70, Some(4));
        h.ok(2, read("k", Some("b")), 80, 90, Some(4));
        let r = check(&h.ops);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.ops_checked, 6);
    }

    #[test]
    fn two_writes_with_one_revision_are_flagged_with_both() {
        let mut h = History::new();
        let a = h.ok(1, write("k", "a"), 0, 10, Some(5));
        let b = h.ok(2, write("j", "b"), 0, 10, Some(5));
        let r = check(&h.ops);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(
            r.anomalies.len(),
            1,
            "concurrent, so only the uniqueness rule applies: {r:?}"
        );
        assert_eq!(r.anomalies[0].kind, "shared-revision");
        assert_eq!(r.anomalies[0].ops, vec![a, b]);
    }

    #[test]
    fn a_write_without_a_revision_is_flagged() {
        let mut h = History::new();
        let w = h.ok(1, write("k", "a"), 0, 10, None);
        let c = h.ok(1, cas("k", "a", "b", Some(true)), 20, 30, Some(0));
        h.ok(1, read("k", Some("b")), 40, 50, None);
        let r = check(&h.ops);
        let kinds: Vec<(&str, &Vec<usize>)> = r.anomalies.iter().map(|a| (a.kind.as_str(), &a.ops)).collect();
        assert_eq!(
            kinds,
            vec![("missing-revision", &vec![w]), ("missing-revision", &vec![c])]
        );
    }

    #[test]
    fn revisions_going_backwards_in_real_time_are_flagged() {
        let mut h = History::new();
        let a = h.ok(1, write("k", "a"), 0, 10, Some(7));
        let b = h.ok(2, read("k", Some("a")), 20, 30, Some(6));
        let r = check(&h.ops);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].kind, "revision-order");
        assert_eq!(r.anomalies[0].ops, vec![a, b]);
        assert!(r.anomalies[0].description.contains("(6 vs 7)"), "{:?}", r.anomalies[0]);
    }

    #[test]
    fn a_later_write_must_have_a_strictly_higher_revision_but_a_read_may_share_it() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(7));
        h.ok(2, read("k", Some("a")), 20, 30, Some(7));
        assert_eq!(check(&h.ops).verdict, Verdict::Valid);
        let b = h.ok(2, write("k", "b"), 40, 50, Some(7));
        let r = check(&h.ops);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert!(
            r.anomalies.iter().any(|a| a.kind == "revision-order" && a.ops[1] == b),
            "{r:?}"
        );
    }

    #[test]
    fn overlapping_operations_may_see_revisions_in_any_order() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 100, Some(9));
        h.ok(2, write("k", "b"), 10, 20, Some(8));
        h.ok(3, read("k", Some("b")), 50, 60, Some(8));
        // Touching (completed at the instant of invocation) counts as overlapping: this
        // read may have run just before the write of "a" at 9 completed.
        h.ok(3, read("k", Some("b")), 100, 110, Some(8));
        h.ok(4, read("k", Some("a")), 20, 120, Some(8));
        assert_eq!(check(&h.ops).verdict, Verdict::Valid);
    }

    #[test]
    fn serializable_reads_and_failed_or_unknown_ops_are_exempt() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(7));
        h.ok(2, sread("k", None), 20, 30, Some(3));
        h.fail(3, write("k", "b"), 40, 50);
        h.info(4, write("k", "c"), 60);
        let r = check(&h.ops);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.ops_checked, 1);
    }

    #[test]
    fn the_witness_is_the_highest_earlier_revision() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(3));
        let high = h.ok(2, write("k", "b"), 0, 12, Some(9));
        h.ok(3, write("k", "c"), 0, 14, Some(5));
        let b = h.ok(4, read("k", Some("b")), 20, 30, Some(8));
        let r = check(&h.ops);
        assert_eq!(r.anomalies.len(), 1);
        assert_eq!(r.anomalies[0].ops, vec![high, b]);
    }
}
