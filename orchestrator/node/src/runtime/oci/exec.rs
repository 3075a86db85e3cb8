//! `exec`: a further process in a running container, through `runc exec`, which
//! takes the container's `config.json` process as its base (user, environment,
//! working directory, capabilities) and replaces only the command.
//!
//! Without a tty, runc's stdin, stdout and stderr are pipes the caller holds. With
//! one, runc is kept in the foreground (its exit status is the command's) and given
//! a pseudo-terminal of ours as its controlling terminal:
//!
//! ```text
//! caller ◄─► our pty master ─ our pty slave ◄─► runc exec --tty ◄─► the container's pty ◄─► command
//!            (returned)        (runc's stdio, raw)   copies both ways, resizes the inner
//!                                                    pty on SIGWINCH from ours
//! ```
//!
//! runc's `--console-socket` would hand over the inner pty directly, but runc only
//! accepts it with `--detach`, and a detached exec's status is lost.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::{Command, Stdio};

use rustix::pty::OpenptFlags;

use super::super::{ExecSession, ExecSpec, RuntimeError};
use super::runc::Runc;

pub fn spawn(runc: &Runc, id: &str, spec: &ExecSpec) -> Result<ExecSession, RuntimeError> {
    if spec.argv.is_empty() {
        return Err(RuntimeError::EmptyCommand {
            container: id.to_owned(),
        });
    }
    let spawn_error = |source| RuntimeError::Spawn {
        container: id.to_owned(),
        command: spec.argv[0].clone(),
        source,
    };
    if !spec.tty {
        let child = runc
            .command()
            .arg("exec")
            .arg(id)
            .args(&spec.argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        return Ok(ExecSession { child, pty: None });
    }
    let (master, slave) = open_pty().map_err(|e| RuntimeError::Unsupported {
        container: id.to_owned(),
        runtime: "runc",
        what: format!("exec with a tty: no pseudo-terminal: {e}"),
    })?;
    // setsid(1) makes runc a session leader with our pty as its controlling
    // terminal (so a resize of the master reaches it as SIGWINCH) and then execs it:
    // the child is runc itself.
    let mut command = Command::new("setsid");
    command
        .arg("--ctty")
        .arg(&runc.binary)
        .arg("--root")
        .arg(&runc.root)
        .arg("exec")
        .arg("--tty")
        .arg(id)
        .args(&spec.argv)
        .stdin(slave.try_clone().map_err(spawn_error)?)
        .stdout(slave.try_clone().map_err(spawn_error)?)
        .stderr(slave);
    let child = command.spawn().map_err(spawn_error)?;
    Ok(ExecSession {
        child,
        pty: Some(master),
    })
}

/// A new pseudo-terminal: (master, slave), neither our controlling terminal.
fn open_pty() -> std::io::Result<(File, File)> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(name.to_string_lossy().as_ref())?;
    Ok((File::from(master), slave))
}
