//! What this replica knows of the space left on its data dir's file system, shared by
//! everything that writes there (the log's segment files, the database, snapshots).
//!
//! A replica whose disk fills must not become a zombie that looks healthy. So a write
//! that fails for want of space (ENOSPC, EDQUOT) is reported here, with the file and
//! the error, instead of stopping the Raft core: while any report stands the replica
//! raises the NOSPACE alarm for itself (at once here, and through the log when it
//! can, see `background`), reports unhealthy, and refuses writes. The writer keeps
//! what it could not write and tries again (`retry`); its success clears its report.
//!
//! The database engine cannot take an I/O error back: once a write of its own fails,
//! every later one fails too. So the state machine's writes do not wait for that:
//! they stop while the free space is under [`RESERVE_BYTES`], and the engine's small
//! writes (the vote, the commit index) have the reserve to themselves.
//!
//! ```text
//!   write fails with ENOSPC, or free < reserve ──► report(file, error) ──► is_full
//!        │                                          (alarm, /health false, writes refused)
//!        └── retry every RETRY_INTERVAL ──► succeeds ──► recovered(file)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// Space the state machine leaves free for the database's own writes: under it, the
/// state waits in memory (the log holds it) until space returns.
pub const RESERVE_BYTES: u64 = 4 * 1024 * 1024;

/// How often a writer that found the disk full tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// True for the errors a full disk or an exhausted quota gives.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(code) if code == libc_enospc() || code == libc_edquot())
}

// The two errno values (Linux); spelled out to need no libc crate.
const fn libc_enospc() -> i32 {
    28
}

const fn libc_edquot() -> i32 {
    122
}

/// Why the disk counts as full: the file that could not be written, and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceReport {
    pub file: String,
    pub error: String,
}

impl std::fmt::Display for SpaceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing {}: {}", self.file, self.error)
    }
}

#[derive(Debug)]
struct Inner {
    /// The data dir, whose file system is measured.
    dir: PathBuf,
    /// File → the error its last write met; empty while every write succeeds.
    reports: Mutex<BTreeMap<String, String>>,
    is_full: watch::Sender<bool>,
    /// The replica is stopping: writers give up waiting for space.
    closing: AtomicBool,
}

/// A shared view of the disk's space. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DiskSpace {
    inner: Arc<Inner>,
}

impl DiskSpace {
    pub fn new(dir: &Path) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                reports: Mutex::new(BTreeMap::new()),
                is_full: watch::Sender::new(false),
                closing: AtomicBool::new(false),
            }),
        }
    }

    fn reports_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.inner.reports.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that writing `file` failed for want of space.
    pub fn report(&self, file: &Path, error: &dyn std::fmt::Display) {
        let file = file.display().to_string();
        let error = error.to_string();
        let is_new = {
            let mut reports = self.reports_lock();
            reports.insert(file.clone(), error.clone()).as_ref() != Some(&error)
        };
        if is_new {
            tracing::error!(%file, %error, "out of disk space: NOSPACE raised; writes are refused until space returns");
        }
        self.inner
            .is_full
            .send_if_modified(|full| !std::mem::replace(full, true));
    }

    /// Records that `file` was written again.
    pub fn recovered(&self, file: &Path) {
        let file = file.display().to_string();
        let now_empty = {
            let mut reports = self.reports_lock();
            if reports.remove(&file).is_none() {
                return;
            }
            reports.is_empty()
        };
        tracing::info!(%file, "disk space returned; writing again");
        if now_empty {
            self.inner
                .is_full
                .send_if_modified(|full| std::mem::replace(full, false));
        }
    }

    pub fn is_full(&self) -> bool {
        *self.inner.is_full.borrow()
    }

    /// What failed, one report per file.
    pub fn reports(&self) -> Vec<SpaceReport> {
        self.reports_lock()
            .iter()
            .map(|(file, error)| SpaceReport {
                file: file.clone(),
                error: error.clone(),
            })
            .collect()
    }

    /// Tells when the disk turns full or stops being so.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.is_full.subscribe()
    }

    /// The replica stops: whoever waits for space gives up.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Relaxed);
    }

    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Relaxed)
    }

    /// Bytes free to an unprivileged writer on the data dir's file system (`None`
    /// when it cannot be measured).
    pub fn free_bytes(&self) -> Option<u64> {
        let stat = rustix::fs::statvfs(&self.inner.dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Refuses a bulk write of `file` while the free space is under the reserve: the
    /// error a full disk would give, before the engine meets it.
    pub fn check_reserve(&self, file: &Path) -> std::io::Result<()> {
        match self.free_bytes() {
            Some(free) if free < RESERVE_BYTES => {
                let error = std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "{} has {free} bytes free, under the {RESERVE_BYTES} bytes kept in reserve",
                        self.inner.dir.display()
                    ),
                );
                self.report(file, &error);
                Err(error)
            }
            _ => Ok(()),
        }
    }
}

/// A small tmpfs for tests of a full disk (root only).
#[cfg(test)]
pub(crate) mod tmpfs {
    use std::process::Command;

    /// A tmpfs mounted on a temporary dir for the life of the value.
    pub struct Tmpfs(tempfile::TempDir);

    impl Tmpfs {
        /// Mounts one of `size` (`40m`, say); why not, when it cannot.
        pub fn mount(size: &str) -> Result<Tmpfs, String> {
            if !rustix::process::geteuid().is_root() {
                return Err("mounting a tmpfs needs root".into());
            }
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let output = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .output()
                .map_err(|e| e.to_string())?;
            if !output.status.success() {
                return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
            }
            Ok(Tmpfs(dir))
        }

        pub fn path(&self) -> &std::path::Path {
            self.0.path()
        }

        /// Writes a file until the tmpfs is full; returns its path.
        pub fn fill(&self) -> std::path::PathBuf {
            use std::io::Write;
            let path = self.path().join("filler");
            let mut file = std::fs::File::create(&path).unwrap();
            while file.write_all(&[0u8; 64 * 1024]).is_ok() {}
            path
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_is_full_while_any_file_could_not_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(dir.path());
        let changes = space.subscribe();
        assert!(!space.is_full());
        let enospc = std::io::Error::from_raw_os_error(28);
        assert!(is_out_of_space(&enospc));
        space.report(Path::new("wal/0001.wal"), &enospc);
        space.report(Path::new("db"), &"no space");
        assert!(space.is_full());
        assert!(*changes.borrow());
        assert_eq!(space.reports().len(), 2);
        assert!(space.reports()[1].to_string().contains("wal/0001.wal"));

        space.recovered(Path::new("wal/0001.wal"));
        assert!(space.is_full(), "the database could still not be written");
        space.recovered(Path::new("db"));
        assert!(!space.is_full());
        assert!(space.reports().is_empty());
    }

    #[test]
    fn other_errors_are_not_a_full_disk() {
        assert!(!is_out_of_space(&std::io::Error::from_raw_os_error(5)));
        assert!(!is_out_of_space(&std::io::Error::other("boom")));
    }

    #[test]
    fn the_free_space_of_the_data_dir_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(dir.path());
        assert!(space.free_bytes().is_some());
    }
}
