//! The storage backend: a few ordered byte-keyed trees with atomic batches and an
//! explicit flush. The state machine and the Raft log's metadata (vote, committed and
//! purged log ids) are written through this trait only; nothing else in the store
//! knows which engine sits underneath. The log's entries have segment files of their
//! own (`raft::wal`).
//!
//! Durability contract: `write` makes a batch atomic (all or none of it survives a
//! crash) but not durable; `flush` returns once every batch written before it is on
//! disk. The Raft log calls `flush` before it acknowledges a vote and before it drops
//! entries that a purge covers.

#[cfg(test)]
mod damage_tests;
mod defragmentation;
mod memory;
#[cfg(test)]
mod power_cut;
mod sled_backend;
mod write_behind;

#[cfg(test)]
mod conformance;

use std::ops::Bound;
use std::sync::Arc;

pub use memory::MemoryBackend;
#[cfg(test)]
pub(crate) use power_cut::PowerCutBackend;
pub use sled_backend::SledBackend;
pub use write_behind::WriteBehind;

/// The trees a backend keeps. Each is an independent ordered key space; a batch
/// touches one tree, so the data that must change together lives in one tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// The vote, the committed and purged log ids (and, from earlier versions, log
    /// entries, moved to the segment files at start).
    RaftLog,
    /// The state machine: MVCC revisions, leases, the applied log id, membership.
    State,
}

impl Tree {
    pub const ALL: [Tree; 2] = [Tree::RaftLog, Tree::State];

    pub fn name(self) -> &'static str {
        match self {
            Tree::RaftLog => "raft_log",
            Tree::State => "state",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("data directory {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Operations applied to one tree all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<BatchOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put(key.into(), value.into()));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete(key.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// A key/value pair read from a tree.
pub type Pair = (Vec<u8>, Vec<u8>);

pub trait Backend: Send + Sync + 'static {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Pairs with `start <= key < end` (no end: to the end of the tree), in key order,
    /// at most `limit` of them (0: no limit).
    fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Pair>>;

    /// The pair with the greatest key in `[start, end)`.
    fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>>;

    /// Applies a batch atomically.
    fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()>;

    /// Returns once everything written before the call is durable.
    fn flush(&self) -> Result<()>;

    /// Bytes the backend occupies on disk (or in memory, for the memory backend).
    fn size_bytes(&self) -> u64;

    /// Gives back the space that overwritten and deleted data still occupies
    /// (`etcdctl defrag`). Everything written before the call stays, durably; other
    /// calls wait meanwhile. The memory backend has nothing to give back.
    fn defragment(&self) -> Result<()> {
        Ok(())
    }
}

pub type SharedBackend = Arc<dyn Backend>;

/// Opens the on-disk backend the store runs on, in `dir`.
pub fn open_on_disk(dir: &std::path::Path) -> Result<SharedBackend> {
    Ok(Arc::new(SledBackend::open(dir)?))
}

/// Turns `[start, end)` into the bounds both engines understand.
pub(crate) fn bounds(start: &[u8], end: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let upper = match end {
        Some(end) => Bound::Excluded(end.to_vec()),
        None => Bound::Unbounded,
    };
    (Bound::Included(start.to_vec()), upper)
}

/// True when `[start, end)` is empty, which both engines would reject or mishandle.
pub(crate) fn is_empty_range(start: &[u8], end: Option<&[u8]>) -> bool {
    matches!(end, Some(end) if end <= start)
}
