//! The store's invariants (see the module doc of `kvstore`), checked after every
//! apply in debug builds and after loading, and the backend checked against memory.

use super::KvStore;

impl KvStore {
    /// Checks the invariants in the module doc.
    pub fn validate(&self) -> Result<(), String> {
        if self.compact_revision > self.current_revision {
            return Err(format!(
                "compact revision {} is past current revision {}",
                self.compact_revision, self.current_revision
            ));
        }
        for (key, index) in &self.index {
            index
                .check()
                .map_err(|e| format!("key {:?}: {e}", String::from_utf8_lossy(key)))?;
            if let Some(last) = index.entries().last()
                && last.revision.main > self.current_revision
            {
                return Err(format!(
                    "key {:?} has revision {} past current revision {}",
                    String::from_utf8_lossy(key),
                    last.revision.main,
                    self.current_revision
                ));
            }
        }
        Ok(())
    }

    /// Checks that the backend holds what this store has in memory: the key index
    /// and the packs rebuilt from it are the ones kept. Reads the whole history;
    /// staged writes must have been committed.
    pub fn check_stored(&self) -> Result<(), String> {
        let (stored, _) = Self::open(self.backend.clone()).map_err(|e| e.to_string())?;
        fn differs<'a>(a: &'a KvStore, b: &KvStore) -> Option<&'a Vec<u8>> {
            a.index
                .iter()
                .find(|(key, index)| b.index.get(*key) != Some(*index))
                .map(|(key, _)| key)
        }
        if let Some(key) = differs(self, &stored).or_else(|| differs(&stored, self)) {
            return Err(format!(
                "the key index of {:?} differs from the one the backend's records make",
                String::from_utf8_lossy(key)
            ));
        }
        if stored.packs != self.packs {
            return Err(format!(
                "{} packs stored, {} known",
                stored.packs.len(),
                self.packs.len()
            ));
        }
        if (stored.current_revision, stored.compact_revision) != (self.current_revision, self.compact_revision) {
            return Err("the stored current or compact revision differs".into());
        }
        Ok(())
    }

    /// Debug-build check of the invariants after every change.
    pub fn debug_validate(&self) {
        if cfg!(debug_assertions)
            && let Err(e) = self.validate()
        {
            panic!("mvcc invariant broken: {e}");
        }
    }
}
