//! Compaction: every revision that no read at or after the compaction revision can
//! see leaves the key index and the overlay, and the stored packs that held any are
//! rewritten without them in the same batch.

use super::{KvStore, META_COMPACT_REVISION};
use crate::backend::{BatchOp, Pair, Tree};
use crate::mvcc::MvccError;
use crate::mvcc::packs::{self, Records};
use crate::mvcc::revision::Revision;

impl KvStore {
    /// Checks that a compaction to `revision` is allowed.
    pub fn check_compact(&self, revision: i64) -> Result<(), MvccError> {
        if revision <= self.compact_revision {
            return Err(MvccError::Compacted {
                requested: revision,
                compacted: self.compact_revision,
            });
        }
        if revision > self.current_revision {
            return Err(MvccError::FutureRevision {
                requested: revision,
                current: self.current_revision,
            });
        }
        Ok(())
    }

    /// Forgets every revision before `revision` that a read at `revision` or later
    /// cannot see, in the index and in the backend.
    pub fn compact(&mut self, revision: i64) -> Result<(), MvccError> {
        self.check_compact(revision)?;
        let mut emptied = Vec::new();
        let mut dropped = Vec::new();
        for (key, index) in self.index.iter_mut() {
            for removed in index.compact(revision) {
                match self.pending.remove(&removed) {
                    Some(at) => self.staged[at].1 = None,
                    None => dropped.push(removed),
                }
            }
            if index.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.index.remove(&key);
        }
        // Reads below `revision` fail from here on, even if rewriting the packs does.
        self.compact_revision = revision;
        dropped.sort_unstable();
        self.drop_stored(&dropped)?;
        self.batch
            .put(META_COMPACT_REVISION.to_vec(), revision.to_be_bytes().to_vec());
        Ok(())
    }

    /// Rewrites the stored packs that hold `dropped` (sorted) without them.
    fn drop_stored(&mut self, dropped: &[Revision]) -> Result<(), MvccError> {
        let mut emptied = Vec::new();
        let mut next = 0;
        while let Some(&first) = dropped.get(next) {
            let Some((key, stored)) = self.stored_around(first)? else {
                next += 1;
                continue;
            };
            // A pack this apply already rewrote is read as rewritten.
            let value = match self.rewritten.get(&key).map(|&at| &self.batch.ops[at]) {
                Some(BatchOp::Put(_, value)) => value.clone(),
                Some(BatchOp::Delete(_)) => Vec::new(),
                None => stored,
            };
            let records = if value.is_empty() {
                Vec::new()
            } else {
                Records::new(&key, &value)?.collect::<Result<Vec<_>, _>>()?
            };
            let last = records.last().map(|(revision, _)| *revision);
            let end = next + dropped[next..].partition_point(|r| Some(*r) <= last);
            if end == next {
                // Not stored (any more): nothing to drop.
                next += 1;
                continue;
            }
            let here = &dropped[next..end];
            next = end;
            let kept: Vec<(Revision, &[u8])> = records
                .into_iter()
                .filter(|(revision, _)| here.binary_search(revision).is_err())
                .collect();
            self.rewritten.insert(key.clone(), self.batch.ops.len());
            if kept.is_empty() {
                emptied.push(Revision::from_key(&key).expect("a pack's key"));
                self.batch.delete(key);
            } else {
                self.batch.put(key, packs::encode_pack(&kept));
            }
        }
        self.packs.retain(|pack| emptied.binary_search(pack).is_err());
        Ok(())
    }

    /// The stored value that holds the record at `revision` if any does: the pack
    /// with the greatest key at or before the revision.
    pub(super) fn stored_around(&self, revision: Revision) -> Result<Option<Pair>, MvccError> {
        let Some(at) = self.packs.partition_point(|pack| *pack <= revision).checked_sub(1) else {
            return Ok(None);
        };
        let key = self.packs[at].to_key();
        Ok(self.backend.get(Tree::State, &key)?.map(|value| (key.to_vec(), value)))
    }
}
