//! Driving the runc binary: its commands, the errors it logs, and the supervisor each
//! container runs under.
//!
//! A container runs as foreground `runc run --keep` under a small `/bin/sh`
//! supervisor in its own process group. runc's exit status is the container's (128 + n
//! for a death by signal n); the supervisor writes it to the exit file, so the end
//! is known even when no agent was running. `--keep` leaves the stopped container,
//! and so its cgroup, in place until `remove` (`runc delete -f`): the memory
//! cgroup's OOM counter is read after the exit.
//!
//! ```text
//! agent ─spawn─► sh -c SUPERVISOR berth-supervisor EXIT_FILE WRITER LOG runc --root R --log L
//!                      │                run --keep --bundle B --pid-file P ID
//!   0. read a line on stdin   the go-ahead, sent once the container is recorded (EOF:
//!                             the agent died first; exit 125, run nothing); then
//!                             start the log writer, whose pipe becomes stdout and
//!                             stderr (`log_writer`)
//!   1. trap : TERM INT ...    the supervisor outlives stray signals; runc does not
//!                             inherit the trap (a caught signal resets at exec)
//!   2. runc run ...           stdout and stderr (the writer's pipe, or the log file
//!                             without one) handed on to the container as they are;
//!                             stdin /dev/null
//!   3. echo $? > EXIT_FILE    once the writer has written all
//! ```
//!
//! When the agent dies, the supervisor is re-parented (to init or a subreaper), which
//! reaps it; runc, its child, reaps the container.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::runtime::log_file::LogSink;
use crate::runtime::log_writer::{finish_writer_sh, start_writer_sh};

const SUPERVISOR_SCRIPT: &str = concat!(
    r#"exit_file=$1; writer=$2; log=$3; shift 3
if ! IFS= read -r go; then
  echo "berth: the runtime went away before it recorded the container" >&2
  echo 125 > "$exit_file"
  exit 125
fi
exec < /dev/null
"#,
    start_writer_sh!(),
    r#"trap : TERM INT HUP QUIT USR1 USR2 PIPE
"$@"
status=$?
"#,
    finish_writer_sh!(),
    r#"echo "$status" > "$exit_file"
exit "$status"
"#
);

/// Where runc is looked for when it is not on `PATH` (Debian's package puts it in
/// /usr/sbin, which an unprivileged `PATH` lacks).
const RUNC_FALLBACK: &str = "/usr/sbin/runc";

/// The runc binary, on `PATH` or at Debian's place.
pub fn find_runc() -> Option<PathBuf> {
    let path_var = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("runc"))
        .chain(std::iter::once(PathBuf::from(RUNC_FALLBACK)))
        .find(|candidate| candidate.is_file())
}

/// runc with its own state directory (`--root`), so that berth's containers are
/// apart from any other runc user's on the host.
#[derive(Debug, Clone)]
pub struct Runc {
    pub binary: PathBuf,
    pub root: PathBuf,
}

impl Runc {
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--root").arg(&self.root);
        command
    }

    /// The supervised `runc run` of a container: stdin a pipe for the go-ahead,
    /// stdout and stderr the log.
    pub fn supervised_run(&self, bundle: &Path, id: &str, exit_file: &Path, log: LogSink) -> std::io::Result<Command> {
        use std::os::unix::process::CommandExt as _;

        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("berth-supervisor")
            .arg(exit_file)
            .args(log.script_args())
            .arg(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(runc_log_path(bundle))
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--keep")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file_path(bundle))
            .arg(id)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir(bundle)
            .stdin(Stdio::piped())
            .stdout(log.file.try_clone()?)
            .stderr(log.file)
            .process_group(0);
        Ok(command)
    }

    /// Whether this runc applies seccomp profiles (`runc features`:
    /// `linux.seccomp.enabled`). A runc too old to say is assumed to.
    pub fn has_seccomp(&self) -> bool {
        let Ok(output) = self.command().arg("features").stdin(Stdio::null()).output() else {
            return true;
        };
        match serde_json::from_slice::<serde_json::Value>(&output.stdout) {
            Ok(features) if output.status.success() => features["linux"]["seccomp"]["enabled"] != false,
            _ => true,
        }
    }

    /// `runc kill ID SIGNAL`; a container that is not running (any more) is not an
    /// error.
    pub fn kill(&self, id: &str, signal: &str) -> Result<(), String> {
        match self.run_quietly(&["kill", id, signal]) {
            Ok(()) => Ok(()),
            Err(message) if is_gone(&message) => Ok(()),
            Err(message) => Err(message),
        }
    }

    /// `runc delete -f ID`: kills what is left, removes its cgroups and runc's
    /// state; a container runc does not know is not an error.
    pub fn delete(&self, id: &str) -> Result<(), String> {
        match self.run_quietly(&["delete", "-f", id]) {
            Ok(()) => Ok(()),
            Err(message) if message.contains("does not exist") => Ok(()),
            Err(message) => Err(message),
        }
    }

    /// Runs a runc command to its end; the error is what runc said.
    fn run_quietly(&self, args: &[&str]) -> Result<(), String> {
        let output: Output = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(if said.is_empty() {
            format!("exited with {}", output.status)
        } else {
            said
        })
    }
}

/// runc's words for a container that has stopped or never was.
fn is_gone(message: &str) -> bool {
    message.contains("not running") || message.contains("does not exist") || message.contains("stopped")
}

pub fn runc_log_path(bundle: &Path) -> PathBuf {
    bundle.join("runc.log")
}

pub fn pid_file_path(bundle: &Path) -> PathBuf {
    bundle.join("container.pid")
}

/// The container's init pid, once runc has written it.
pub fn read_pid_file(bundle: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_file_path(bundle)).ok()?.trim().parse().ok()
}

/// The last error runc logged (its log is JSON lines: `{"level":"error","msg":...}`).
pub fn last_logged_error(bundle: &Path) -> Option<String> {
    let text = std::fs::read_to_string(runc_log_path(bundle)).ok()?;
    text.lines().rev().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        (entry["level"] == "error" || entry["level"] == "fatal")
            .then(|| entry["msg"].as_str().map(str::to_owned))
            .flatten()
    })
}

/// Whether runc's start error says the command could not be found or executed (then
/// the runtime reports `CommandNotFound`, as the process runtime does).
pub fn is_command_not_found(message: &str) -> bool {
    message.contains("executable file not found")
        || (message.contains("exec:") && (message.contains("no such file") || message.contains("permission denied")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_of_the_json_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            runc_log_path(dir.path()),
            concat!(
                "{\"level\":\"error\",\"msg\":\"first\",\"time\":\"t\"}\n",
                "{\"level\":\"warning\",\"msg\":\"w\",\"time\":\"t\"}\n",
                "{\"level\":\"error\",\"msg\":\"runc run failed: exec: \\\"nope\\\": executable file not found in $PATH\",\"time\":\"t\"}\n",
                "{\"level\":\"info\",\"msg\":\"i\",\"time\":\"t\"}\n",
            ),
        )
        .unwrap();
        let error = last_logged_error(dir.path()).unwrap();
        assert!(error.ends_with("executable file not found in $PATH"), "{error}");
        assert!(is_command_not_found(&error));
        assert!(!is_command_not_found("invalid rootfs"));
    }
}
