//! `exec` for the process runtime: a further command on the host, beside a running
//! container, with what makes it that container's: its environment and working
//! directory (read back from the wrapper's `/proc` entry, so an adopted container
//! gets them too), its cgroups, and its process group (so stopping the container
//! ends what was exec'd in it).
//!
//! ```text
//! no tty:  sh -c JOIN berth-exec N PROCS_1..PROCS_N PROGRAM ARGS   pipes for stdio,
//!                                                                  in the container's group
//! tty:     setsid --ctty sh -c JOIN ...                            the pty's slave as stdio,
//!                                                                  a session of its own, the
//!                                                                  pty its controlling terminal
//! ```
//!
//! A shell joins the cgroups (as the wrapper does) and then `exec`s the program, so the
//! runtime needs no code between fork and exec; `setsid --ctty` (util-linux) makes the
//! terminal the controlling one, which shells need for job control and `^C`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::super::terminal::open_pty;
use super::super::wrapper;
use super::super::{ExecSession, ExecSpec, RuntimeError};

const JOIN_SCRIPT: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do
  echo $$ > "$1" || exit 126
  n=$((n - 1)); shift
done
exec "$@"
"#;

/// What an exec inherits from the container it runs in.
pub struct Target<'a> {
    pub container: &'a str,
    /// The wrapper: its environment and working directory are the container's, and
    /// its pid is the container's process group.
    pub pid: u32,
    pub cgroup_dirs: &'a [PathBuf],
}

pub fn exec(target: &Target<'_>, spec: &ExecSpec) -> Result<ExecSession, RuntimeError> {
    let container = target.container.to_owned();
    let Some((command, args)) = spec.argv.split_first() else {
        return Err(RuntimeError::EmptyCommand { container });
    };
    let env = environ(target.pid).map_err(|source| RuntimeError::Spawn {
        container: container.clone(),
        command: command.clone(),
        source,
    })?;
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", target.pid)).unwrap_or_else(|_| PathBuf::from("/"));
    let path_var = env.iter().find(|(k, _)| k == "PATH").map_or("", |(_, v)| v.as_str());
    let program = wrapper::resolve_command(command, path_var, &cwd).map_err(|cause| RuntimeError::CommandNotFound {
        container: container.clone(),
        command: command.clone(),
        cause,
    })?;
    let spawn_error = |source| RuntimeError::Spawn {
        container: container.clone(),
        command: command.clone(),
        source,
    };
    let procs: Vec<PathBuf> = target.cgroup_dirs.iter().map(|d| d.join("cgroup.procs")).collect();
    let mut shell = if spec.tty {
        let mut setsid = Command::new("setsid");
        setsid.arg("--ctty").arg("/bin/sh");
        setsid
    } else {
        Command::new("/bin/sh")
    };
    shell
        .arg("-c")
        .arg(JOIN_SCRIPT)
        .arg("berth-exec")
        .arg(procs.len().to_string())
        .args(&procs)
        .arg(&program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))))
        .current_dir(&cwd);
    if spec.tty {
        let (master, slave) = open_pty().map_err(spawn_error)?;
        shell
            .stdin(slave.try_clone().map_err(spawn_error)?)
            .stdout(slave.try_clone().map_err(spawn_error)?)
            .stderr(slave);
        let child = shell.spawn().map_err(spawn_error)?;
        // `shell` still holds the slave's descriptors: drop them, so that reading the
        // master ends (EIO) once the command and its children have closed theirs.
        drop(shell);
        return Ok(ExecSession {
            child,
            pty: Some(master),
        });
    }
    let group = i32::try_from(target.pid).unwrap_or(0);
    shell
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(group);
    let child = shell.spawn().map_err(spawn_error)?;
    Ok(ExecSession { child, pty: None })
}

/// The process's environment, as `NAME=value` pairs.
fn environ(pid: u32) -> std::io::Result<Vec<(String, String)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect())
}
