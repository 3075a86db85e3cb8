//! One child process with its output in a log file, and the signals a test sends it.
//!
//! Dropping a [`Process`] kills it (SIGKILL) and reaps it, so no test leaves one behind.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

pub struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    is_paused: bool,
}

impl Process {
    /// A process named `name` (for messages) that runs `program`, not started yet.
    /// Its stdout and stderr are appended to `log`, across restarts.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            log: log.into(),
            child: None,
            is_paused: false,
        }
    }

    /// The arguments of the next start.
    pub fn set_args(&mut self, args: Vec<String>) {
        self.args = args;
    }

    pub fn with_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// An environment variable of every start, besides the inherited ones.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the process; an error if it runs already or cannot be spawned.
    pub fn start(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Err(io::Error::other(format!("{} is already running", self.name)));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", self.log.display())))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", self.program.display())))?;
        self.child = Some(child);
        self.is_paused = false;
        Ok(())
    }

    /// Started and not yet seen to exit (a paused process runs).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.is_paused
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.is_paused = false;
    }

    /// SIGTERM and wait up to `grace` for it to exit; SIGKILL after that.
    pub fn stop(&mut self, grace: Duration) {
        if self.is_paused {
            let _ = self.resume();
        }
        if let Some(mut child) = self.child.take() {
            let _ = kill_process(Pid::from_child(&child), Signal::TERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (a no-op when it is not running or already paused).
    pub fn pause(&mut self) -> io::Result<()> {
        if let Some(child) = &self.child
            && !self.is_paused
        {
            kill_process(Pid::from_child(child), Signal::STOP)?;
            self.is_paused = true;
        }
        Ok(())
    }

    /// SIGCONT (a no-op when it is not paused).
    pub fn resume(&mut self) -> io::Result<()> {
        if let Some(child) = &self.child
            && self.is_paused
        {
            kill_process(Pid::from_child(child), Signal::CONT)?;
            self.is_paused = false;
        }
        Ok(())
    }

    /// How it exited, if it exited on its own since it was started; it then counts as
    /// not running.
    pub fn reap_exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.is_paused = false;
        Some(status)
    }

    /// Panics with the log if the process has exited (say, it could not bind a port).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.reap_exited() {
            panic!("{} exited ({status}):\n{}", self.name, self.log_text());
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        let log = self.log_text();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|line| line.to_string())
            .collect()
    }

    /// Resident set size in KiB, from /proc/PID/status (VmRSS).
    pub fn rss_kib(&self) -> io::Result<u64> {
        let pid = self
            .pid()
            .ok_or_else(|| io::Error::other(format!("{} is not running", self.name)))?;
        process_rss_kib(pid)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn process_rss_kib(pid: u32) -> io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no VmRSS in {path}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path) -> Process {
        Process::new("sleeper", "sh", dir.join("sleeper.log"))
            .with_args(["-c", "echo started; echo $GREETING >&2; exec sleep 600"])
            .with_env("GREETING", "hello")
    }

    /// The process state from /proc: R, S, T (stopped), Z…
    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(") ").unwrap().1.chars().next().unwrap()
    }

    #[test]
    fn starts_pauses_resumes_and_kills_with_its_output_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = sleeper(dir.path());
        process.start().unwrap();
        assert!(process.start().is_err(), "a running process is not started twice");
        let pid = process.pid().unwrap();
        crate::eventually_blocking("the greeting in the log", || {
            process.log_text().contains("hello").then_some(())
        });
        assert_eq!(process.log_tail(2), ["started", "hello"]);
        assert!(process.rss_kib().unwrap() > 0);

        process.pause().unwrap();
        assert!(process.is_paused());
        crate::eventually_blocking("the process to stop", || (state(pid) == 'T').then_some(()));
        process.resume().unwrap();
        crate::eventually_blocking("the process to continue", || (state(pid) != 'T').then_some(()));

        process.kill();
        assert!(!process.is_running());
        assert_eq!(process.pid(), None);
        process.start().unwrap();
        crate::eventually_blocking("the second greeting", || {
            (process.log_text().matches("hello").count() == 2).then_some(())
        });
        assert_eq!(
            process.log_tail(4),
            ["started", "hello", "started", "hello"],
            "the log is appended to"
        );
    }

    #[test]
    fn stop_sends_sigterm_and_an_exit_on_its_own_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Process::new("trap", "sh", dir.path().join("trap.log")).with_args([
            "-c",
            "trap 'echo terminated; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
        ]);
        process.start().unwrap();
        crate::eventually_blocking("the trap to be set", || {
            process.log_text().contains("ready").then_some(())
        });
        process.stop(Duration::from_secs(10));
        assert!(!process.is_running());
        assert!(process.log_text().contains("terminated"), "{}", process.log_text());

        let mut quitter = Process::new("quitter", "sh", dir.path().join("quitter.log")).with_args(["-c", "exit 3"]);
        quitter.start().unwrap();
        let status = crate::eventually_blocking("the quitter to exit", || quitter.reap_exited());
        assert_eq!(status.code(), Some(3));
        assert!(!quitter.is_running());
    }
}
