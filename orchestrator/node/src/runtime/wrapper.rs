//! The `/bin/sh` wrapper every container of the process runtime runs under, its
//! environment, and how its command is found.
//!
//! The wrapper is what makes a container's end knowable without the agent: it outlives
//! the signals `stop` sends and writes the command's status to the exit file.
//!
//! ```text
//! agent ─spawn (own process group)─► sh -c WRAPPER berth-wrapper EXIT_FILE WRITER LOG N PROCS_1..PROCS_N PROGRAM ARGS...
//!   0. read a line on stdin  the runtime sends it once the container is recorded, so
//!                            nothing runs that a restarted agent would not know of
//!                            (EOF, the agent died first: exit 125, run nothing)
//!      start the log writer  stdout and stderr become its pipe (`log_writer`)
//!   1. echo $$ > PROCS_i     join the cgroups first, so PROGRAM starts inside its limits
//!   2. trap : TERM INT ...   caught (not ignored, which PROGRAM would inherit), so the
//!                            shell survives a group-wide SIGTERM; sh runs a trap only
//!                            once the foreground command has ended
//!   3. PROGRAM ARGS...       in the foreground, same process group
//!   4. echo $? > EXIT_FILE   once the log writer has it all; exit with the same status
//! ```
//!
//! Only a SIGKILL of the wrapper itself leaves no exit file; the runtime then reports
//! 137 (SIGKILL), which is what happened.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::log_file::LogSink;
use super::log_writer::{finish_writer_sh, start_writer_sh};

const WRAPPER_SCRIPT: &str = concat!(
    r#"exit_file=$1; writer=$2; log=$3; n=$4; shift 4
if ! IFS= read -r go; then
  echo "berth: the runtime went away before it recorded the container" >&2
  echo 125 > "$exit_file"
  exit 125
fi
exec < /dev/null
"#,
    start_writer_sh!(),
    r#"while [ "$n" -gt 0 ]; do
  if ! echo $$ > "$1"; then
    echo "berth: cannot join cgroup $1" >&2
    echo 125 > "$exit_file"
    exit 125
  fi
  n=$((n - 1)); shift
done
trap : TERM INT HUP QUIT USR1 USR2
"$@"
status=$?
"#,
    finish_writer_sh!(),
    r#"echo "$status" > "$exit_file"
exit "$status"
"#
);

/// `PATH` when the agent has none (Kubernetes' and Docker's default).
pub(super) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The container's environment: `PATH` and `HOME` from the agent (host binaries are
/// what the process runtime runs), then the spec's variables, a later one replacing an
/// earlier one of the same name.
pub fn container_env(spec_env: &[(String, String)]) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".to_owned());
    let mut env: Vec<(String, String)> = vec![("PATH".into(), path), ("HOME".into(), home)];
    for (name, value) in spec_env {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((name.clone(), value.clone())),
        }
    }
    env
}

/// Finds the program `command` names the way `execvp` would: with a `/` it is a path
/// (relative to `cwd`), without one it is searched in `path_var` (an empty entry is
/// `cwd`). The error is the cause, worded like the OS's, for the runtime's message.
pub fn resolve_command(command: &str, path_var: &str, cwd: &Path) -> Result<PathBuf, String> {
    if command.contains('/') {
        let path = cwd.join(command);
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(cause) => Err(cause.to_owned()),
        };
    }
    let mut is_denied = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { cwd } else { Path::new(dir) };
        let candidate = cwd.join(dir).join(command);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(cause) => is_denied |= cause == PERMISSION_DENIED,
        }
    }
    let cause = if is_denied { PERMISSION_DENIED } else { NOT_FOUND };
    Err(format!("{cause} (PATH={path_var})"))
}

const NOT_FOUND: &str = "No such file or directory";
const PERMISSION_DENIED: &str = "Permission denied";

fn executable(path: &Path) -> Result<(), &'static str> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            rustix::fs::access(path, rustix::fs::Access::EXEC_OK).map_err(|_| PERMISSION_DENIED)
        }
        Ok(_) => Err(PERMISSION_DENIED),
        Err(_) => Err(NOT_FOUND),
    }
}

/// Everything the wrapper needs to start one container.
pub struct Launch<'a> {
    pub exit_file: &'a Path,
    pub cgroup_procs: &'a [PathBuf],
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    pub log: LogSink,
}

impl Launch<'_> {
    /// The wrapper's command: its own process group (so `stop` signals the container
    /// and nothing else), stdin a pipe for the go-ahead (then /dev/null), stdout and
    /// stderr to the log.
    pub fn command(self) -> std::io::Result<Command> {
        use std::os::unix::process::CommandExt as _;

        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WRAPPER_SCRIPT)
            .arg("berth-wrapper")
            .arg(self.exit_file)
            .args(self.log.script_args())
            .arg(self.cgroup_procs.len().to_string())
            .args(self.cgroup_procs)
            .arg(self.program)
            .args(self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))))
            .current_dir(self.cwd)
            .stdin(Stdio::piped())
            .stdout(self.log.file.try_clone()?)
            .stderr(self.log.file)
            .process_group(0);
        Ok(command)
    }
}

/// Whether the wrapper `pid` has started its command: it has a child whose command line
/// is no longer the wrapper's own (between fork and exec, a child still has the
/// wrapper's, and still the wrapper's signal handlers). True when /proc cannot tell.
pub fn has_started_command(pid: u32) -> bool {
    let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) else {
        return true;
    };
    let Ok(own) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return true;
    };
    children
        .split_whitespace()
        .any(|child| std::fs::read(format!("/proc/{child}/cmdline")).is_ok_and(|cmdline| cmdline != own))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_env_overrides_the_base_and_itself() {
        let env = container_env(&[
            ("A".into(), "1".into()),
            ("PATH".into(), "/opt/bin".into()),
            ("A".into(), "2".into()),
        ]);
        assert_eq!(env[0], ("PATH".to_owned(), "/opt/bin".to_owned()));
        assert_eq!(env[1].0, "HOME");
        assert_eq!(env[2], ("A".to_owned(), "2".to_owned()));
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn resolves_in_path_and_relative_to_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        assert_eq!(
            resolve_command("sh", "/nonexistent:/bin", cwd).unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(resolve_command("/bin/sh", "", cwd).unwrap(), Path::new("/bin/sh"));

        let script = cwd.join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve_command("./run.sh", "/bin", cwd).unwrap(), cwd.join("./run.sh"));
        // An empty PATH entry is the working directory.
        assert_eq!(
            resolve_command("run.sh", "/nonexistent:", cwd).unwrap(),
            cwd.join("run.sh")
        );
        assert!(resolve_command("run.sh", "/bin", cwd).is_err());
    }

    #[test]
    fn missing_and_not_executable_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        assert_eq!(
            resolve_command("pyhton3", "/bin:/usr/bin", cwd).unwrap_err(),
            "No such file or directory (PATH=/bin:/usr/bin)"
        );
        assert_eq!(
            resolve_command("/nonexistent/x", "/bin", cwd).unwrap_err(),
            "No such file or directory"
        );
        std::fs::write(cwd.join("data"), "not a program").unwrap();
        assert_eq!(resolve_command("./data", "", cwd).unwrap_err(), "Permission denied");
        let path_var = cwd.display().to_string();
        assert_eq!(
            resolve_command("data", &path_var, cwd).unwrap_err(),
            format!("Permission denied (PATH={path_var})")
        );
        // A directory is not a program.
        assert_eq!(resolve_command("/bin", "", cwd).unwrap_err(), "Permission denied");
    }

    #[test]
    fn a_command_has_started_once_the_shell_has_a_child_that_exec_ed() {
        use std::os::unix::process::CommandExt as _;
        // Own process groups, killed whole below: no `sleep` outlives the test.
        let spawn = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let lone = spawn("sleep", &["30"]);
        let shell = spawn("/bin/sh", &["-c", "sleep 30; :"]);
        assert!(!has_started_command(lone.id()));
        let start = std::time::Instant::now();
        while !has_started_command(shell.id()) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "sh never started sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for mut child in [lone, shell] {
            let pgid = rustix::process::Pid::from_child(&child);
            rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL).unwrap();
            child.wait().unwrap();
        }
    }

    #[test]
    fn without_the_go_ahead_the_wrapper_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("exit");
        let marker = dir.path().join("ran");
        let log = sink(&dir.path().join("log"), None);
        let args = [marker.display().to_string()];
        let launch = Launch {
            exit_file: &exit_file,
            cgroup_procs: &[],
            program: Path::new("/usr/bin/touch"),
            args: &args,
            env: &[],
            cwd: dir.path(),
            log,
        };
        let mut child = launch.command().unwrap().spawn().unwrap();
        drop(child.stdin.take()); // the agent died before it recorded the container
        assert_eq!(child.wait().unwrap().code(), Some(125));
        assert!(!marker.exists());
        assert_eq!(std::fs::read_to_string(&exit_file).unwrap(), "125\n");
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(log.contains("went away"), "{log}");
    }

    fn sink(path: &Path, writer: Option<PathBuf>) -> LogSink {
        LogSink {
            file: std::fs::File::create(path).unwrap(),
            path: path.to_path_buf(),
            writer,
        }
    }

    #[test]
    fn the_output_goes_through_the_log_writer_and_is_all_written_before_the_exit_file() {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        // A stand-in for `berth log-writer LOG DONE_FILE` (the berth binary is not
        // this test's): it starts reading late and marks what it wrote.
        let writer = dir.path().join("writer");
        std::fs::write(
            &writer,
            "#!/bin/sh\n[ \"$1\" = log-writer ] || exit 2\nsleep 0.3\nsed 's/^/written: /' >> \"$2\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&writer, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exit_file = dir.path().join("exit");
        let log = dir.path().join("log");
        let args = ["-c".to_owned(), "echo out; echo err >&2; exit 3".to_owned()];
        let launch = Launch {
            exit_file: &exit_file,
            cgroup_procs: &[],
            program: Path::new("/bin/sh"),
            args: &args,
            env: &[],
            cwd: dir.path(),
            log: sink(&log, Some(writer)),
        };
        let mut child = launch.command().unwrap().spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(3));
        assert_eq!(std::fs::read_to_string(&exit_file).unwrap(), "3\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "written: out\nwritten: err\n");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "the pipe and the done file are removed: {left:?}");
    }
}
