//! Namespaces kept alive by a bind mount of their nsfs file onto a file of ours (as
//! `ip netns add` does under /run/netns, but in the agent's state dir, so the agent
//! finds its pods' namespaces again after a restart and two agents on one machine
//! keep theirs apart). The pod network holds a pod's network namespace this way, the
//! pod sandbox its IPC and UTS namespaces, which every container of the pod joins.
//!
//! Creating one needs `unshare(2)` on a thread, which is `unsafe` in rustix (it may
//! unshare more than the caller means); berth has no unsafe code, so new namespaces
//! come from util-linux's `unshare --net=FILE --ipc=FILE … true`, which makes them,
//! bind-mounts each onto its file and exits.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::mount::{UnmountFlags, unmount};

/// A kind of namespace, by util-linux's `unshare` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Net,
    Ipc,
    Uts,
}

impl Kind {
    fn option(self) -> &'static str {
        match self {
            Kind::Net => "--net",
            Kind::Ipc => "--ipc",
            Kind::Uts => "--uts",
        }
    }
}

/// Creates one new namespace of each kind, each held by a bind mount at its path
/// (their parents must exist). Kinds whose file already holds a namespace are left as
/// they are; on failure none of the new files stays.
pub fn create(namespaces: &[(Kind, &Path)]) -> io::Result<()> {
    let missing: Vec<(Kind, &Path)> = namespaces.iter().copied().filter(|(_, path)| !is_held(path)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let undo = |missing: &[(Kind, &Path)]| {
        for (_, path) in missing {
            let _ = remove(path);
        }
    };
    let mut command = Command::new("unshare");
    for (kind, path) in &missing {
        if let Err(e) = std::fs::File::create(path) {
            undo(&missing);
            return Err(e);
        }
        command.arg(format!("{}={}", kind.option(), path.display()));
    }
    let made = command.arg("true").stdin(Stdio::null()).output();
    match made {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            undo(&missing);
            Err(io::Error::other(format!(
                "{:?}: {} {}",
                command,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
        Err(e) => {
            undo(&missing);
            Err(io::Error::new(
                e.kind(),
                format!("cannot run unshare (util-linux): {e}"),
            ))
        }
    }
}

/// Whether `path` holds a namespace (a mounted nsfs file), not merely an empty file
/// left by a crash between creating it and mounting onto it.
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    rustix::fs::fstatfs(&file).is_ok_and(|fs| fs.f_type as u64 == NSFS_MAGIC)
}

/// `NSFS_MAGIC` from linux/magic.h: the file system of namespace files.
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Unmounts and removes a namespace file; Ok when it is already gone. The namespace
/// itself ends when nothing else (a process, another mount) holds it.
pub fn remove(path: &Path) -> io::Result<()> {
    // A lazy unmount: a process still inside keeps the namespace, not the file.
    match unmount(path, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
