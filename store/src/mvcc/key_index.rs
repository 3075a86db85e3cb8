//! The in-memory history of one key: every revision that changed it, oldest first,
//! with tombstones for deletions. Values live in the backend under their revision.
//!
//! Invariant: revisions strictly increase; a tombstone is never the first entry and
//! is never followed by another tombstone.

use super::revision::Revision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub revision: Revision,
    pub is_tombstone: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndex {
    entries: Vec<IndexEntry>,
}

impl KeyIndex {
    pub fn push(&mut self, revision: Revision, is_tombstone: bool) {
        debug_assert!(
            self.entries.last().is_none_or(|last| last.revision < revision),
            "key index revisions must increase: last {:?}, new {revision:?}",
            self.entries.last()
        );
        self.entries.push(IndexEntry { revision, is_tombstone });
    }

    /// The latest change at or before main revision `at`, if it is not a deletion.
    pub fn live_at(&self, at: i64) -> Option<Revision> {
        let entry = self.latest_at(at)?;
        (!entry.is_tombstone).then_some(entry.revision)
    }

    /// The latest change at or before main revision `at`, deletion or not.
    pub fn latest_at(&self, at: i64) -> Option<IndexEntry> {
        let after = self.entries.partition_point(|e| e.revision.main <= at);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// The live revision strictly before `revision`: what a change at `revision` replaced.
    pub fn live_before(&self, revision: Revision) -> Option<Revision> {
        let at = self.entries.partition_point(|e| e.revision < revision);
        let entry = self.entries[..at].last()?;
        (!entry.is_tombstone).then_some(entry.revision)
    }

    /// Forgets history before main revision `compact`: keeps the change in effect at
    /// `compact` (unless it is a deletion) and everything after it. Returns the
    /// revisions whose values may be removed from the backend.
    pub fn compact(&mut self, compact: i64) -> Vec<Revision> {
        let after = self.entries.partition_point(|e| e.revision.main <= compact);
        if after == 0 {
            return Vec::new();
        }
        let keep_from = if self.entries[after - 1].is_tombstone {
            after
        } else {
            after - 1
        };
        self.entries.drain(..keep_from).map(|e| e.revision).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Checks the invariant in the module doc; returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        for pair in self.entries.windows(2) {
            if pair[0].revision >= pair[1].revision {
                return Err(format!(
                    "revisions out of order: {:?} then {:?}",
                    pair[0].revision, pair[1].revision
                ));
            }
            if pair[0].is_tombstone && pair[1].is_tombstone {
                return Err(format!("two tombstones in a row at {:?}", pair[1].revision));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn live_at_sees_history_and_deletions() {
        let mut k = KeyIndex::default();
        k.push(rev(2), false);
        k.push(rev(4), false);
        k.push(rev(6), true);
        k.push(rev(8), false);
        assert_eq!(k.live_at(1), None);
        assert_eq!(k.live_at(3), Some(rev(2)));
        assert_eq!(k.live_at(5), Some(rev(4)));
        assert_eq!(k.live_at(7), None);
        assert_eq!(k.live_at(100), Some(rev(8)));
        assert_eq!(k.live_before(rev(8)), None);
        assert_eq!(k.live_before(rev(6)), Some(rev(4)));
    }

    #[test]
    fn compact_keeps_the_value_in_effect() {
        let mut k = KeyIndex::default();
        k.push(rev(2), false);
        k.push(rev(4), false);
        k.push(rev(6), false);
        assert_eq!(k.compact(5), vec![rev(2)]);
        assert_eq!(k.live_at(5), Some(rev(4)));
        assert_eq!(k.live_at(6), Some(rev(6)));
    }

    #[test]
    fn compact_drops_a_deleted_key_entirely() {
        let mut k = KeyIndex::default();
        k.push(rev(2), false);
        k.push(rev(3), true);
        assert_eq!(k.compact(3), vec![rev(2), rev(3)]);
        assert!(k.is_empty());
    }
}
