//! The register model the linearizability search runs: one key's operations as
//! intervals and steps over an interned value (0 is "absent"), so the memo hashes a
//! `u32` rather than a string.
//!
//! Which operations take part, and as what:
//!
//! | operation                         | step                                      | return  |
//! |-----------------------------------|-------------------------------------------|---------|
//! | ok linearizable read of v         | state must be v                           | known   |
//! | ok write of v                     | state := v                                | known   |
//! | info write of v                   | state := v (if it happens at all)         | +inf    |
//! | ok cas from→to, succeeded         | state must be from; state := to           | known   |
//! | ok cas from→to, compare failed    | state must not be from                    | known   |
//! | cas of unknown outcome            | if state is from, state := to; else none  | +inf/known |
//! | fail anything, info/serializable reads | left out: no effect, or no guarantee |         |

use std::collections::{BTreeMap, HashMap};

use super::search::Interval;
use crate::history::{Completed, Consistency, Kind, Op};

/// An interned register value; [`ABSENT`] is the missing key.
pub(crate) type Value = u32;
pub(crate) const ABSENT: Value = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Read(Value),
    Write(Value),
    CasSucceeded {
        from: Value,
        to: Value,
    },
    CasRejected {
        from: Value,
    },
    /// May or may not have run; if it ran, it swapped exactly when the compare held.
    /// Total: it is never the reason a linearization fails.
    CasUnknown {
        from: Value,
        to: Value,
    },
}

impl Step {
    pub(crate) fn apply(self, state: Value) -> Option<Value> {
        match self {
            Step::Read(v) => (state == v).then_some(state),
            Step::Write(v) => Some(v),
            Step::CasSucceeded { from, to } => (state == from).then_some(to),
            Step::CasRejected { from } => (state != from).then_some(state),
            Step::CasUnknown { from, to } => Some(if state == from { to } else { state }),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RegisterOp {
    /// Position of the operation in the `&[Completed]` the checker was given.
    pub position: usize,
    pub interval: Interval,
    pub step: Step,
}

/// One key's share of the history.
#[derive(Debug, Default)]
pub(crate) struct KeyHistory {
    pub ops: Vec<RegisterOp>,
    /// Positions of failed writes and cas: they did not happen, but a read that
    /// returns their value deserves a clear message.
    pub failed: Vec<usize>,
    values: Vec<String>,
    ids: HashMap<String, Value>,
}

impl KeyHistory {
    fn intern(&mut self, value: Option<&str>) -> Value {
        let Some(v) = value else { return ABSENT };
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        self.values.push(v.to_string());
        let id = Value::try_from(self.values.len()).expect("fewer than 2^32 distinct values per key");
        self.ids.insert(v.to_string(), id);
        id
    }

    /// The value an id stands for (`None`: absent).
    pub(crate) fn value(&self, id: Value) -> Option<&str> {
        if id == ABSENT {
            None
        } else {
            Some(&self.values[id as usize - 1])
        }
    }

    /// Id of a value if any operation on this key mentions it.
    #[cfg(test)]
    pub(crate) fn id(&self, value: &str) -> Option<Value> {
        self.ids.get(value).copied()
    }
}

/// Splits the register operations of a history by key (linearizability is local:
/// a history is linearizable iff each key's sub-history is).
pub(crate) fn by_key(history: &[Completed]) -> BTreeMap<String, KeyHistory> {
    let mut keys: BTreeMap<String, KeyHistory> = BTreeMap::new();
    for (position, c) in history.iter().enumerate() {
        let Some(key) = c.op.register_key() else { continue };
        let k = keys.entry(key.to_string()).or_default();
        if c.kind == Kind::Fail {
            if !matches!(c.op, Op::Read { .. }) {
                k.failed.push(position);
            }
            continue;
        }
        let step = match (&c.op, c.kind) {
            (
                Op::Read {
                    consistency: Consistency::Linearizable,
                    value,
                    ..
                },
                Kind::Ok,
            ) => Step::Read(k.intern(value.as_deref())),
            // An unknown read changed nothing; a serializable one may be stale.
            (Op::Read { .. }, _) => continue,
            (Op::Write { value, .. }, _) => Step::Write(k.intern(Some(value))),
            (
                Op::Cas {
                    from, to, succeeded, ..
                },
                kind,
            ) => {
                let (from, to) = (k.intern(Some(from)), k.intern(Some(to)));
                match (kind, succeeded) {
                    (Kind::Ok, Some(true)) => Step::CasSucceeded { from, to },
                    (Kind::Ok, Some(false)) => Step::CasRejected { from },
                    _ => Step::CasUnknown { from, to },
                }
            }
            _ => continue,
        };
        // `info` ops have no return; an `ok` without one is treated the same way.
        let return_ns = if c.kind == Kind::Ok { c.complete_ns } else { None };
        k.ops.push(RegisterOp {
            position,
            interval: Interval {
                call_ns: c.invoke_ns,
                return_ns,
            },
            step,
        });
    }
    keys.retain(|_, k| !k.ops.is_empty() || !k.failed.is_empty());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixture::{History, cas, read, sread, write};

    #[test]
    fn steps_follow_the_register_semantics() {
        assert_eq!(Step::Read(2).apply(2), Some(2));
        assert_eq!(Step::Read(2).apply(1), None);
        assert_eq!(Step::Write(3).apply(1), Some(3));
        assert_eq!(Step::CasSucceeded { from: 1, to: 4 }.apply(1), Some(4));
        assert_eq!(Step::CasSucceeded { from: 1, to: 4 }.apply(ABSENT), None);
        assert_eq!(Step::CasRejected { from: 1 }.apply(2), Some(2));
        assert_eq!(Step::CasRejected { from: 1 }.apply(1), None);
        assert_eq!(Step::CasUnknown { from: 1, to: 4 }.apply(1), Some(4));
        assert_eq!(Step::CasUnknown { from: 1, to: 4 }.apply(2), Some(2));
    }

    #[test]
    fn fail_ops_unknown_reads_and_serializable_reads_take_no_part() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.fail(2, write("k", "b"), 0, 10);
        h.info(3, read("k", None), 0);
        h.ok(4, sread("k", Some("zzz")), 20, 30, Some(2));
        h.info(5, cas("k", "a", "c", None), 40);
        h.ok(6, read("k", Some("a")), 50, 60, Some(2));
        let keys = by_key(&h.ops);
        let k = &keys["k"];
        let steps: Vec<Step> = k.ops.iter().map(|o| o.step).collect();
        let (a, c) = (k.id("a").unwrap(), k.id("c").unwrap());
        assert_eq!(
            steps,
            vec![Step::Write(a), Step::CasUnknown { from: a, to: c }, Step::Read(a)]
        );
        assert_eq!(k.ops[1].interval.return_ns, None, "an info op never returns");
        assert_eq!(k.ops[2].interval.return_ns, Some(60));
        assert_eq!(k.failed, vec![1]);
        assert_eq!(k.id("zzz"), None, "the serializable read was not even interned");
        assert_eq!(k.value(a), Some("a"));
        assert_eq!(k.value(ABSENT), None);
    }
}
