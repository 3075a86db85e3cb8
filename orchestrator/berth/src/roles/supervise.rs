//! `berth up`'s children, kept running: a control-plane replica, an agent or the
//! registry that dies is started again with the same flags and data directory,
//! after a back-off, and berth up says so, so that one crash does not take the
//! local cluster down (a restarted replica rejoins from its data; a restarted agent
//! adopts the pods it left running).
//!
//! ```text
//!  running ── exits ──► "<name> exited (<status>); restarting it in <delay>"
//!     ▲                        │ delay: 1 s, doubling to 30 s while it keeps dying;
//!     │                        │ back to 1 s once it stayed up a minute
//!     └── spawned again ◄──────┘ "<name> restarted (pid <pid>)"
//! ```
//!
//! The back-off is [`Backoff`], free of I/O; [`supervise`] does the polling and the
//! spawning, and [`stop`] ends everything on Ctrl-C (agents first).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The first restart's delay.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay between restarts of a process that keeps dying.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A process that ran this long before it died restarts after [`FIRST_DELAY`] again.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often children are checked for an exit.
const POLL: Duration = Duration::from_millis(200);

/// The delay before each restart of one process: doubling while it keeps dying
/// soon after it starts, reset once it has run for a while (as the kubelet's
/// container back-off is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_DELAY }
    }
}

impl Backoff {
    /// The delay before restarting a process that ran for `uptime` and exited.
    pub fn after_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= STABLE_AFTER {
            self.next = FIRST_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

/// One child of `berth up`, with what it takes to start it again.
pub struct Process {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    pub child: Child,
    started: Instant,
    backoff: Backoff,
    /// Set while the process is dead and waits for its restart.
    restart_at: Option<Instant>,
}

impl Process {
    /// Starts `program args` with its output appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: Vec<String>, log: &Path) -> Result<Process, String> {
        let child = start(name, program, &args, log)?;
        Ok(Process {
            name: name.to_string(),
            program: program.to_path_buf(),
            args,
            log: log.to_path_buf(),
            child,
            started: Instant::now(),
            backoff: Backoff::default(),
            restart_at: None,
        })
    }

    fn is_agent(&self) -> bool {
        self.name.starts_with("node-")
    }
}

fn start(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Child, String> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))
}

/// Resolves with the name of the first child that exits (while the cluster starts,
/// an exit is a configuration problem to report, not a crash to retry).
pub async fn first_exit(processes: &mut [Process]) -> String {
    loop {
        for p in processes.iter_mut() {
            if let Ok(Some(_)) = p.child.try_wait() {
                return p.name.clone();
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Restarts each child that exits, after its back-off, for ever (the caller
/// drops this future to stop).
pub async fn supervise(processes: &mut [Process]) {
    loop {
        let now = Instant::now();
        for p in processes.iter_mut() {
            match p.restart_at {
                None => {
                    if let Ok(Some(status)) = p.child.try_wait() {
                        let delay = p.backoff.after_exit(now.duration_since(p.started));
                        println!(
                            "berth up: {} exited ({}); restarting it in {}s (its log: {})",
                            p.name,
                            describe(status),
                            delay.as_secs(),
                            p.log.display()
                        );
                        p.restart_at = Some(now + delay);
                    }
                }
                Some(at) if at <= now => match start(&p.name, &p.program, &p.args, &p.log) {
                    Ok(child) => {
                        println!("berth up: {} restarted (pid {})", p.name, child.id());
                        p.child = child;
                        p.started = Instant::now();
                        p.restart_at = None;
                    }
                    Err(e) => {
                        let delay = p.backoff.after_exit(Duration::ZERO);
                        println!("berth up: {e}; trying again in {}s", delay.as_secs());
                        p.restart_at = Some(now + delay);
                    }
                },
                Some(_) => {}
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// "exit status 1", "signal 9 (SIGKILL)".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match signal_name(signal) {
            Some(name) => format!("signal {signal} ({name})"),
            None => format!("signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// The names of the signals that commonly end a process.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// Agents first (they stop their workloads), then the control plane and the rest.
pub async fn stop(processes: &mut [Process]) {
    let (agents, others): (Vec<&mut Process>, Vec<&mut Process>) = processes.iter_mut().partition(|p| p.is_agent());
    for mut group in [agents, others] {
        for p in &mut group {
            if let Ok(None) = p.child.try_wait() {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_child(&p.child),
                    rustix::process::Signal::TERM,
                );
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        for p in group {
            loop {
                match p.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if tokio::time::Instant::now() >= deadline => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_to_thirty_seconds_while_a_process_keeps_dying() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..7)
            .map(|_| backoff.after_exit(Duration::from_secs(2)).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn a_process_that_stayed_up_a_minute_restarts_after_one_second_again() {
        let mut backoff = Backoff::default();
        for _ in 0..4 {
            backoff.after_exit(Duration::ZERO);
        }
        assert_eq!(backoff.after_exit(Duration::from_secs(59)), Duration::from_secs(16));
        assert_eq!(backoff.after_exit(STABLE_AFTER), FIRST_DELAY);
        assert_eq!(backoff.after_exit(Duration::ZERO), Duration::from_secs(2));
    }

    #[test]
    fn exits_are_described_by_code_or_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit status 1");
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9 (SIGKILL)");
    }
}
