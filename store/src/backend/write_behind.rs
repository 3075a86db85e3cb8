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

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Backend, BatchOp, Pair, Result, SharedBackend, Tree, WriteBatch};

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

    fn with_limits(inner: SharedBackend, max_gathered: usize, max_delay: Duration) -> Self {
        Self {
            inner,
            gathered: Mutex::new(Gathered {
                ops: BTreeMap::new(),
                since: Instant::now(),
            }),
            max_gathered,
            max_delay,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gathered> {
        self.gathered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the gathered operations to the engine in one atomic batch. The lock is
    /// held throughout, so no reader finds a key in neither place.
    fn write_out(&self, gathered: &mut Gathered) -> Result<()> {
        gathered.since = Instant::now();
        if gathered.ops.is_empty() {
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
        self.inner.write(Tree::State, batch)?;
        gathered.ops.clear();
        Ok(())
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
        self.write_out(&mut gathered)?;
        self.inner.scan(tree, start, end, limit)
    }

    fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>> {
        let mut gathered = self.lock();
        self.write_out(&mut gathered)?;
        self.inner.last(tree, start, end)
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
            self.write_out(&mut gathered)?;
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
