//! Linearizability of the registers, key by key.
//!
//! ```text
//!  Completed ops ─► by_key ─► per key: impossible observations? ─yes─► Invalid (no search)
//!                                          │ no
//!                                          ▼
//!                              drop unknown ops nobody can observe
//!                                          ▼
//!                              search (Wing & Gong + Lowe's memo) ─► Valid / Invalid / Unknown
//! ```
//!
//! The deadline is global. So that one hard key cannot keep the others from being
//! looked at, a first pass gives each key an equal share of the time left; keys that
//! ran out of their share get a second pass with all that remains. Keys still not
//! decided at the deadline make the verdict `Unknown` (unless another key was shown
//! not linearizable): never `Valid` on a search that did not finish.

use std::collections::HashSet;
use std::time::Instant;

use super::register_model::{ABSENT, KeyHistory, Step, Value, by_key};
use super::search::{Frontier, Interval, Outcome, search};
use super::{CheckResult, Findings, describe, show};
use crate::history::{Completed, Op};

pub const NAME: &str = "linearizable";

/// How many concurrent operations an anomaly lists (the ops field and the text).
const MAX_LISTED: usize = 32;
const MAX_DESCRIBED: usize = 6;

/// Checks that every key's reads, writes and compare-and-swaps are linearizable.
/// Serializable reads, unknown reads and failed operations are not considered.
pub fn check(history: &[Completed], deadline: Instant) -> CheckResult {
    let started = Instant::now();
    let mut findings = Findings::default();
    let mut ops_checked = 0;
    let keys = by_key(history);

    let mut second_pass: Vec<(&String, &KeyHistory)> = Vec::new();
    for (n, (key, k)) in keys.iter().enumerate() {
        let now = Instant::now();
        let keys_left = u32::try_from(keys.len() - n).unwrap_or(u32::MAX);
        let share = deadline.saturating_duration_since(now) / keys_left;
        match check_key(history, key, k, now + share, &mut findings) {
            Some(checked) => ops_checked += checked,
            None => second_pass.push((key, k)),
        }
    }
    let mut undecided: Vec<String> = Vec::new();
    for (key, k) in second_pass {
        match check_key(history, key, k, deadline, &mut findings) {
            Some(checked) => ops_checked += checked,
            None => undecided.push(format!("{key:?} ({} operations)", k.ops.len())),
        }
    }
    if !undecided.is_empty() {
        let description = format!(
            "the search did not finish before the deadline; keys left undecided: {}",
            undecided.join(", ")
        );
        findings.undecided("deadline", Vec::new(), description);
    }
    findings.finish(NAME, ops_checked, started)
}

/// Checks one key; `None` if its search did not finish by `deadline`, else how many
/// acknowledged operations were checked (unknown ones are weighed, but alone they
/// cannot show anything wrong).
fn check_key(
    history: &[Completed],
    key: &str,
    k: &KeyHistory,
    deadline: Instant,
    findings: &mut Findings,
) -> Option<usize> {
    let acknowledged = k.ops.iter().filter(|o| o.interval.return_ns.is_some()).count();
    if report_impossible_observations(history, key, k, findings) {
        return Some(acknowledged);
    }
    let kept = observable_ops(k);
    let intervals: Vec<Interval> = kept.iter().map(|&i| k.ops[i].interval).collect();
    let step = |state: &Value, i: usize| k.ops[kept[i]].step.apply(*state);
    match search(&intervals, ABSENT, step, deadline) {
        Outcome::Linearizable => Some(acknowledged),
        Outcome::NotLinearizable(frontier) => {
            report_frontier(history, key, k, &kept, &frontier, findings);
            Some(acknowledged)
        }
        Outcome::TimedOut => None,
    }
}

/// Reads (and successful compare-and-swaps) of a value that no operation which may
/// have happened ever wrote: no search needed, and a clearer message than one.
/// Returns whether any was found.
fn report_impossible_observations(history: &[Completed], key: &str, k: &KeyHistory, findings: &mut Findings) -> bool {
    let written: HashSet<Value> = k
        .ops
        .iter()
        .filter_map(|o| match o.step {
            Step::Write(v) | Step::CasSucceeded { to: v, .. } | Step::CasUnknown { to: v, .. } => Some(v),
            _ => None,
        })
        .collect();
    let mut found = false;
    for o in &k.ops {
        let observed = match o.step {
            Step::Read(v) | Step::CasSucceeded { from: v, .. } if v != ABSENT => v,
            _ => continue,
        };
        if written.contains(&observed) {
            continue;
        }
        found = true;
        let value = k.value(observed);
        let failed: Vec<usize> = k
            .failed
            .iter()
            .filter(|&&p| written_value(&history[p].op) == value)
            .map(|&p| history[p].index)
            .collect();
        let why = if failed.is_empty() {
            "no operation ever wrote it".to_string()
        } else {
            format!(
                "only a failed operation wrote it (#{})",
                failed.iter().map(usize::to_string).collect::<Vec<_>>().join(", #")
            )
        };
        let what = match o.step {
            Step::Read(_) => format!("read of {key:?} returned {}", show(value)),
            _ => format!("cas of {key:?} from {} succeeded", show(value)),
        };
        let mut ops = vec![history[o.position].index];
        ops.extend(failed);
        findings.flag(
            "unwritten-value",
            ops,
            format!("{what}, but {why}: {}", describe(&history[o.position])),
        );
    }
    found
}

fn written_value(op: &Op) -> Option<&str> {
    match op {
        Op::Write { value, .. } => Some(value),
        Op::Cas { to, .. } => Some(to),
        _ => None,
    }
}

/// Positions in `k.ops` the search needs. An operation of unknown outcome whose
/// written value nobody observed can always be placed after everything else (where
/// it changes nothing anyone saw), so leaving it out changes no answer — as long as
/// no operation observes "the register does not hold x" (an ok cas whose compare
/// failed, or an ok cas of unknown outcome), which such a write could explain.
/// Leaving them out matters: each one left in is tried at every step of the search.
fn observable_ops(k: &KeyHistory) -> Vec<usize> {
    let observes_absence = k.ops.iter().any(|o| {
        matches!(o.step, Step::CasRejected { .. })
            || matches!(o.step, Step::CasUnknown { .. }) && o.interval.return_ns.is_some()
    });
    if observes_absence {
        return (0..k.ops.len()).collect();
    }
    let observed: HashSet<Value> = k
        .ops
        .iter()
        .filter_map(|o| match o.step {
            Step::Read(v) => Some(v),
            Step::CasSucceeded { from, .. } | Step::CasUnknown { from, .. } => Some(from),
            _ => None,
        })
        .collect();
    (0..k.ops.len())
        .filter(|&i| {
            let o = &k.ops[i];
            let unknown = o.interval.return_ns.is_none();
            match o.step {
                Step::Write(v) | Step::CasUnknown { to: v, .. } if unknown => observed.contains(&v),
                _ => true,
            }
        })
        .collect()
}

fn report_frontier(
    history: &[Completed],
    key: &str,
    k: &KeyHistory,
    kept: &[usize],
    frontier: &Frontier<Value>,
    findings: &mut Findings,
) {
    let stuck = &k.ops[kept[frontier.stuck]];
    let what = match stuck.step {
        Step::Read(v) => format!(
            "read of {key:?} returned {} but no linearization allows it",
            show(k.value(v))
        ),
        Step::CasSucceeded { from, to } => format!(
            "cas of {key:?} from {} to {} succeeded but no linearization allows it",
            show(k.value(from)),
            show(k.value(to))
        ),
        Step::CasRejected { from } => format!(
            "cas of {key:?} from {} failed its compare but no linearization has {key:?} hold anything else then",
            show(k.value(from))
        ),
        _ => format!(
            "{} cannot be placed in any linearization",
            describe(&history[stuck.position])
        ),
    };
    // Everything whose interval overlaps the stuck op's: the operations that could
    // have taken effect just before or after it.
    let (call, ret) = (stuck.interval.call_ns, stuck.interval.return_ns.unwrap_or(u64::MAX));
    let mut pending: Vec<usize> = kept
        .iter()
        .map(|&i| &k.ops[i])
        .filter(|o| o.position != stuck.position)
        .filter(|o| o.interval.call_ns <= ret && o.interval.return_ns.unwrap_or(u64::MAX) >= call)
        .map(|o| o.position)
        .collect();
    pending.sort_unstable();
    let concurrent = if pending.is_empty() {
        "no operation was concurrent with it".to_string()
    } else {
        let listed: Vec<String> = pending
            .iter()
            .take(MAX_DESCRIBED)
            .map(|&p| describe(&history[p]))
            .collect();
        let more = pending.len().saturating_sub(MAX_DESCRIBED);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("operations concurrent with it: {}{more}", listed.join("; "))
    };
    let mut ops = vec![history[stuck.position].index];
    ops.extend(pending.iter().take(MAX_LISTED).map(|&p| history[p].index));
    findings.flag(
        "not-linearizable",
        ops,
        format!(
            "{what} ({}); the longest linearizable prefix places {} of {} operations on {key:?} and leaves it holding {}; {concurrent}",
            describe(&history[stuck.position]),
            frontier.prefix_len,
            kept.len(),
            show(k.value(frontier.state)),
        ),
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::check::Verdict;
    use crate::check::fixture::{History, cas, read, sread, write};

    fn run(h: &History) -> CheckResult {
        check(&h.ops, Instant::now() + Duration::from_secs(10))
    }

    #[test]
    fn a_stale_read_is_not_linearizable_and_the_report_names_it() {
        let mut h = History::new();
        h.ok(1, write("r3", "w11"), 0, 10, Some(2));
        h.ok(1, write("r3", "w12"), 20, 30, Some(3));
        let later = h.ok(2, write("r3", "w13"), 40, 50, Some(4));
        let stale = h.ok(3, read("r3", Some("w12")), 60, 70, Some(4));
        let r = run(&h);
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        let a = &r.anomalies[0];
        assert_eq!(a.kind, "not-linearizable");
        assert_eq!(a.ops[0], stale, "{a:?}");
        assert!(
            a.description
                .contains("read of \"r3\" returned \"w12\" but no linearization allows it"),
            "{a:?}"
        );
        assert!(a.description.contains("leaves it holding \"w13\""), "{a:?}");
        assert!(
            !a.ops.contains(&later),
            "the write completed before the read began: not concurrent"
        );
    }

    #[test]
    fn the_report_lists_operations_concurrent_with_the_failure() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        let concurrent = h.ok(2, write("k", "b"), 15, 100, Some(3));
        let stale = h.ok(3, read("k", Some("x")), 20, 30, Some(3));
        // "x" was written, but only after the read returned.
        h.ok(1, write("k", "x"), 40, 50, Some(4));
        let r = run(&h);
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        assert_eq!(r.anomalies[0].ops[0], stale);
        assert!(r.anomalies[0].ops.contains(&concurrent), "{:?}", r.anomalies[0]);
    }

    #[test]
    fn a_read_of_a_value_only_a_failed_write_wrote_is_reported_without_search() {
        let mut h = History::new();
        let failed = h.fail(1, write("k", "ghost"), 0, 10);
        let r_ = h.ok(2, read("k", Some("ghost")), 20, 30, Some(1));
        let r = run(&h);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].kind, "unwritten-value");
        assert_eq!(r.anomalies[0].ops, vec![r_, failed]);
    }

    #[test]
    fn concurrent_writes_and_reads_in_either_order_are_fine() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 100, Some(2));
        h.ok(2, write("k", "b"), 0, 100, Some(3));
        h.ok(3, read("k", Some("b")), 10, 20, Some(3));
        h.ok(3, read("k", Some("a")), 30, 40, Some(3));
        h.ok(3, read("k", Some("a")), 200, 210, Some(3));
        let r = run(&h);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.ops_checked, 5);
    }

    #[test]
    fn reads_see_nothing_before_the_first_write() {
        let mut h = History::new();
        h.ok(1, read("k", None), 0, 5, Some(1));
        h.ok(1, write("k", "a"), 10, 20, Some(2));
        h.ok(1, read("k", None), 30, 40, Some(2));
        assert_eq!(
            run(&h).verdict,
            Verdict::Invalid,
            "a read after the write cannot see the key absent"
        );
    }

    #[test]
    fn an_info_write_may_have_taken_effect_even_much_later() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.info(2, write("k", "b"), 20);
        h.ok(3, read("k", Some("a")), 1000, 1010, Some(2));
        h.ok(3, read("k", Some("b")), 2000, 2010, Some(3));
        h.ok(3, read("k", Some("b")), 3000, 3010, Some(3));
        assert_eq!(run(&h).verdict, Verdict::Valid);
    }

    #[test]
    fn an_info_write_may_never_have_taken_effect() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.info(2, write("k", "b"), 20);
        h.ok(3, read("k", Some("a")), 1000, 1010, Some(2));
        assert_eq!(run(&h).verdict, Verdict::Valid);
    }

    #[test]
    fn an_info_write_cannot_take_effect_before_its_invocation_nor_twice() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.ok(3, read("k", Some("b")), 20, 30, Some(2));
        h.info(2, write("k", "b"), 40);
        assert_eq!(
            run(&h).verdict,
            Verdict::Invalid,
            "read before the info write was invoked"
        );

        let mut h = History::new();
        h.info(2, write("k", "b"), 0);
        h.ok(3, read("k", Some("b")), 20, 30, Some(2));
        h.ok(1, write("k", "a"), 40, 50, Some(3));
        h.ok(3, read("k", Some("b")), 60, 70, Some(3));
        assert_eq!(
            run(&h).verdict,
            Verdict::Invalid,
            "it took effect once, then was overwritten"
        );
    }

    #[test]
    fn serializable_reads_and_failed_writes_are_not_held_to_linearizability() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.ok(1, write("k", "b"), 20, 30, Some(3));
        h.ok(2, sread("k", Some("a")), 40, 50, Some(2));
        h.fail(3, write("k", "c"), 60, 70);
        h.ok(2, read("k", Some("b")), 80, 90, Some(3));
        assert_eq!(run(&h).verdict, Verdict::Valid);
    }

    #[test]
    fn cas_must_find_its_value_and_a_failed_compare_must_not() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.ok(2, cas("k", "a", "b", Some(true)), 20, 30, Some(3));
        h.ok(2, cas("k", "a", "c", Some(false)), 40, 50, Some(3));
        h.ok(3, read("k", Some("b")), 60, 70, Some(3));
        assert_eq!(run(&h).verdict, Verdict::Valid);

        let mut bad = History::new();
        bad.ok(1, write("k", "a"), 0, 10, Some(2));
        bad.ok(2, cas("k", "a", "c", Some(false)), 20, 30, Some(2));
        let r = run(&bad);
        assert_eq!(r.verdict, Verdict::Invalid, "the compare should have held");
        assert!(
            r.anomalies[0].description.contains("failed its compare"),
            "{:?}",
            r.anomalies
        );

        let mut bad = History::new();
        bad.ok(1, write("k", "a"), 0, 10, Some(2));
        bad.ok(1, write("k", "b"), 20, 30, Some(3));
        bad.ok(2, cas("k", "a", "c", Some(true)), 40, 50, Some(4));
        assert_eq!(run(&bad).verdict, Verdict::Invalid, "the compare cannot have held");
    }

    #[test]
    fn an_info_cas_that_swapped_explains_a_later_read() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.info(2, cas("k", "a", "b", None), 20);
        h.ok(3, read("k", Some("b")), 100, 110, Some(3));
        assert_eq!(run(&h).verdict, Verdict::Valid);
        // But it cannot swap from a value the register no longer held.
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.ok(1, write("k", "z"), 15, 18, Some(3));
        h.info(2, cas("k", "a", "b", None), 20);
        h.ok(3, read("k", Some("b")), 100, 110, Some(4));
        assert_eq!(run(&h).verdict, Verdict::Invalid);
    }

    #[test]
    fn unobserved_unknown_writes_are_left_out_but_a_failed_compare_keeps_them() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.info(2, write("k", "b"), 20);
        h.info(3, write("k", "c"), 20);
        h.ok(4, read("k", Some("a")), 30, 40, Some(2));
        let keys = by_key(&h.ops);
        assert_eq!(observable_ops(&keys["k"]), vec![0, 3]);

        // Only the unknown write of "b" explains why the compare on "a" failed.
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.info(2, write("k", "b"), 20);
        h.ok(4, cas("k", "a", "x", Some(false)), 30, 40, Some(3));
        let keys = by_key(&h.ops);
        assert_eq!(observable_ops(&keys["k"]), vec![0, 1, 2]);
        assert_eq!(run(&h).verdict, Verdict::Valid);
    }

    #[test]
    fn keys_are_checked_independently_and_each_failure_names_its_key() {
        let mut h = History::new();
        h.ok(1, write("x", "1"), 0, 10, Some(2));
        h.ok(1, write("y", "1"), 0, 10, Some(3));
        h.ok(1, write("y", "2"), 20, 30, Some(4));
        h.ok(2, read("y", Some("1")), 40, 50, Some(4));
        h.ok(2, read("x", Some("1")), 40, 50, Some(4));
        let r = run(&h);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies.len(), 1);
        assert!(r.anomalies[0].description.contains("\"y\""), "{:?}", r.anomalies);
    }

    #[test]
    fn memoisation_keeps_a_factorial_search_small() {
        // 12 concurrent writes, then two reads in a row that disagree. Without the memo
        // the search tries 12! orders; with it, 12 x 2^11 (set, state) pairs.
        let mut h = History::new();
        for p in 0..12 {
            h.ok(p, write("k", &format!("v{p}")), 0, 100, Some(2 + p as i64));
        }
        h.ok(20, read("k", Some("v0")), 200, 210, Some(13));
        h.ok(20, read("k", Some("v1")), 220, 230, Some(13));
        let started = Instant::now();
        let r = check(&h.ops, started + Duration::from_secs(20));
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn a_hard_key_does_not_keep_a_broken_one_from_being_found() {
        let mut h = History::new();
        // "a": 40 concurrent writes and two reads that disagree: hopeless in time.
        for p in 0..40 {
            h.ok(p, write("a", &format!("v{p}")), 0, 100, Some(2 + p as i64));
        }
        h.ok(50, read("a", Some("v0")), 200, 210, Some(42));
        h.ok(50, read("a", Some("v1")), 220, 230, Some(42));
        // "b": a plain stale read, after "a" in key order.
        h.ok(60, write("b", "1"), 0, 10, Some(43));
        h.ok(60, write("b", "2"), 20, 30, Some(44));
        let stale = h.ok(61, read("b", Some("1")), 40, 50, Some(44));
        let r = check(&h.ops, Instant::now() + Duration::from_millis(300));
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        assert_eq!(r.bugs().next().unwrap().ops[0], stale);
        assert!(
            r.anomalies
                .iter()
                .any(|a| a.kind.ends_with("deadline") && a.description.contains("\"a\"")),
            "{r:?}"
        );
    }

    #[test]
    fn a_passed_deadline_is_unknown_and_names_the_keys() {
        let mut h = History::new();
        h.ok(1, write("x", "1"), 0, 10, Some(2));
        h.ok(1, read("x", Some("1")), 20, 30, Some(2));
        let r = check(&h.ops, Instant::now());
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.anomalies[0].kind.starts_with(crate::check::UNDECIDED));
        assert!(r.anomalies[0].description.contains("\"x\""));
    }
}
