//! What was observed of each list-append key: the lists each ok append read, the lists
//! it left (its read, then its element), and the final read; and the checks on them.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Findings;
use super::append::Transactions;
use crate::history::Kind;

/// Past this many order violations on one key, the rest are only counted.
const MAX_ORDER_REPORTS_PER_KEY: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// What append `i` read.
    Read(usize),
    /// What append `i` left: what it read, then its element.
    AfterAppend(usize),
    Final,
}

/// One observed state of one key's list; `last` is the appended element for
/// `AfterAppend` (kept apart so that no list is copied).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation<'a> {
    pub source: Source,
    pub prefix: &'a [u64],
    pub last: Option<u64>,
}

impl Observation<'_> {
    pub(crate) fn len(&self) -> usize {
        self.prefix.len() + usize::from(self.last.is_some())
    }

    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        match self.prefix.get(i) {
            Some(&x) => Some(x),
            None if i == self.prefix.len() => self.last,
            None => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.prefix.iter().copied().chain(self.last)
    }

    pub(crate) fn is_prefix_of(&self, other: &Observation) -> bool {
        self.len() <= other.len() && (0..self.len()).all(|i| self.get(i) == other.get(i))
    }
}

/// Every observation, by key.
pub(crate) struct Observations<'a> {
    by_key: BTreeMap<&'a str, Vec<Observation<'a>>>,
}

impl<'a> Observations<'a> {
    /// `final_lists`: `None` when there was no final read.
    pub(crate) fn new(txns: &Transactions<'a>, final_lists: Option<&'a BTreeMap<String, Vec<u64>>>) -> Self {
        let mut by_key: BTreeMap<&str, Vec<Observation>> = BTreeMap::new();
        for (i, a) in txns.appends.iter().enumerate() {
            for key in a.keys {
                by_key.entry(key.as_str()).or_default();
            }
            let Some(read) = a.read else { continue };
            for (key, list) in a.keys.iter().zip(read) {
                let observed = by_key.entry(key.as_str()).or_default();
                observed.push(Observation {
                    source: Source::Read(i),
                    prefix: list,
                    last: None,
                });
                observed.push(Observation {
                    source: Source::AfterAppend(i),
                    prefix: list,
                    last: Some(a.element),
                });
            }
        }
        if let Some(finals) = final_lists {
            for key in finals.keys() {
                by_key.entry(key.as_str()).or_default();
            }
            for (key, observed) in by_key.iter_mut() {
                let list = finals.get(*key).map_or(&[][..], Vec::as_slice);
                observed.push(Observation {
                    source: Source::Final,
                    prefix: list,
                    last: None,
                });
            }
        }
        Self { by_key }
    }

    /// For each element some ok append read, the first such append.
    pub(crate) fn first_readers(&self) -> HashMap<u64, usize> {
        let mut readers = HashMap::new();
        for o in self.by_key.values().flatten() {
            if let Source::Read(i) = o.source {
                for x in o.iter() {
                    readers.entry(x).or_insert(i);
                }
            }
        }
        readers
    }

    /// Duplicates, elements nobody (or only a failed append) appended, elements in a
    /// key their append did not touch, and appends that read their own element.
    pub(crate) fn check_lists(&self, txns: &Transactions, findings: &mut Findings) {
        let mut judged: HashSet<(&str, u64)> = HashSet::new();
        for (&key, observed) in &self.by_key {
            for o in observed.iter().filter(|o| !matches!(o.source, Source::AfterAppend(_))) {
                let mut seen = HashSet::new();
                for x in o.iter() {
                    if !seen.insert(x) {
                        let description = format!("{} saw element {x} twice in {key:?}", txns.say(o.source));
                        findings.flag("duplicate-element", txns.ops_of(o.source), description);
                    }
                    if let Source::Read(i) = o.source
                        && x == txns.appends[i].element
                    {
                        let description = format!(
                            "{} already contained its own element {x} in {key:?}",
                            txns.say(o.source)
                        );
                        findings.flag("read-own-element", txns.ops_of(o.source), description);
                    }
                    if judged.insert((key, x)) {
                        check_element(txns, key, x, o.source, findings);
                    }
                }
            }
        }
    }

    /// Every observation of a key is a prefix of the longest one. Returns that longest
    /// observation per key: the best-known order of its elements.
    pub(crate) fn check_order(
        &self,
        txns: &Transactions,
        findings: &mut Findings,
    ) -> BTreeMap<&'a str, Observation<'a>> {
        let mut orders = BTreeMap::new();
        for (&key, observed) in &self.by_key {
            // The longest; on a tie the final read, which is the most trustworthy.
            let Some(order) = observed
                .iter()
                .max_by_key(|o| (o.len(), o.source == Source::Final))
                .copied()
            else {
                continue;
            };
            orders.insert(key, order);
            let mut bad_reads: HashSet<usize> = HashSet::new();
            let (mut reported, mut unreported) = (0, 0);
            for o in observed.iter().filter(|o| !o.is_prefix_of(&order)) {
                match o.source {
                    Source::Read(i) => {
                        bad_reads.insert(i);
                    }
                    // Its read was already reported: the same disagreement again.
                    Source::AfterAppend(i) if bad_reads.contains(&i) => continue,
                    _ => {}
                }
                if reported == MAX_ORDER_REPORTS_PER_KEY {
                    unreported += 1;
                    continue;
                }
                reported += 1;
                let at = (0..o.len()).find(|&i| o.get(i) != order.get(i)).unwrap_or(0);
                let mut ops = txns.ops_of(o.source);
                ops.extend(txns.ops_of(order.source));
                let description = format!(
                    "{} saw {key:?} as a list of {} that is not a prefix of the one {} saw ({} long): at position {at} it has {} where the other has {}",
                    txns.say(o.source),
                    o.len(),
                    txns.say(order.source),
                    order.len(),
                    show(o.get(at)),
                    show(order.get(at)),
                );
                findings.flag("incompatible-order", ops, description);
            }
            if unreported > 0 {
                let description =
                    format!("{unreported} more observations of {key:?} are not prefixes of the longest one");
                findings.flag("incompatible-order", Vec::new(), description);
            }
        }
        orders
    }
}

/// An element in a list must have been appended, to that key, by an append that may
/// have happened.
fn check_element(txns: &Transactions, key: &str, x: u64, source: Source, findings: &mut Findings) {
    let mut ops = txns.ops_of(source);
    let (kind, why) = match txns.writer(x) {
        None => ("phantom-element", "no operation appended it".to_string()),
        Some(w) => {
            let a = &txns.appends[w];
            ops.push(txns.index(w));
            if a.kind == Kind::Fail {
                ("failed-append-visible", format!("{} failed", txns.describe(w)))
            } else if !a.keys.iter().any(|k| k == key) {
                (
                    "element-in-wrong-key",
                    format!("{} did not append to {key:?}", txns.describe(w)),
                )
            } else {
                return;
            }
        }
    };
    findings.flag(
        kind,
        ops,
        format!("{} contained element {x} in {key:?}, but {why}", txns.say(source)),
    );
}

fn show(element: Option<u64>) -> String {
    element.map_or_else(|| "nothing".to_string(), |x| x.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_after_an_append_ends_with_its_element() {
        let read = [1, 2];
        let after = Observation {
            source: Source::AfterAppend(0),
            prefix: &read,
            last: Some(3),
        };
        assert_eq!(after.len(), 3);
        assert_eq!(after.iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!((after.get(2), after.get(3)), (Some(3), None));
        let longer = [1, 2, 3, 4];
        let other = [1, 2, 4];
        let final_ = |prefix| Observation {
            source: Source::Final,
            prefix,
            last: None,
        };
        assert!(after.is_prefix_of(&final_(&longer)));
        assert!(!after.is_prefix_of(&final_(&other)));
        assert!(!final_(&longer).is_prefix_of(&after));
        assert!(final_(&[]).is_prefix_of(&after));
    }
}
