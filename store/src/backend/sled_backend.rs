//! The on-disk backend: one sled database with a tree per [`Tree`]. sled batches are
//! atomic per tree, and `Db::flush` makes every tree durable at once, so the Raft
//! log's flush also covers state machine writes made before it.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use super::{Backend, BackendError, BatchOp, Pair, Result, Tree, WriteBatch, bounds, defragmentation, is_empty_range};

/// How long `open` waits for a lock that a closed database in this process still holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What sled keeps of the database in memory (its default is 1 GiB). The hot data is
/// small: the log's tail, the newest revisions and their index nodes; history and the
/// replicated log are read rarely.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How stale the size reported by `size_bytes` may be. sled measures its size by
/// listing and stat-ing its files, too costly for every write's quota check.
const SIZE_REFRESH: std::time::Duration = std::time::Duration::from_millis(250);

pub struct SledBackend {
    dir: PathBuf,
    /// The open database; replaced whole by a defragmentation (see `defragmentation`),
    /// which holds the write lock throughout. `None` only after a defragmentation
    /// failed halfway, when every call reports that.
    engine: RwLock<Option<Engine>>,
    /// The size on disk as last measured, and when (milliseconds since `opened`).
    size: std::sync::atomic::AtomicU64,
    size_measured_ms: std::sync::atomic::AtomicU64,
    opened: std::time::Instant,
}

/// One open sled database and its trees.
pub(super) struct Engine {
    pub(super) db: sled::Db,
    trees: [sled::Tree; 2],
}

impl Engine {
    pub(super) fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::RaftLog => &self.trees[0],
            Tree::State => &self.trees[1],
        }
    }

    /// Opens (or creates) the database in `dir`.
    ///
    /// sled holds a file lock until the last of its background tasks lets go of a
    /// closed database, so a reopen in the same process may briefly find it taken;
    /// that is retried for a while. Another process holding it is still an error.
    pub(super) fn open(dir: &Path) -> Result<Self> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match Self::open_once(dir) {
                Err(BackendError::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(BackendError::Io(std::io::Error::other(format!(
                            "{}: the database is in use by another process ({e})",
                            dir.display()
                        ))));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    fn open_once(dir: &Path) -> Result<Self> {
        // sled would make its directory 0755 and its files with the umask's modes.
        crate::disk::Disk::create_dir_all(&crate::disk::OsDisk, dir)?;
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            // Durability comes from explicit flushes, never from a timer.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match BackendError::from(e) {
                BackendError::Corrupt { reason, .. } => BackendError::Corrupt {
                    path: dir.display().to_string(),
                    reason,
                },
                other => other,
            })?;
        let trees = [db.open_tree(Tree::RaftLog.name())?, db.open_tree(Tree::State.name())?];
        crate::disk::tighten_modes(dir)?;
        Ok(Self { db, trees })
    }
}

impl std::fmt::Debug for SledBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBackend").finish_non_exhaustive()
    }
}

impl From<sled::Error> for BackendError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => BackendError::Io(io),
            sled::Error::Corruption { at, .. } => BackendError::Corrupt {
                path: String::new(),
                reason: format!("sled reports corruption at {at:?}"),
            },
            other => BackendError::Engine(other.to_string()),
        }
    }
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`, finishing or undoing a
    /// defragmentation that a crash interrupted.
    pub fn open(dir: &Path) -> Result<Self> {
        defragmentation::recover(dir)?;
        let engine = Engine::open(dir)?;
        let size = engine.db.size_on_disk().unwrap_or(0);
        Ok(Self {
            dir: dir.to_path_buf(),
            engine: RwLock::new(Some(engine)),
            size: size.into(),
            size_measured_ms: 0.into(),
            opened: std::time::Instant::now(),
        })
    }

    fn engine(&self) -> Result<RwLockReadGuard<'_, Option<Engine>>> {
        let guard = self.engine.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(closed());
        }
        Ok(guard)
    }
}

fn closed() -> BackendError {
    BackendError::Engine("the database was closed by a failed defragmentation; restart the replica".into())
}

/// The engine behind a read guard that `SledBackend::engine` checked.
fn open_engine<'a>(guard: &'a RwLockReadGuard<'_, Option<Engine>>) -> &'a Engine {
    guard.as_ref().expect("checked by SledBackend::engine")
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let guard = self.engine()?;
        Ok(open_engine(&guard).tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Pair>> {
        if is_empty_range(start, end) {
            return Ok(Vec::new());
        }
        let limit = if limit == 0 { usize::MAX } else { limit };
        let guard = self.engine()?;
        let mut out = Vec::new();
        for item in open_engine(&guard).tree(tree).range(bounds(start, end)).take(limit) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>> {
        if is_empty_range(start, end) {
            return Ok(None);
        }
        let guard = self.engine()?;
        match open_engine(&guard).tree(tree).range(bounds(start, end)).next_back() {
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((k.to_vec(), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn write(&self, tree: Tree, mut batch: WriteBatch) -> Result<()> {
        let guard = self.engine()?;
        let sled_tree = open_engine(&guard).tree(tree);
        // One operation is atomic by itself. sled writes every batch through its
        // "batch manifest", which seals and writes out its current IO buffer twice, each
        // time waking all of its IO threads: a cost a single key need not pay.
        if batch.ops.len() == 1
            && let Some(op) = batch.ops.pop()
        {
            match op {
                BatchOp::Put(k, v) => sled_tree.insert(k, v)?,
                BatchOp::Delete(k) => sled_tree.remove(k)?,
            };
            return Ok(());
        }
        let mut sled_batch = sled::Batch::default();
        for op in batch.ops {
            match op {
                BatchOp::Put(k, v) => sled_batch.insert(k, v),
                BatchOp::Delete(k) => sled_batch.remove(k),
            }
        }
        sled_tree.apply_batch(sled_batch)?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        open_engine(&self.engine()?).db.flush()?;
        // sled makes new files of its own now and then (its snapshots of the page
        // table), with the umask's modes: brought down to 0600 here, cheaply (a handful
        // of files), and at every open.
        crate::disk::tighten_modes(&self.dir)?;
        Ok(())
    }

    /// Rewrites the database into a fresh one and swaps it in (see
    /// `defragmentation`); every other call waits meanwhile.
    fn defragment(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let mut engine = self.engine.write().unwrap_or_else(|p| p.into_inner());
        // A failure while copying leaves the database as it was.
        defragmentation::copy_into_fresh(&self.dir, engine.as_ref().ok_or_else(closed)?)?;
        let old = engine.take().ok_or_else(closed)?;
        let fresh = defragmentation::swap(&self.dir, old)?;
        self.size.store(fresh.db.size_on_disk().unwrap_or(0), Ordering::Relaxed);
        *engine = Some(fresh);
        Ok(())
    }

    /// The size on disk, measured at most every `SIZE_REFRESH`.
    fn size_bytes(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let now = self.opened.elapsed().as_millis() as u64;
        let measured = self.size_measured_ms.load(Ordering::Relaxed);
        // One caller measures; the others use the last measurement meanwhile.
        if now.saturating_sub(measured) >= SIZE_REFRESH.as_millis() as u64
            && self
                .size_measured_ms
                .compare_exchange(measured, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let measured = self
                .engine()
                .map(|guard| open_engine(&guard).db.size_on_disk().unwrap_or(0));
            if let Ok(size) = measured {
                self.size.store(size, Ordering::Relaxed);
            }
        }
        self.size.load(Ordering::Relaxed)
    }
}
