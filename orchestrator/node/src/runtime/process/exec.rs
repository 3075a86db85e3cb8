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
    let env = environ_once_set(target.pid).map_err(|source| RuntimeError::Spawn {
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
/// The wrapper's environment, which always holds `PATH` and `HOME`. Read right after
/// its start (a postStart hook's exec), `/proc` can show none yet: the kernel wakes the
/// spawner when the close-on-exec pipe closes, before it has laid out the new
/// program's environment. An empty one is read again, for a moment.
fn environ_once_set(pid: u32) -> std::io::Result<Vec<(String, String)>> {
    for _ in 0..100 {
        let env = environ(pid)?;
        if !env.is_empty() {
            return Ok(env);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    environ(pid)
}

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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use super::super::super::{ContainerSpec, ContainerState, Runtime};
    use super::super::ProcessRuntime;
    use super::*;
    use rustix::process::Pid;

    const DEADLINE: Duration = Duration::from_secs(20);

    /// A running container, stopped when the test ends however it ends.
    struct Sleeper {
        runtime: ProcessRuntime,
        id: String,
    }

    impl Sleeper {
        fn stop(&self) {
            let clock = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            clock
                .block_on(self.runtime.stop(&self.id, Duration::from_secs(1)))
                .unwrap();
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            self.stop();
        }
    }

    /// A container that sleeps in `dir` with a variable set.
    fn sleeper(state: &tempfile::TempDir, dir: &std::path::Path, tag: &str) -> Sleeper {
        let runtime = ProcessRuntime::new(state.path().to_path_buf()).unwrap();
        let spec = ContainerSpec {
            pod_uid: format!("{tag}-{}", std::process::id()),
            pod: format!("default/{tag}"),
            name: "main".into(),
            argv: vec!["sleep".into(), "60".into()],
            env: vec![("GREETING".into(), "hi there".into())],
            working_dir: Some(dir.to_path_buf()),
            ..ContainerSpec::default()
        };
        let id = runtime.start(&spec).unwrap();
        // The wrapper's environment is what exec reads: wait until it has exec'd.
        let start = Instant::now();
        while !super::super::super::wrapper::has_started_command(pid(&runtime, &id)) {
            assert!(start.elapsed() < DEADLINE, "the container never started its command");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sleeper { runtime, id }
    }

    fn pid(runtime: &ProcessRuntime, id: &str) -> u32 {
        match runtime.state(id).unwrap() {
            ContainerState::Running { pid, .. } => pid,
            other => panic!("{id} is {other:?}"),
        }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn exec_runs_with_the_containers_env_and_cwd_and_pipes() {
        let state = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let container = sleeper(&state, work.path(), "exec-pipes");
        let (runtime, id) = (&container.runtime, &container.id);
        let spec = ExecSpec {
            argv: argv(&[
                "sh",
                "-c",
                "read line; echo \"$GREETING $line $(pwd)\"; echo oops >&2; exit 7",
            ]),
            tty: false,
        };
        let mut session = runtime.exec(id, &spec).unwrap();
        session.child.stdin.take().unwrap().write_all(b"friend\n").unwrap();
        let mut out = String::new();
        session.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let mut err = String::new();
        session.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = session.child.wait().unwrap();
        assert_eq!(out, format!("hi there friend {}\n", work.path().display()));
        assert_eq!(err, "oops\n");
        assert_eq!(status.code(), Some(7));
    }

    #[test]
    fn exec_lives_in_the_containers_process_group_and_ends_with_it() {
        let state = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let container = sleeper(&state, work.path(), "exec-group");
        let (runtime, id) = (&container.runtime, &container.id);
        let spec = ExecSpec {
            argv: argv(&["sleep", "300"]),
            tty: false,
        };
        let mut session = runtime.exec(id, &spec).unwrap();
        let exec_pid = Pid::from_child(&session.child);
        assert_eq!(
            rustix::process::getpgid(Some(exec_pid)).unwrap().as_raw_nonzero().get() as u32,
            pid(runtime, id)
        );
        container.stop();
        // Stopping the container ended what was exec'd in it.
        let status = session.child.wait().unwrap();
        assert!(!status.success());
        let error = runtime.exec(id, &spec).unwrap_err();
        assert!(matches!(error, RuntimeError::NotRunning { .. }), "{error}");
    }

    #[test]
    fn exec_with_a_tty_gets_a_terminal_of_the_asked_size() {
        let state = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let container = sleeper(&state, work.path(), "exec-tty");
        let (runtime, id) = (&container.runtime, &container.id);
        let spec = ExecSpec {
            argv: argv(&["sh", "-c", "read go; test -t 0 && test -t 1 && echo tty; stty size"]),
            tty: true,
        };
        let mut session = runtime.exec(id, &spec).unwrap();
        let mut master = session.pty.take().expect("a pty");
        crate::runtime::resize_terminal(&master, 99, 33).unwrap();
        master.write_all(b"go\n").unwrap();
        let status = session.child.wait().unwrap();
        assert!(status.success());
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        // The slave is closed: reading ends with EIO once the output is drained.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("tty\r\n33 99\r\n"), "{out:?}");
    }
}
