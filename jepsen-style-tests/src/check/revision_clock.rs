//! When a revision was committed, in the history's clock, as far as the history shows.
//!
//! An `ok` operation that went through consensus (or a linearizable read) observed the
//! store at one moment between its invocation and its completion, and its header
//! revision is the store's revision at that moment. So revision r was committed:
//! - after the invocation of any such operation that answered a revision below r
//!   (the store had not reached r yet at a moment after that invocation), and
//! - by the completion of any such operation that answered r or more.
//!
//! Taking part: every `ok` operation with a revision except serializable reads (a
//! replica may answer them from the past) and keepalives (etcd answers them from the
//! leader without consensus, and their header revision may lag). Lease reads are
//! taken to be linearizable, as the workload issues them.

use crate::history::{Completed, Consistency, Kind, Op};

#[derive(Debug, Default)]
pub(crate) struct RevisionClock {
    /// (revision, invoke_ns, complete_ns), sorted by revision.
    points: Vec<(i64, u64, u64)>,
    /// `latest_invoke[i]`: the latest invocation among `points[..=i]`.
    latest_invoke: Vec<u64>,
    /// `earliest_complete[i]`: the earliest completion among `points[i..]`.
    earliest_complete: Vec<u64>,
}

impl RevisionClock {
    pub(crate) fn new(history: &[Completed]) -> Self {
        let mut points: Vec<(i64, u64, u64)> = history
            .iter()
            .filter(|c| c.kind == Kind::Ok)
            .filter(|c| match &c.op {
                Op::Read { consistency, .. } => *consistency == Consistency::Linearizable,
                Op::LeaseKeepAlive { .. } => false,
                _ => true,
            })
            .filter_map(|c| Some((c.revision.filter(|&r| r > 0)?, c.invoke_ns, c.complete_ns?)))
            .collect();
        points.sort_unstable();
        let mut latest_invoke = Vec::with_capacity(points.len());
        for &(_, invoke, _) in &points {
            latest_invoke.push(latest_invoke.last().map_or(invoke, |&l: &u64| l.max(invoke)));
        }
        let mut earliest_complete = vec![u64::MAX; points.len()];
        for i in (0..points.len()).rev() {
            let after = earliest_complete.get(i + 1).copied().unwrap_or(u64::MAX);
            earliest_complete[i] = points[i].2.min(after);
        }
        Self {
            points,
            latest_invoke,
            earliest_complete,
        }
    }

    /// `(after_ns, by_ns)`: revision r was committed at some moment in
    /// `after_ns..=by_ns`. `None` when the history does not bound it on both sides.
    pub(crate) fn committed_between(&self, revision: i64) -> Option<(u64, u64)> {
        let split = self.points.partition_point(|&(r, _, _)| r < revision);
        let after = *self.latest_invoke.get(split.checked_sub(1)?)?;
        let by = *self.earliest_complete.get(split)?;
        Some((after, by))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixture::{History, keepalive, read, sread, write};

    #[test]
    fn a_revision_is_bounded_by_the_operations_around_it() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.ok(2, read("k", Some("a")), 5, 30, Some(3));
        h.ok(3, write("k", "b"), 20, 25, Some(4));
        h.ok(1, read("k", Some("b")), 40, 50, Some(4));
        let clock = RevisionClock::new(&h.ops);
        // Revision 3: after the write answering 2 was invoked (at 0), and by the
        // earliest completion of anything answering 3 or more: the write of 4, at 25.
        assert_eq!(clock.committed_between(3), Some((0, 25)));
        assert_eq!(clock.committed_between(4), Some((5, 25)));
        assert_eq!(clock.committed_between(2), None, "nothing answered a lower revision");
        assert_eq!(
            clock.committed_between(5),
            None,
            "nothing answered a revision that high"
        );
    }

    #[test]
    fn keepalives_and_serializable_reads_do_not_count() {
        let mut h = History::new();
        h.ok(1, write("k", "a"), 0, 10, Some(2));
        h.ok(2, sread("k", Some("a")), 100, 110, Some(9));
        h.ok(2, keepalive(1, Some(3)), 100, 110, Some(9));
        let clock = RevisionClock::new(&h.ops);
        assert_eq!(clock.committed_between(5), None);
    }
}
