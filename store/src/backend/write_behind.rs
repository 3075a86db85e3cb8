//! The state machine's view of the backend: its writes gather in memory and reach the
//! engine a few milliseconds later, many applies in one atomic batch, as etcd's backend
//! commits its batch transaction every 100 ms rather than per request.
//!
//! The state machine can afford this because the Raft log, flushed before any write
//! is acknowledged, holds every entry the state was built from: after a crash the
//! applied log id on disk is older, and openraft applies the entries after it again.
//! Each batch the state machine writes carries its applied log id, and the gathered
//! batches go to the engine together, so the state on disk is always exactly some
//! applied log id's.
//!
//! Reads see the gathered writes: `get` looks in memory first; a `scan` or `last`
//! (history reads, hashes, snapshots, rare) writes them out first and then reads the
//! engine. `flush` writes them out and flushes, so a snapshot, and anything the log
//! purges after it, is covered on disk.
//!
//! Only the `State` tree is gathered; a write to another tree goes through at once,
//! after the gathered writes, so the engine sees writes in the order they were made.
//!
//! A full disk (see `disk_space`) stops the write-outs, not the state machine: while
//! the free space is under the reserve the writes stay gathered, reads overlay them
//! on the engine's, and the next write-out once space returns takes them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Backend, BackendError, BatchOp, Pair, Result, SharedBackend, Tree, WriteBatch};
use crate::disk_space::{DiskSpace, is_out_of_space};

/// Gathered operations that make a write-out due at once.
const MAX_GATHERED: usize = 4096;
/// How long gathered writes may wait for a write-out, at most, while writes arrive.
const MAX_DELAY: Duration = Duration::from_millis(50);

struct Gathered {
    /// Key → value, or `None` for a delete; the last write of a key wins.
    ops: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    since: Instant,
}

pub struct WriteBehind {
    inner: SharedBackend,
    gathered: Mutex<Gathered>,
    max_gathered: usize,
    max_delay: Duration,
    /// The disk the engine writes to, and the engine's files there: write-outs stop
    /// while it is (nearly) full.
    space: Option<(DiskSpace, PathBuf)>,
}

fn is_out_of_space_error(e: &BackendError) -> bool {
    matches!(e, BackendError::Io(io) if is_out_of_space(io))
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind").finish_non_exhaustive()
    }
}

impl WriteBehind {
    pub fn new(inner: SharedBackend) -> Self {
        Self::with_limits(inner, MAX_GATHERED, MAX_DELAY)
    }

    /// Writes behind into `inner`, whose files are at `path`, and stops writing out
    /// while `space` says the disk is (nearly) full.
    pub fn watching_space(inner: SharedBackend, space: DiskSpace, path: &Path) -> Self {
        let mut behind = Self::new(inner);
        behind.space = Some((space, path.to_path_buf()));
        behind
    }

    /// Reports the disk full when its free space is under the reserve, before a
    /// write-out has to find out.
    pub fn check_space(&self) {
        if let Some((space, path)) = &self.space {
            let _ = space.check_reserve(path);
        }
    }

    pub fn disk_space(&self) -> Option<DiskSpace> {
        self.space.as_ref().map(|(space, _)| space.clone())
    }

    fn with_limits(inner: SharedBackend, max_gathered: usize, max_delay: Duration) -> Self {
        Self {
            inner,
            gathered: Mutex::new(Gathered {
                ops: BTreeMap::new(),
                since: Instant::now(),
            }),
            max_gathered,
            max_delay,
            space: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gathered> {
        self.gathered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the gathered operations to the engine in one atomic batch. The lock is
    /// held throughout, so no reader finds a key in neither place.
    fn write_out(&self, gathered: &mut Gathered) -> Result<()> {
        gathered.since = Instant::now();
        // With nothing gathered there is nothing to write, unless the disk was full:
        // then this is also how the database learns that space returned.
        let is_waiting_for_space = self.space.as_ref().is_some_and(|(space, _)| space.is_full());
        if gathered.ops.is_empty() && !is_waiting_for_space {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for (key, value) in &gathered.ops {
            match value {
                Some(value) => batch.put(key.clone(), value.clone()),
                None => batch.delete(key.clone()),
            }
        }
        // On failure the operations stay gathered, for the next write-out.
        if let Some((space, path)) = &self.space {
            space.check_reserve(path)?;
            if let Err(e) = self.write_batch(batch) {
                if is_out_of_space_error(&e) {
                    space.report(path, &e);
                }
                return Err(e);
            }
            space.recovered(path);
        } else {
            self.inner.write(Tree::State, batch)?;
        }
        gathered.ops.clear();
        Ok(())
    }

    /// Writes out what is gathered; short of space, leaves it gathered and says so
    /// (`false`) instead of failing.
    fn write_out_if_room(&self, gathered: &mut Gathered) -> Result<bool> {
        match self.write_out(gathered) {
            Ok(()) => Ok(true),
            Err(e) if is_out_of_space_error(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The engine's pairs in `[start, end)` with the gathered writes laid over them,
    /// for reads while the disk is full.
    fn overlay(&self, gathered: &Gathered, start: &[u8], end: Option<&[u8]>) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut pairs: BTreeMap<Vec<u8>, Vec<u8>> = self.inner.scan(Tree::State, start, end, 0)?.into_iter().collect();
        for (key, value) in gathered.ops.range(super::bounds(start, end)) {
            match value {
                Some(value) => pairs.insert(key.clone(), value.clone()),
                None => pairs.remove(key),
            };
        }
        Ok(pairs)
    }

    fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.inner.write(Tree::State, batch)
    }

    /// Writes the gathered operations out now.
    pub fn write_out_now(&self) -> Result<()> {
        let mut gathered = self.lock();
        self.write_out(&mut gathered)
    }
}

impl Backend for WriteBehind {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if tree == Tree::State
            && let Some(value) = self.lock().ops.get(key)
        {
            return Ok(value.clone());
        }
        self.inner.get(tree, key)
    }

    fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Pair>> {
        let mut gathered = self.lock();
        if tree != Tree::State || self.write_out_if_room(&mut gathered)? || super::is_empty_range(start, end) {
            return self.inner.scan(tree, start, end, limit);
        }
        let limit = if limit == 0 { usize::MAX } else { limit };
        Ok(self.overlay(&gathered, start, end)?.into_iter().take(limit).collect())
    }

    fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>> {
        let mut gathered = self.lock();
        if tree != Tree::State || self.write_out_if_room(&mut gathered)? || super::is_empty_range(start, end) {
            return self.inner.last(tree, start, end);
        }
        Ok(self.overlay(&gathered, start, end)?.into_iter().next_back())
    }

    fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()> {
        let mut gathered = self.lock();
        if tree != Tree::State {
            self.write_out(&mut gathered)?;
            return self.inner.write(tree, batch);
        }
        for op in batch.ops {
            match op {
                BatchOp::Put(key, value) => gathered.ops.insert(key, Some(value)),
                BatchOp::Delete(key) => gathered.ops.insert(key, None),
            };
        }
        if gathered.ops.len() >= self.max_gathered || gathered.since.elapsed() >= self.max_delay {
            // Short of space the writes wait here; the log holds them meanwhile.
            self.write_out_if_room(&mut gathered)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.write_out_now()?;
        self.inner.flush()
    }

    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    /// Writes the gathered operations out, then defragments the engine; writes made
    /// meanwhile wait for it.
    fn defragment(&self) -> Result<()> {
        let mut gathered = self.lock();
        self.write_out(&mut gathered)?;
        self.inner.defragment()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::MemoryBackend;

    const NEVER: Duration = Duration::from_secs(3600);

    fn put(key: &[u8], value: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(key.to_vec(), value.to_vec());
        batch
    }

    #[test]
    fn gathered_writes_are_read_back_before_they_reach_the_engine() {
        let engine: SharedBackend = Arc::new(MemoryBackend::new());
        let behind = WriteBehind::with_limits(engine.clone(), MAX_GATHERED, NEVER);
        behind.write(Tree::State, put(b"a", b"1")).unwrap();
        let mut delete = WriteBatch::new();
        delete.delete(b"a".to_vec());
        behind.write(Tree::State, put(b"b", b"2")).unwrap();
        assert_eq!(engine.get(Tree::State, b"b").unwrap(), None, "written out too early");
        assert_eq!(behind.get(Tree::State, b"b").unwrap(), Some(b"2".to_vec()));
        behind.write(Tree::State, delete).unwrap();
        assert_eq!(
            behind.get(Tree::State, b"a").unwrap(),
            None,
            "a gathered delete hides the key"
        );
    }

    #[test]
    fn scans_and_flushes_write_everything_out_in_order() {
        let engine: SharedBackend = Arc::new(MemoryBackend::new());
        let behind = WriteBehind::with_limits(engine.clone(), MAX_GATHERED, NEVER);
        behind.write(Tree::State, put(b"k", b"old")).unwrap();
        behind.write(Tree::State, put(b"k", b"new")).unwrap();
        behind.write(Tree::State, put(b"j", b"x")).unwrap();
        let pairs = behind.scan(Tree::State, b"", None, 0).unwrap();
        assert_eq!(
            pairs,
            vec![(b"j".to_vec(), b"x".to_vec()), (b"k".to_vec(), b"new".to_vec())]
        );
        behind.write(Tree::State, put(b"z", b"1")).unwrap();
        behind.flush().unwrap();
        assert_eq!(engine.get(Tree::State, b"z").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn another_tree_is_written_through_after_what_was_gathered() {
        let engine: SharedBackend = Arc::new(MemoryBackend::new());
        let behind = WriteBehind::with_limits(engine.clone(), MAX_GATHERED, NEVER);
        behind.write(Tree::State, put(b"s", b"1")).unwrap();
        behind.write(Tree::RaftLog, put(b"l", b"1")).unwrap();
        assert_eq!(engine.get(Tree::RaftLog, b"l").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get(Tree::State, b"s").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn many_writes_or_a_late_one_trigger_a_write_out() {
        let engine: SharedBackend = Arc::new(MemoryBackend::new());
        let behind = WriteBehind::with_limits(engine.clone(), 100, NEVER);
        for i in 0..99 {
            behind
                .write(Tree::State, put(format!("k{i:03}").as_bytes(), b"v"))
                .unwrap();
        }
        assert!(engine.scan(Tree::State, b"", None, 0).unwrap().is_empty());
        behind.write(Tree::State, put(b"k099", b"v")).unwrap();
        assert_eq!(engine.scan(Tree::State, b"", None, 0).unwrap().len(), 100);

        let delay = Duration::from_millis(20);
        let behind = WriteBehind::with_limits(engine.clone(), 100, delay);
        behind.write(Tree::State, put(b"late", b"v")).unwrap();
        std::thread::sleep(delay);
        behind.write(Tree::State, put(b"later", b"v")).unwrap();
        assert_eq!(engine.get(Tree::State, b"late").unwrap(), Some(b"v".to_vec()));
        assert_eq!(engine.get(Tree::State, b"later").unwrap(), Some(b"v".to_vec()));
    }
}

#[cfg(test)]
mod out_of_space_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::backend::MemoryBackend;

    /// An engine whose writes fail as on a full disk while `is_full` is set.
    struct FullDisk {
        inner: MemoryBackend,
        is_full: AtomicBool,
    }

    impl Backend for FullDisk {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(tree, key)
        }
        fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Pair>> {
            self.inner.scan(tree, start, end, limit)
        }
        fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>> {
            self.inner.last(tree, start, end)
        }
        fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()> {
            if self.is_full.load(Ordering::Relaxed) {
                return Err(BackendError::Io(std::io::Error::from_raw_os_error(28)));
            }
            self.inner.write(tree, batch)
        }
        fn flush(&self) -> Result<()> {
            Ok(())
        }
        fn size_bytes(&self) -> u64 {
            0
        }
    }

    fn put(key: &[u8], value: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(key.to_vec(), value.to_vec());
        batch
    }

    #[test]
    fn on_a_full_disk_writes_wait_in_memory_reads_see_them_and_space_returning_writes_them_out() {
        let engine = Arc::new(FullDisk {
            inner: MemoryBackend::new(),
            is_full: AtomicBool::new(false),
        });
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(dir.path());
        let db = dir.path().join("db");
        let behind = WriteBehind::watching_space(engine.clone(), space.clone(), &db);
        behind.write(Tree::State, put(b"a", b"1")).unwrap();
        behind.write(Tree::State, put(b"c", b"3")).unwrap();
        behind.write_out_now().unwrap();

        engine.is_full.store(true, Ordering::Relaxed);
        behind.write(Tree::State, put(b"b", b"2")).unwrap();
        let mut delete = WriteBatch::new();
        delete.delete(b"c".to_vec());
        behind.write(Tree::State, delete).unwrap();
        let error = behind.write_out_now().unwrap_err();
        assert!(is_out_of_space_error(&error), "{error}");
        assert!(space.is_full());
        assert_eq!(space.reports()[0].file, db.display().to_string());
        // Reads lay what waits over what the engine holds.
        let pairs = behind.scan(Tree::State, b"", None, 0).unwrap();
        assert_eq!(
            pairs,
            vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]
        );
        assert_eq!(behind.scan(Tree::State, b"", None, 1).unwrap().len(), 1);
        assert_eq!(
            behind.last(Tree::State, b"", None).unwrap(),
            Some((b"b".to_vec(), b"2".to_vec()))
        );

        engine.is_full.store(false, Ordering::Relaxed);
        behind.write_out_now().unwrap();
        assert!(!space.is_full(), "space returned but the disk is still reported full");
        assert_eq!(engine.get(Tree::State, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(engine.get(Tree::State, b"c").unwrap(), None);
    }
}
