//! The in-memory history of one key: every revision that changed it, oldest first,
//! with tombstones for deletions. Values live in the backend under their revision;
//! what a put needs of the live value besides (its creation revision, version and
//! lease) is kept here, so a put does not read the value it replaces.
//!
//! Invariant: revisions strictly increase; a tombstone is never the first entry and
//! is never followed by another tombstone.

use super::revision::Revision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub revision: Revision,
    pub is_tombstone: bool,
}

/// The fields of a key's live value that the next put carries over or replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveMeta {
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndex {
    entries: Vec<IndexEntry>,
    /// Of the latest entry, when it is not a tombstone.
    live: Option<LiveMeta>,
}

impl KeyIndex {
    /// Records a put at `revision` of a value with `meta`.
    pub fn push_put(&mut self, revision: Revision, meta: LiveMeta) {
        self.push(revision, false);
        self.live = Some(meta);
    }

    /// Records a deletion at `revision`.
    pub fn push_tombstone(&mut self, revision: Revision) {
        self.push(revision, true);
        self.live = None;
    }

    fn push(&mut self, revision: Revision, is_tombstone: bool) {
        debug_assert!(
            self.entries.last().is_none_or(|last| last.revision < revision),
            "key index revisions must increase: last {:?}, new {revision:?}",
            self.entries.last()
        );
        self.entries.push(IndexEntry { revision, is_tombstone });
    }

    /// What the latest value carries, unless the key is deleted.
    pub fn live(&self) -> Option<LiveMeta> {
        self.live
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

    /// What a compare at main revision `at` reads besides the value, from the index
    /// alone: `Some(None)` when the key has no live value at `at`, `Some(Some((mod
    /// revision, meta)))` when `at` sees its latest change, `None` when `at` sees an
    /// older one (whose creation revision, version and lease only its record holds).
    pub fn meta_at(&self, at: i64) -> Option<Option<(i64, LiveMeta)>> {
        let Some(entry) = self.latest_at(at) else {
            return Some(None);
        };
        if entry.is_tombstone {
            return Some(None);
        }
        if self.entries.last() != Some(&entry) {
            return None;
        }
        self.live.map(|meta| Some((entry.revision.main, meta)))
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
        let latest_is_live = self.entries.last().is_some_and(|e| !e.is_tombstone);
        if latest_is_live != self.live.is_some() {
            return Err(format!(
                "latest entry {:?} disagrees with the live value's fields {:?}",
                self.entries.last(),
                self.live
            ));
        }
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

    fn meta(create_revision: i64, version: i64) -> LiveMeta {
        LiveMeta {
            create_revision,
            version,
            lease: 0,
        }
    }

    /// Pushes puts and deletions at these main revisions, numbering versions as the
    /// store would.
    fn history(changes: &[(i64, bool)]) -> KeyIndex {
        let mut k = KeyIndex::default();
        for &(main, is_tombstone) in changes {
            if is_tombstone {
                k.push_tombstone(rev(main));
            } else {
                let m = k
                    .live()
                    .map_or(meta(main, 1), |m| meta(m.create_revision, m.version + 1));
                k.push_put(rev(main), m);
            }
        }
        k
    }

    #[test]
    fn live_at_sees_history_and_deletions() {
        let k = history(&[(2, false), (4, false), (6, true), (8, false)]);
        assert_eq!(k.live_at(1), None);
        assert_eq!(k.live_at(3), Some(rev(2)));
        assert_eq!(k.live_at(5), Some(rev(4)));
        assert_eq!(k.live_at(7), None);
        assert_eq!(k.live_at(100), Some(rev(8)));
        assert_eq!(k.live_before(rev(8)), None);
        assert_eq!(k.live_before(rev(6)), Some(rev(4)));
    }

    #[test]
    fn meta_at_answers_from_the_index_only_for_the_latest_change() {
        let k = history(&[(2, false), (4, false), (6, true), (8, false), (9, false)]);
        assert_eq!(k.meta_at(1), Some(None), "not created yet");
        assert_eq!(k.meta_at(7), Some(None), "deleted");
        assert_eq!(k.meta_at(3), None, "an older value: its record says");
        assert_eq!(k.meta_at(8), None);
        assert_eq!(k.meta_at(9), Some(Some((9, meta(8, 2)))));
        assert_eq!(k.meta_at(100), Some(Some((9, meta(8, 2)))));
        let deleted = history(&[(2, false), (3, true)]);
        assert_eq!(deleted.meta_at(5), Some(None));
        assert_eq!(KeyIndex::default().meta_at(5), Some(None));
    }

    #[test]
    fn compact_keeps_the_value_in_effect() {
        let mut k = history(&[(2, false), (4, false), (6, false)]);
        assert_eq!(k.compact(5), vec![rev(2)]);
        assert_eq!(k.live_at(5), Some(rev(4)));
        assert_eq!(k.live_at(6), Some(rev(6)));
        assert_eq!(k.live(), Some(meta(2, 3)), "compaction keeps the live value's version");
        assert_eq!(k.check(), Ok(()));
    }

    #[test]
    fn compact_drops_a_deleted_key_entirely() {
        let mut k = history(&[(2, false), (3, true)]);
        assert_eq!(k.compact(3), vec![rev(2), rev(3)]);
        assert!(k.is_empty());
        assert_eq!(k.live(), None);
    }

    #[test]
    fn the_live_value_fields_follow_puts_and_deletions() {
        let mut k = history(&[(2, false), (4, false)]);
        assert_eq!(k.live(), Some(meta(2, 2)));
        k.push_tombstone(rev(5));
        assert_eq!(k.live(), None);
        k.push_put(rev(7), meta(7, 1));
        assert_eq!(k.live(), Some(meta(7, 1)));
        assert_eq!(k.check(), Ok(()));
    }
}
