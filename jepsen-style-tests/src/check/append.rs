//! List-append (a simplified Elle): transactions that read some lists and append an
//! element unique to the transaction to each.
//!
//! ```text
//!  observations of each key's list: what each ok append read, what it left (read + its
//!  element: the transaction is atomic), and the final read
//!        │
//!        ├─► every list: no duplicates, no element nobody appended (or only a failed
//!        │   append), no element in a key its append did not touch, no append that
//!        │   read its own element                                  (append_observation)
//!        ├─► per key: all observations are prefixes of the longest (one order)
//!        ├─► per append: acknowledged, or seen by a read ⇒ in the final list of each of
//!        │   its keys; an unacknowledged one is in all or none (atomic)
//!        └─► dependency graph (ww, wr, rw) has no cycle: G0, G1c, G-single, G2
//!                                                                  (append_graph)
//! ```
//!
//! `final_lists` is the final read of every list (a key missing from it is an empty
//! list). An empty map means there was no final read: the checks that need it are
//! skipped, and the verdict cannot be `Valid` when acknowledged appends exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use super::append_graph::{Cycle, Dependency, DependencyGraph, DependencyKind};
use super::append_observation::{Observation, Observations, Source};
use super::{CheckResult, Findings, describe};
use crate::history::{Completed, Kind, Op};

pub const NAME: &str = "append";

/// One append transaction of the history.
pub(crate) struct Append<'a> {
    pub position: usize,
    pub kind: Kind,
    pub keys: &'a [String],
    pub element: u64,
    /// The lists read, one per key (ok appends only).
    pub read: Option<&'a [Vec<u64>]>,
}

/// The append transactions, and which one appended each element.
pub(crate) struct Transactions<'a> {
    pub history: &'a [Completed],
    pub appends: Vec<Append<'a>>,
    writers: HashMap<u64, usize>,
}

impl<'a> Transactions<'a> {
    fn new(history: &'a [Completed], findings: &mut Findings) -> Self {
        let mut appends = Vec::new();
        for (position, c) in history.iter().enumerate() {
            let Op::Append { keys, element, read } = &c.op else {
                continue;
            };
            let read = match read {
                Some(lists) if c.kind == Kind::Ok && lists.len() == keys.len() => Some(lists.as_slice()),
                Some(lists) if c.kind == Kind::Ok => {
                    let description = format!(
                        "{} read {} lists for {} keys; its reads are ignored",
                        describe(c),
                        lists.len(),
                        keys.len()
                    );
                    findings.undecided("malformed-append", vec![c.index], description);
                    None
                }
                _ => None,
            };
            appends.push(Append {
                position,
                kind: c.kind,
                keys,
                element: *element,
                read,
            });
        }
        // Elements must be unique; if not, the history cannot be judged on them (a
        // harness bug, not the store's).
        let mut writers: HashMap<u64, usize> = HashMap::new();
        for (i, a) in appends.iter().enumerate() {
            if let Some(&first) = writers.get(&a.element) {
                let ops = vec![history[appends[first].position].index, history[a.position].index];
                let description = format!(
                    "element {} was appended by two operations; the first is assumed",
                    a.element
                );
                findings.undecided("ambiguous-element", ops, description);
                continue;
            }
            writers.insert(a.element, i);
        }
        Self {
            history,
            appends,
            writers,
        }
    }

    /// The append (position in `appends`) that appended `element`.
    pub(crate) fn writer(&self, element: u64) -> Option<usize> {
        self.writers.get(&element).copied()
    }

    /// The history index of append `i`.
    pub(crate) fn index(&self, i: usize) -> usize {
        self.history[self.appends[i].position].index
    }

    pub(crate) fn describe(&self, i: usize) -> String {
        describe(&self.history[self.appends[i].position])
    }

    /// Who saw a list, in words.
    pub(crate) fn say(&self, source: Source) -> String {
        match source {
            Source::Read(i) => format!("the read of {}", self.describe(i)),
            Source::AfterAppend(i) => format!("the list left by {}", self.describe(i)),
            Source::Final => "the final read".to_string(),
        }
    }

    /// The history indices behind a list.
    pub(crate) fn ops_of(&self, source: Source) -> Vec<usize> {
        match source {
            Source::Read(i) | Source::AfterAppend(i) => vec![self.index(i)],
            Source::Final => Vec::new(),
        }
    }
}

/// Checks the list-append history against the final lists (see the module doc).
pub fn check(history: &[Completed], final_lists: &BTreeMap<String, Vec<u64>>) -> CheckResult {
    let started = Instant::now();
    let mut findings = Findings::default();
    let txns = Transactions::new(history, &mut findings);
    let has_final = !final_lists.is_empty();
    if !has_final && txns.appends.iter().any(|a| a.kind == Kind::Ok) {
        findings.undecided(
            "no-final-read",
            Vec::new(),
            "there was no final read of the lists, so acknowledged appends could not be checked for survival".into(),
        );
    }
    let observations = Observations::new(&txns, has_final.then_some(final_lists));
    observations.check_lists(&txns, &mut findings);
    let orders = observations.check_order(&txns, &mut findings);
    if has_final {
        check_survival(&txns, &observations, final_lists, &mut findings);
    }
    check_cycles(&txns, &orders, &mut findings);
    // Unacknowledged appends are judged too, but alone they prove little.
    let acknowledged = txns.appends.iter().filter(|a| a.kind == Kind::Ok).count();
    findings.finish(NAME, acknowledged, started)
}

/// Acknowledged appends, and appends a read saw, are in the final list of every key
/// they appended to; an unacknowledged one is in all or none.
fn check_survival(
    txns: &Transactions,
    observations: &Observations,
    final_lists: &BTreeMap<String, Vec<u64>>,
    findings: &mut Findings,
) {
    let seen_by_read = observations.first_readers();
    for (i, a) in txns.appends.iter().enumerate().filter(|(_, a)| a.kind != Kind::Fail) {
        let in_final = |k: &&String| final_lists.get(*k).is_some_and(|l| l.contains(&a.element));
        let (present, missing): (Vec<&String>, Vec<&String>) = a.keys.iter().partition(in_final);
        if missing.is_empty() {
            continue;
        }
        let reader = seen_by_read.get(&a.element).copied();
        let (kind, why) = if a.kind == Kind::Ok {
            ("lost-append", "was acknowledged".to_string())
        } else if let Some(r) = reader {
            ("lost-append", format!("was seen by {}", txns.describe(r)))
        } else if !present.is_empty() {
            ("non-atomic-append", format!("is in the final lists of {present:?}"))
        } else {
            continue;
        };
        let mut ops = vec![txns.index(i)];
        ops.extend(reader.map(|r| txns.index(r)));
        let description = format!(
            "{} {why} but is missing from the final lists of {missing:?}",
            txns.describe(i)
        );
        findings.flag(kind, ops, description);
    }
}

/// Builds the dependency graph from each key's order and the reads, and reports a
/// cycle for each strongly connected component.
fn check_cycles(txns: &Transactions, orders: &BTreeMap<&str, Observation>, findings: &mut Findings) {
    let key_names: Vec<&str> = orders.keys().copied().collect();
    let key_id: HashMap<&str, usize> = key_names.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    // Only appends that may have happened take part.
    let writer = |x: u64| txns.writer(x).filter(|&w| txns.appends[w].kind != Kind::Fail);
    let mut graph = DependencyGraph::new(txns.appends.len());
    for (&key, order) in orders {
        let ww = Dependency {
            kind: DependencyKind::WriteWrite,
            key: key_id[key],
        };
        let elements: Vec<u64> = order.iter().collect();
        for pair in elements.windows(2) {
            if let (Some(a), Some(b)) = (writer(pair[0]), writer(pair[1])) {
                graph.add(a, b, ww);
            }
        }
    }
    for (t, a) in txns.appends.iter().enumerate() {
        let Some(read) = a.read else { continue };
        for (key, list) in a.keys.iter().zip(read) {
            let Some(order) = orders.get(key.as_str()) else {
                continue;
            };
            let key = key_id[key.as_str()];
            if let Some(w) = list.last().and_then(|&x| writer(x)) {
                graph.add(
                    w,
                    t,
                    Dependency {
                        kind: DependencyKind::WriteRead,
                        key,
                    },
                );
            }
            let read = Observation {
                source: Source::Read(t),
                prefix: list,
                last: None,
            };
            if read.is_prefix_of(order)
                && let Some(w) = order.get(list.len()).and_then(writer)
            {
                graph.add(
                    t,
                    w,
                    Dependency {
                        kind: DependencyKind::ReadWrite,
                        key,
                    },
                );
            }
        }
    }
    for cycle in graph.cycles() {
        report_cycle(txns, &key_names, &cycle, findings);
    }
}

fn report_cycle(txns: &Transactions, key_names: &[&str], cycle: &Cycle, findings: &mut Findings) {
    let rw = cycle
        .iter()
        .filter(|(_, d)| d.kind == DependencyKind::ReadWrite)
        .count();
    let wr = cycle.iter().any(|(_, d)| d.kind == DependencyKind::WriteRead);
    let kind = match (rw, wr) {
        (0, false) => "cycle-g0",
        (0, true) => "cycle-g1c",
        (1, _) => "cycle-g-single",
        _ => "cycle-g2",
    };
    let steps: Vec<String> = cycle
        .iter()
        .map(|&(t, d)| format!("{} -{} {:?}->", txns.describe(t), d.kind.name(), key_names[d.key]))
        .collect();
    let ops: BTreeSet<usize> = cycle.iter().map(|&(t, _)| txns.index(t)).collect();
    let description = format!("dependency cycle: {} {}", steps.join(" "), txns.describe(cycle[0].0));
    findings.flag(kind, ops.into_iter().collect(), description);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::fixture::{History, append};

    fn finals(lists: &[(&str, &[u64])]) -> BTreeMap<String, Vec<u64>> {
        lists.iter().map(|(k, l)| (k.to_string(), l.to_vec())).collect()
    }

    fn kinds(r: &CheckResult) -> Vec<&str> {
        r.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    /// Three sequential appends over keys x and y, and the lists they leave.
    fn serial() -> History {
        let mut h = History::new();
        h.ok(1, append(&["x", "y"], 1, Some(vec![vec![], vec![]])), 0, 10, Some(2));
        h.ok(2, append(&["x"], 2, Some(vec![vec![1]])), 20, 30, Some(3));
        h.ok(
            1,
            append(&["y", "x"], 3, Some(vec![vec![1], vec![1, 2]])),
            40,
            50,
            Some(4),
        );
        h
    }

    #[test]
    fn a_serial_history_is_valid() {
        let h = serial();
        let r = check(&h.ops, &finals(&[("x", &[1, 2, 3]), ("y", &[1, 3])]));
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.ops_checked, 3);
    }

    #[test]
    fn a_lost_append_is_flagged() {
        let h = serial();
        let r = check(&h.ops, &finals(&[("x", &[1, 2]), ("y", &[1])]));
        assert!(kinds(&r).contains(&"lost-append"), "{r:?}");
        assert!(
            r.anomalies
                .iter()
                .any(|a| a.kind == "lost-append" && a.ops == vec![h.ops[2].index]),
            "{r:?}"
        );
    }

    #[test]
    fn a_duplicated_append_is_flagged() {
        let h = serial();
        let r = check(&h.ops, &finals(&[("x", &[1, 2, 3, 3]), ("y", &[1, 3])]));
        assert_eq!(kinds(&r), vec!["duplicate-element"]);
    }

    #[test]
    fn an_element_nobody_appended_or_a_failed_append_is_flagged() {
        let mut h = serial();
        let failed = h.fail(3, append(&["x"], 9, None), 60, 70);
        let r = check(&h.ops, &finals(&[("x", &[1, 2, 3, 9, 77]), ("y", &[1, 3])]));
        assert_eq!(kinds(&r), vec!["failed-append-visible", "phantom-element"]);
        assert_eq!(r.anomalies[0].ops, vec![failed]);
    }

    #[test]
    fn reads_that_disagree_on_order_are_flagged() {
        let mut h = History::new();
        h.ok(1, append(&["x"], 1, Some(vec![vec![]])), 0, 10, Some(2));
        h.ok(2, append(&["x"], 2, Some(vec![vec![1]])), 20, 30, Some(3));
        let odd = h.ok(3, append(&["x"], 3, Some(vec![vec![2, 1]])), 40, 50, Some(4));
        let r = check(&h.ops, &finals(&[("x", &[1, 2, 3])]));
        assert!(kinds(&r).contains(&"incompatible-order"), "{r:?}");
        assert!(
            r.anomalies
                .iter()
                .filter(|a| a.kind == "incompatible-order")
                .all(|a| a.ops.contains(&odd)),
            "{r:?}"
        );
    }

    #[test]
    fn an_unacknowledged_append_is_all_or_nothing() {
        let mut h = serial();
        h.info(4, append(&["x", "y"], 4, None), 60);
        let none = check(&h.ops, &finals(&[("x", &[1, 2, 3]), ("y", &[1, 3])]));
        assert_eq!(none.verdict, Verdict::Valid, "{none:?}");
        let all = check(&h.ops, &finals(&[("x", &[1, 2, 3, 4]), ("y", &[1, 3, 4])]));
        assert_eq!(all.verdict, Verdict::Valid, "{all:?}");
        let half = check(&h.ops, &finals(&[("x", &[1, 2, 3, 4]), ("y", &[1, 3])]));
        assert_eq!(kinds(&half), vec!["non-atomic-append"]);
    }

    #[test]
    fn an_unacknowledged_append_someone_read_must_survive() {
        let mut h = History::new();
        h.info(1, append(&["x"], 1, None), 0);
        h.ok(2, append(&["x"], 2, Some(vec![vec![1]])), 20, 30, Some(3));
        let r = check(&h.ops, &finals(&[("x", &[2])]));
        assert!(kinds(&r).contains(&"lost-append"), "{r:?}");
    }

    #[test]
    fn an_append_that_read_its_own_element_is_flagged() {
        let mut h = History::new();
        h.ok(1, append(&["x"], 1, Some(vec![vec![1]])), 0, 10, Some(2));
        let r = check(&h.ops, &finals(&[("x", &[1])]));
        assert!(kinds(&r).contains(&"read-own-element"), "{r:?}");
    }

    #[test]
    fn opposite_orders_on_two_keys_make_a_cycle() {
        let mut h = History::new();
        h.info(1, append(&["x", "y"], 1, None), 0);
        h.info(2, append(&["x", "y"], 2, None), 0);
        let r = check(&h.ops, &finals(&[("x", &[1, 2]), ("y", &[2, 1])]));
        assert_eq!(kinds(&r), vec!["cycle-g0"], "{r:?}");
        assert_eq!(r.anomalies[0].ops, vec![h.ops[0].index, h.ops[1].index]);
    }

    #[test]
    fn reading_each_others_writes_is_a_cycle() {
        // T1 appends to x and reads y; T2 appends to y and reads x; each saw the other.
        let mut h = History::new();
        h.ok(1, append(&["x", "y"], 1, Some(vec![vec![], vec![2]])), 0, 10, Some(2));
        h.ok(2, append(&["y", "x"], 2, Some(vec![vec![], vec![1]])), 0, 10, Some(3));
        let r = check(&h.ops, &finals(&[("x", &[1, 2]), ("y", &[2, 1])]));
        assert!(kinds(&r).iter().any(|k| k.starts_with("cycle-")), "{r:?}");
    }

    #[test]
    fn two_appends_that_both_read_the_lists_empty_cannot_both_be_right() {
        let mut h = History::new();
        h.ok(1, append(&["y", "x"], 1, Some(vec![vec![], vec![]])), 0, 10, Some(2));
        h.ok(2, append(&["x", "y"], 2, Some(vec![vec![], vec![]])), 0, 10, Some(3));
        let r = check(&h.ops, &finals(&[("x", &[1, 2]), ("y", &[2, 1])]));
        assert!(kinds(&r).contains(&"incompatible-order"), "{r:?}");
        assert!(kinds(&r).iter().any(|k| k.starts_with("cycle-")), "{r:?}");
        // Either one alone, with its lists, is fine.
        let r = check(&h.ops[..1], &finals(&[("x", &[1]), ("y", &[1])]));
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    }

    #[test]
    fn without_a_final_read_acknowledged_appends_leave_it_unknown() {
        let h = serial();
        let r = check(&h.ops, &BTreeMap::new());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn a_key_missing_from_the_final_read_is_an_empty_list() {
        let h = serial();
        let r = check(&h.ops, &finals(&[("x", &[1, 2, 3])]));
        assert!(kinds(&r).contains(&"lost-append"), "{r:?}");
    }
}
