//! Unpacking one layer blob (a tar, gzip-compressed or not) into a directory of its
//! own that overlayfs stacks with the image's other layers.
//!
//! A layer is a diff against the layers below it, and OCI marks deletions with
//! whiteout entries. Since the layers stay separate and overlayfs joins them, the
//! markers are written in overlayfs's own form rather than applied:
//!
//! ```text
//!   tar entry              written as                          hides in lower layers
//!   dir/.wh.name           dir/name: character device 0/0      dir/name
//!   dir/.wh..wh..opq       dir: xattr trusted.overlay.opaque=y everything under dir
//! ```
//!
//! As OCI says, a whiteout hides only what lower layers hold: an entry of the same
//! layer at the same path wins over it. Entries are refused when their path leaves
//! the layer directory (`..`) or passes through a symbolic link (which could point
//! anywhere on the host), and hard links must point at entries of the same layer.
//! Owners, modes, times, extended attributes (`SCHILY.xattr.*`), devices, FIFOs,
//! symbolic and hard links are kept, as runtimes need them.
//!
//! The uncompressed stream is hashed as it is read: its digest is the layer's
//! `diff_id`, checked against the one the image config lists.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};

use super::digest::{Digest, HashingReader, mismatch};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Tells the compression by the stream's first bytes rather than by the media type:
/// `docker save` archives and some registries label layers loosely.
fn sniff(file: &mut File) -> io::Result<Compression> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        let read = file.read(&mut magic[n..])?;
        if read == 0 {
            break;
        }
        n += read;
    }
    file.rewind()?;
    Ok(match magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// Unpacks the layer at `blob` into `dest` (an empty directory) and checks that
/// the uncompressed tar's digest is `diff_id`. Gives the bytes of file content
/// written. On an error `dest` is left half-written for the caller to remove.
pub fn unpack_layer(blob: &Path, dest: &Path, diff_id: &Digest) -> Result<u64, String> {
    let mut file = File::open(blob).map_err(|e| format!("open layer {}: {e}", blob.display()))?;
    let compression = sniff(&mut file).map_err(|e| format!("read layer: {e}"))?;
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => return Err(format!("layer {diff_id}: zstd-compressed layers are not supported")),
    };
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    let size = Unpacker {
        dest,
        is_root: rustix::process::geteuid().is_root(),
        dirs: Vec::new(),
    }
    .unpack(&mut archive)
    .map_err(|e| format!("unpack layer {diff_id}: {e}"))?;
    let actual = archive
        .into_inner()
        .finish()
        .map_err(|e| format!("unpack layer {diff_id}: {e}"))?;
    if &actual != diff_id {
        return Err(mismatch("layer diff_id", diff_id, &actual));
    }
    Ok(size)
}

struct Unpacker<'a> {
    dest: &'a Path,
    /// Owners and device nodes need root; without it files stay the caller's.
    is_root: bool,
    /// Directories and their modification times, set last: creating entries in a
    /// directory changes its time.
    dirs: Vec<(PathBuf, u64)>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The entry's path as normal components, or an error when it climbs out (`..`).
/// Leading `/` and `./` are dropped, as tar does.
fn clean(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(format!("entry {} escapes the layer directory", path.display())));
            }
        }
    }
    Ok(out)
}

impl Unpacker<'_> {
    fn unpack<R: Read>(mut self, archive: &mut tar::Archive<R>) -> io::Result<u64> {
        let mut size = 0;
        for entry in archive.entries()? {
            let mut entry = entry?;
            size += self.entry(&mut entry)?;
        }
        // Deepest first, so that setting a parent's time comes after its children's.
        self.dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (dir, mtime) in &self.dirs {
            set_mtime(dir, *mtime)?;
        }
        Ok(size)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> io::Result<u64> {
        let rel = clean(&entry.path()?)?;
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            return Ok(0);
        }
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            // The archive's root ("./"): the layer directory itself keeps its mode.
            return Ok(0);
        };
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        self.ensure_parents(&parent)?;
        let dir = self.dest.join(&parent);
        if name == OPAQUE_MARKER {
            rustix::fs::lsetxattr(&dir, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
                .map_err(|e| io::Error::other(format!("mark {} opaque ({OPAQUE_XATTR}): {e}", rel.display())))?;
            return Ok(0);
        }
        if name.starts_with(".wh..wh.") {
            // AUFS's own bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to apply.
            return Ok(0);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target = dir.join(hidden);
            if target.symlink_metadata().is_ok() {
                return Ok(0);
            }
            rustix::fs::mknodat(CWD, &target, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(|e| io::Error::other(format!("write whiteout for {}: {e}", parent.join(hidden).display())))?;
            return Ok(0);
        }
        let path = self.dest.join(&rel);
        let header = entry.header().clone();
        let mode = header.mode()? & 0o7777;
        let mut written = 0;
        match kind {
            tar::EntryType::Directory => {
                match path.symlink_metadata() {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove(&path)?;
                        fs::create_dir(&path)?;
                    }
                    Err(_) => fs::create_dir(&path)?,
                }
                self.dirs.push((path.clone(), header.mtime()?));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                remove(&path)?;
                let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
                written = io::copy(entry, &mut file)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| invalid(format!("symlink {} has no target", rel.display())))?;
                remove(&path)?;
                std::os::unix::fs::symlink(&target, &path)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| invalid(format!("hard link {} has no target", rel.display())))?;
                let target = clean(&target)?;
                self.check_no_symlink_in(target.parent().unwrap_or(Path::new("")))?;
                let source = self.dest.join(&target);
                if source.symlink_metadata().is_err() {
                    return Err(invalid(format!(
                        "hard link {} points at {}, which is not in the layer",
                        rel.display(),
                        target.display()
                    )));
                }
                remove(&path)?;
                fs::hard_link(&source, &path)?;
                return Ok(0);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let device =
                    rustix::fs::makedev(header.device_major()?.unwrap_or(0), header.device_minor()?.unwrap_or(0));
                remove(&path)?;
                rustix::fs::mknodat(CWD, &path, file_type, Mode::from_raw_mode(mode), device)
                    .map_err(|e| io::Error::other(format!("create device {}: {e}", rel.display())))?;
            }
            other => {
                return Err(invalid(format!(
                    "entry {} has an unsupported type {other:?}",
                    rel.display()
                )));
            }
        }
        self.apply_metadata(entry, &header, &path, mode)?;
        Ok(written)
    }

    /// Creates missing parent directories (0755, as Docker does) and refuses a parent
    /// that is a symbolic link.
    fn ensure_parents(&self, parent: &Path) -> io::Result<()> {
        let mut at = self.dest.to_path_buf();
        for component in parent.components() {
            at.push(component);
            match at.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(invalid(format!(
                        "entry under {} passes through a symbolic link",
                        parent.display()
                    )));
                }
                Ok(_) => return Err(invalid(format!("{} is not a directory", parent.display()))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&at)?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn check_no_symlink_in(&self, dir: &Path) -> io::Result<()> {
        let mut at = self.dest.to_path_buf();
        for component in dir.components() {
            at.push(component);
            if at.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(invalid(format!(
                    "hard link target under {} passes through a symbolic link",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    fn apply_metadata<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        header: &tar::Header,
        path: &Path,
        mode: u32,
    ) -> io::Result<()> {
        let is_symlink = header.entry_type() == tar::EntryType::Symlink;
        if self.is_root {
            let uid = rustix::process::Uid::from_raw(header.uid()? as u32);
            let gid = rustix::process::Gid::from_raw(header.gid()? as u32);
            rustix::fs::chownat(CWD, path, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        if let Some(extensions) = entry.pax_extensions()? {
            for extension in extensions {
                let extension = extension?;
                let Some(name) = extension.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) else {
                    continue;
                };
                // A layer does not get to write overlayfs's own markers.
                if name.starts_with("trusted.overlay.") {
                    continue;
                }
                match rustix::fs::lsetxattr(path, name, extension.value_bytes(), rustix::fs::XattrFlags::empty()) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::OPNOTSUPP) => {
                        tracing::debug!(path = %path.display(), name, "extended attribute not supported here");
                    }
                    Err(e) => return Err(io::Error::other(format!("set {name} on {}: {e}", path.display()))),
                }
            }
        }
        if !is_symlink {
            // After chown, which clears set-user-ID bits.
            rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(mode), AtFlags::empty())?;
        }
        if header.entry_type() != tar::EntryType::Directory {
            set_mtime(path, header.mtime()?)?;
        }
        Ok(())
    }
}

/// Removes whatever is at `path` (a directory with its contents); nothing there is fine.
fn remove(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_mtime(path: &Path, mtime_secs: u64) -> io::Result<()> {
    let time = Timespec {
        tv_sec: mtime_secs as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
