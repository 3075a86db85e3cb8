//! The on-disk backend: one sled database with a tree per [`Tree`]. sled batches are
//! atomic per tree, and `Db::flush` makes every tree durable at once, so the Raft
//! log's flush also covers state machine writes made before it.

use std::path::Path;

use super::{Backend, BackendError, BatchOp, Pair, Result, Tree, WriteBatch, bounds, is_empty_range};

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
    dir: std::path::PathBuf,
    db: sled::Db,
    trees: [sled::Tree; 2],
    /// The size on disk as last measured, and when (milliseconds since `opened`).
    size: std::sync::atomic::AtomicU64,
    size_measured_ms: std::sync::atomic::AtomicU64,
    opened: std::time::Instant,
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
    /// Opens (or creates) the database in `dir`.
    ///
    /// sled holds a file lock until the last of its background tasks lets go of a
    /// closed database, so a reopen in the same process may briefly find it taken;
    /// that is retried for a while. Another process holding it is still an error.
    pub fn open(dir: &Path) -> Result<Self> {
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
        let size = db.size_on_disk().unwrap_or(0);
        Ok(Self {
            dir: dir.to_path_buf(),
            db,
            trees,
            size: size.into(),
            size_measured_ms: 0.into(),
            opened: std::time::Instant::now(),
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::RaftLog => &self.trees[0],
            Tree::State => &self.trees[1],
        }
    }
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Pair>> {
        if is_empty_range(start, end) {
            return Ok(Vec::new());
        }
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut out = Vec::new();
        for item in self.tree(tree).range(bounds(start, end)).take(limit) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>> {
        if is_empty_range(start, end) {
            return Ok(None);
        }
        match self.tree(tree).range(bounds(start, end)).next_back() {
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((k.to_vec(), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn write(&self, tree: Tree, mut batch: WriteBatch) -> Result<()> {
        // One operation is atomic by itself. sled writes every batch through its
        // "batch manifest", which seals and writes out its current IO buffer twice, each
        // time waking all of its IO threads: a cost a single key need not pay.
        if batch.ops.len() == 1
            && let Some(op) = batch.ops.pop()
        {
            match op {
                BatchOp::Put(k, v) => self.tree(tree).insert(k, v)?,
                BatchOp::Delete(k) => self.tree(tree).remove(k)?,
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
        self.tree(tree).apply_batch(sled_batch)?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        // sled makes new files of its own now and then (its snapshots of the page
        // table), with the umask's modes: brought down to 0600 here, cheaply (a handful
        // of files), and at every open.
        crate::disk::tighten_modes(&self.dir)?;
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
            self.size.store(self.db.size_on_disk().unwrap_or(0), Ordering::Relaxed);
        }
        self.size.load(Ordering::Relaxed)
    }
}
