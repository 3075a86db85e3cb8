//! Named network namespaces, held by bind mounts as [`crate::namespaces`] makes
//! them. Entering one (`setns(2)`) is safe:
//! [`in_netns`] runs a closure on a fresh thread moved into the namespace, and a
//! process that thread spawns starts inside it too (namespaces are per thread and a
//! child inherits its creator's).

use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::namespaces::{self, Kind};

/// Creates a network namespace held by a bind mount at `path` (its parent must
/// exist). An existing namespace file is left as it is.
pub fn create(path: &Path) -> io::Result<()> {
    namespaces::create(&[(Kind::Net, path)])
}

/// Whether `path` holds a network namespace (a mounted nsfs file), not merely an
/// empty file left by a crash between creating it and mounting onto it.
pub fn is_netns(path: &Path) -> bool {
    namespaces::is_held(path)
}

/// Unmounts and removes a namespace file; Ok when it is already gone.
pub fn remove(path: &Path) -> io::Result<()> {
    namespaces::remove(path)
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
