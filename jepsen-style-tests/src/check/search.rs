//! The linearizability search: Wing & Gong's algorithm with Lowe's memoisation, as
//! Porcupine implements it (`checkSingle`).
//!
//! Every operation becomes two entries, its call and its return, in one doubly linked
//! list sorted by time. The search walks the list from its head:
//!
//! ```text
//!  call entry   ──► try the model step; if allowed and (linearized ∪ {op}, new state)
//!                   is not in the memo: remember it, push (op, old state), lift the
//!                   op's two entries out of the list, restart from the head.
//!                   Otherwise move on to the next entry.
//!  return entry ──► that op had to take effect by now and could not: pop the last
//!                   linearized op, put its entries back, and try the entry after it.
//!  empty list   ──► every operation was placed: linearizable.
//!  empty stack at a return entry ──► nothing left to try: not linearizable.
//! ```
//!
//! The stack is explicit so that long histories cannot overflow the thread's stack.
//! The memo is what makes the search practical: two paths that linearized the same set
//! of operations and reached the same state have the same future.
//!
//! At equal times a call sorts before a return, so operations that merely touch are
//! treated as concurrent: with clocks of finite resolution that is the cautious reading.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::Instant;

use super::bitset::Bitset;

/// When an operation could take effect: after its call, before its return. `None`
/// for an operation whose outcome is unknown: it may take effect at any time after
/// its call, or never, which a return at +infinity expresses (it can always be
/// placed after everything else, where nothing observes it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval {
    pub call_ns: u64,
    pub return_ns: Option<u64>,
}

#[derive(Debug)]
pub(crate) enum Outcome<S> {
    Linearizable,
    NotLinearizable(Frontier<S>),
    /// The deadline passed first: nothing is known.
    TimedOut,
}

/// Where the deepest attempt got stuck, to explain a failure.
#[derive(Debug)]
pub(crate) struct Frontier<S> {
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// The model state after that prefix.
    pub state: S,
    /// The operation whose return came before any order could place it.
    pub stuck: usize,
}

/// How often (in loop iterations) the deadline is looked at; also at the first one.
const DEADLINE_EVERY: u64 = 128;

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Searches for a linearization of `ops` (indices into `ops` are what `step` gets).
/// `step(state, op)` is the model: the state after `op`, or `None` if `op` cannot
/// happen in `state`.
pub(crate) fn search<S, F>(ops: &[Interval], init: S, step: F, deadline: Instant) -> Outcome<S>
where
    S: Clone + Eq + Hash,
    F: Fn(&S, usize) -> Option<S>,
{
    let mut list = EntryList::new(ops);
    let mut linearized = Bitset::new(ops.len());
    let mut memo: HashSet<(Bitset, S)> = HashSet::new();
    let mut stack: Vec<(usize, S)> = Vec::new();
    let mut state = init;
    let mut deepest: Option<Frontier<S>> = None;
    let mut entry = list.next[HEAD];
    let mut iterations: u64 = 0;

    while list.next[HEAD] != NIL {
        if iterations.is_multiple_of(DEADLINE_EVERY) && Instant::now() >= deadline {
            return Outcome::TimedOut;
        }
        iterations += 1;
        // The list always ends with a return entry, and backtracking resumes just
        // after a call whose return is still in the list, so the walk cannot run off.
        debug_assert_ne!(entry, NIL, "walked off the end of the entry list");

        if is_call(entry) {
            let op = op_of(entry);
            if let Some(next_state) = step(&state, op) {
                let mut next_linearized = linearized.clone();
                next_linearized.insert(op);
                if memo.insert((next_linearized, next_state.clone())) {
                    stack.push((op, std::mem::replace(&mut state, next_state)));
                    linearized.insert(op);
                    list.lift(op);
                    entry = list.next[HEAD];
                    continue;
                }
            }
            entry = list.next[entry];
        } else {
            if deepest.as_ref().is_none_or(|d| stack.len() > d.prefix_len) {
                deepest = Some(Frontier {
                    prefix_len: stack.len(),
                    state: state.clone(),
                    stuck: op_of(entry),
                });
            }
            let Some((op, previous)) = stack.pop() else {
                let frontier = deepest.expect("recorded just above");
                return Outcome::NotLinearizable(frontier);
            };
            state = previous;
            linearized.remove(op);
            list.unlift(op);
            entry = list.next[call_node(op)];
        }
    }
    debug_assert_eq!(
        linearized.len(),
        ops.len(),
        "an empty list means every op is linearized"
    );
    Outcome::Linearizable
}

fn call_node(op: usize) -> usize {
    1 + 2 * op
}

fn return_node(op: usize) -> usize {
    2 + 2 * op
}

fn op_of(node: usize) -> usize {
    (node - 1) / 2
}

fn is_call(node: usize) -> bool {
    node % 2 == 1
}

/// The doubly linked list of entries, as index arrays. Node 0 is the head sentinel;
/// op `i` has its call at `1 + 2i` and its return at `2 + 2i`. Lifting and putting
/// back are "dancing links": a lifted node keeps its own pointers, so undoing lifts
/// in reverse order restores the list exactly.
struct EntryList {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    fn new(ops: &[Interval]) -> Self {
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            // A return never sorts before its own call, whatever the clock said.
            let return_ns = op.return_ns.unwrap_or(u64::MAX).max(op.call_ns);
            order.push((op.call_ns, 0, call_node(i)));
            order.push((return_ns, 1, return_node(i)));
        }
        order.sort_unstable();
        let nodes = 1 + 2 * ops.len();
        let (mut next, mut prev) = (vec![NIL; nodes], vec![NIL; nodes]);
        let mut last = HEAD;
        for &(_, _, node) in &order {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Self { next, prev }
    }

    fn lift(&mut self, op: usize) {
        let (call, ret) = (call_node(op), return_node(op));
        // The call always has a successor: its own return at the latest.
        self.next[self.prev[call]] = self.next[call];
        self.prev[self.next[call]] = self.prev[call];
        self.next[self.prev[ret]] = self.next[ret];
        if self.next[ret] != NIL {
            self.prev[self.next[ret]] = self.prev[ret];
        }
    }

    fn unlift(&mut self, op: usize) {
        let (call, ret) = (call_node(op), return_node(op));
        self.next[self.prev[ret]] = ret;
        if self.next[ret] != NIL {
            self.prev[self.next[ret]] = ret;
        }
        self.next[self.prev[call]] = call;
        self.prev[self.next[call]] = call;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A register of small integers: op = (Some(v) write | None read, value read).
    fn register(ops: &[(u64, Option<u64>, bool, i32)]) -> Outcome<i32> {
        // (call, return, is_write, value)
        let intervals: Vec<Interval> = ops
            .iter()
            .map(|&(call, ret, _, _)| Interval {
                call_ns: call,
                return_ns: ret,
            })
            .collect();
        let far = Instant::now() + Duration::from_secs(10);
        search(
            &intervals,
            0,
            |s, i| {
                let (_, _, is_write, v) = ops[i];
                if is_write { Some(v) } else { (*s == v).then_some(*s) }
            },
            far,
        )
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let out = register(&[
            (0, Some(1), true, 5),
            (2, Some(3), false, 5),
            (4, Some(5), true, 6),
            (6, Some(7), false, 6),
        ]);
        assert!(matches!(out, Outcome::Linearizable), "{out:?}");
    }

    #[test]
    fn concurrent_ops_may_take_effect_in_either_order() {
        // The read overlaps the write of 7 and sees it, though it was called first.
        let out = register(&[(0, Some(10), false, 7), (2, Some(5), true, 7), (11, Some(12), false, 7)]);
        assert!(matches!(out, Outcome::Linearizable), "{out:?}");
    }

    #[test]
    fn a_read_after_an_overwrite_cannot_see_the_old_value() {
        let out = register(&[(0, Some(1), true, 1), (2, Some(3), true, 2), (4, Some(5), false, 1)]);
        let Outcome::NotLinearizable(f) = out else {
            panic!("expected a failure, got {out:?}")
        };
        assert_eq!(f.stuck, 2, "the stale read is what cannot be placed");
        assert_eq!(f.prefix_len, 2);
        assert_eq!(f.state, 2);
    }

    #[test]
    fn touching_intervals_count_as_concurrent() {
        // The write returns at 5 and the read is called at 5: either order is possible.
        let out = register(&[(0, Some(5), true, 1), (5, Some(6), false, 0)]);
        assert!(matches!(out, Outcome::Linearizable), "{out:?}");
    }

    #[test]
    fn an_op_that_never_returned_may_take_effect_late_or_never() {
        // The unknown write of 3 is seen by a read long after, then overwritten.
        let late = register(&[(0, None, true, 3), (10, Some(11), false, 0), (20, Some(21), false, 3)]);
        assert!(matches!(late, Outcome::Linearizable), "{late:?}");
        let never = register(&[(0, None, true, 3), (10, Some(11), false, 0)]);
        assert!(matches!(never, Outcome::Linearizable), "{never:?}");
        // But it cannot take effect before its call.
        let early = register(&[(10, Some(11), false, 3), (20, None, true, 3)]);
        assert!(matches!(early, Outcome::NotLinearizable(_)), "{early:?}");
    }

    #[test]
    fn backtracking_finds_the_one_order_that_works() {
        // Three concurrent writes, read while they run as 3 and then 1, and as 2 once
        // all are done: only the order 3, 1, 2 explains it, and the search must find
        // it after first trying 1 (the earliest call).
        let out = register(&[
            (0, Some(100), true, 1),
            (0, Some(100), true, 2),
            (0, Some(100), true, 3),
            (1, Some(50), false, 3),
            (51, Some(99), false, 1),
            (101, Some(102), false, 2),
        ]);
        assert!(matches!(out, Outcome::Linearizable), "{out:?}");
    }

    #[test]
    fn a_passed_deadline_gives_no_answer() {
        let intervals = [Interval {
            call_ns: 0,
            return_ns: Some(1),
        }];
        let out = search(&intervals, 0, |s, _| Some(*s), Instant::now());
        assert!(matches!(out, Outcome::TimedOut), "{out:?}");
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        let out = search(&[], 0, |s: &i32, _| Some(*s), Instant::now() + Duration::from_secs(1));
        assert!(matches!(out, Outcome::Linearizable));
    }
}
