//! The files berth writes and syncs itself (the Raft log's segments, the snapshot,
//! the member record) go through [`Disk`], so that a test can put a disk under them
//! that loses power (`PowerCutDisk`): every write not yet synced is gone, the last
//! one perhaps torn. `kill -9` keeps the page cache and so cannot show a missing
//! sync; a power cut can. sled does its own file I/O beneath the backend; the backend
//! is covered by its applied log id instead (see `backend`).
//!
//! Modes: berth's files are 0600 and its directories 0700, as etcd's, whoever the
//! umask lets read them otherwise.

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

mod os;
#[cfg(test)]
pub(crate) mod power_cut;
#[cfg(test)]
mod tests;

pub use os::{OsDisk, tighten_modes};
#[cfg(test)]
pub(crate) use power_cut::PowerCutDisk;

/// The mode of every file berth creates in a data dir.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory berth creates in a data dir.
pub const DIR_MODE: u32 = 0o700;

/// An open file, read and written at offsets.
pub trait DiskFile: Send + Sync + Debug {
    /// Fills `buf` from `offset`; an error when the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Returns once every write before it is durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    fn size_bytes(&self) -> io::Result<u64>;
    /// Grows the file to `len` bytes (reading as zeros), blocks allocated if possible.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Makes `len` bytes from `offset` read as zeros, keeping the file's size.
    fn clear(&self, offset: u64, len: u64) -> io::Result<()>;
}

pub type SharedFile = Arc<dyn DiskFile>;

/// Files by path, and the directories that hold them. A created, removed or renamed
/// name is durable once its directory is synced.
pub trait Disk: Send + Sync + Debug {
    /// Creates `dir` and its missing parents, mode 0700.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    /// Opens an existing file to read and write.
    fn open(&self, path: &Path) -> io::Result<SharedFile>;
    /// Creates a file (mode 0600), or empties an existing one.
    fn create(&self, path: &Path) -> io::Result<SharedFile>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

pub type SharedDisk = Arc<dyn Disk>;

/// The real disk.
pub fn os() -> SharedDisk {
    Arc::new(OsDisk)
}

/// Reads a whole file.
pub fn read_file(disk: &dyn Disk, path: &Path) -> io::Result<Vec<u8>> {
    let file = disk.open(path)?;
    let mut bytes = vec![0u8; file.size_bytes()? as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old file or the new
/// one: written under a temporary name, synced, renamed, and the directory synced.
pub fn write_atomically(disk: &dyn Disk, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = disk.create(&tmp)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    disk.rename(&tmp, &dir.join(name))?;
    disk.sync_dir(dir)
}
