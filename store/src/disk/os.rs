//! The real disk: std's files, `fallocate` where the file system has it, and the
//! modes etcd uses (0600 files, 0700 directories).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use super::{DIR_MODE, Disk, DiskFile, FILE_MODE, SharedFile};

#[derive(Debug, Clone, Copy, Default)]
pub struct OsDisk;

impl DiskFile for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        use rustix::io::Errno;
        match rustix::fs::fallocate(self, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            // A file system without it: a sparse file reads as zeros too. Any other
            // error (no space above all) is the caller's: a file merely set to its
            // length would fail its writes later.
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => self.set_len(len.max(self.size_bytes()?)),
            Err(e) => Err(e.into()),
        }
    }

    fn clear(&self, offset: u64, len: u64) -> io::Result<()> {
        use rustix::fs::FallocateFlags;
        if len == 0 {
            return Ok(());
        }
        let flags = FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE;
        if rustix::fs::fallocate(self, flags, offset, len).is_ok() {
            return Ok(());
        }
        // A file system without it: write the zeros, the last first. A process killed
        // midway then leaves the front of what was to be cleared (a log's tail cut short),
        // never zeros with old records after them, which the log takes for damage. (A
        // power cut persists unsynced pages in any order; ext4 and xfs have the flag.)
        let zeros = vec![0u8; 1 << 20];
        let mut to = offset + len;
        while to > offset {
            let n = (to - offset).min(zeros.len() as u64);
            FileExt::write_all_at(self, &zeros[..n as usize], to - n)?;
            to -= n;
        }
        Ok(())
    }
}

impl Disk for OsDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn open(&self, path: &Path) -> io::Result<SharedFile> {
        Ok(Arc::new(OpenOptions::new().read(true).write(true).open(path)?))
    }

    fn create(&self, path: &Path) -> io::Result<SharedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(path)?;
        // An existing file keeps its mode through `open`.
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
        Ok(Arc::new(file))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Sets every file under `dir` to 0600 and every directory (`dir` too) to 0700, and
/// says how many it changed: data dirs written by earlier versions were 0644/0755, and
/// sled creates its own files with the umask's modes.
pub fn tighten_modes(dir: &Path) -> io::Result<usize> {
    let mut changed = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        let want = if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        if meta.permissions().mode() & 0o777 != want {
            std::fs::set_permissions(&path, Permissions::from_mode(want))?;
            changed += 1;
        }
    }
    Ok(changed)
}
