//! Named network namespaces: a namespace kept alive by a bind mount of its nsfs
//! file onto a file of ours (as `ip netns add` does under /run/netns, but in the
//! agent's state dir, so the agent finds its pods' namespaces again after a restart
//! and two agents on one machine keep theirs apart).
//!
//! Creating one needs `unshare(2)` on a thread, which is `unsafe` in rustix (it may
//! unshare more than the caller means); berth has no unsafe code, so the new
//! namespace comes from util-linux's `unshare --net=FILE true`, which makes the
//! namespace, bind-mounts it onto FILE and exits. Entering one (`setns(2)`) is safe:
//! [`in_netns`] runs a closure on a fresh thread moved into the namespace, and a
//! process that thread spawns starts inside it too (namespaces are per thread and a
//! child inherits its creator's).

use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use rustix::mount::{UnmountFlags, unmount};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Creates a network namespace held by a bind mount at `path` (its parent must
/// exist). An existing namespace file is left as it is.
pub fn create(path: &Path) -> io::Result<()> {
    if is_netns(path) {
        return Ok(());
    }
    std::fs::File::create(path)?;
    let made = Command::new("unshare")
        .arg(format!("--net={}", path.display()))
        .arg("true")
        .stdin(Stdio::null())
        .output();
    match made {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let _ = std::fs::remove_file(path);
            Err(io::Error::other(format!(
                "unshare --net={}: {} {}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(io::Error::new(
                e.kind(),
                format!("cannot run unshare (util-linux): {e}"),
            ))
        }
    }
}

/// Whether `path` holds a network namespace (a mounted nsfs file), not merely an
/// empty file left by a crash between creating it and mounting onto it.
pub fn is_netns(path: &Path) -> bool {
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

/// Runs `f` on a new thread inside the network namespace at `path` (`None`: the
/// caller's own, on the calling thread).
pub fn in_netns<T: Send>(path: Option<&Path>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let Some(path) = path else {
        return Ok(f());
    };
    let ns = std::fs::File::open(path)?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| io::Error::other(format!("setns into {}: {e}", path.display())))?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("a thread inside a network namespace panicked"))?
    })
}

/// Runs a command to its end inside the network namespace at `path` (`None`: this
/// process's), feeding it `stdin`.
pub fn output_in(path: Option<&Path>, mut command: Command, stdin: &[u8]) -> io::Result<Output> {
    in_netns(path, move || {
        use std::io::Write;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut input = child.stdin.take().expect("piped stdin");
        // Written from its own thread: a plugin that answers before reading all its
        // input would otherwise deadlock against a full stdout pipe.
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || input.write_all(&stdin));
        let output = child.wait_with_output()?;
        // A plugin may exit without reading its input (EPIPE): its answer tells.
        let _ = writer.join();
        Ok(output)
    })?
}

/// Runs `program args…` inside the namespace at `path`; its stdout, or an error
/// with its stderr.
pub fn run_in(path: Option<&Path>, program: &str, args: &[&str]) -> io::Result<String> {
    let mut command = Command::new(program);
    command.args(args);
    let out = output_in(path, command, b"")?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{program} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
