//! An exec probe: the command runs in the container through its runtime's `exec`
//! (the same as `kubectl exec`); exit status 0 succeeds. Its output (stdout then
//! stderr, cut to 10 KiB) is the probe's message. Past `timeoutSeconds` it fails
//! with the kubelet's words, and the exec is ended: SIGTERM (which `runc exec`
//! passes on to the command), then SIGKILL a moment later.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use super::{Outcome, truncated};
use crate::runtime::{ExecSpec, Runtime};

/// How long an exec that timed out has between SIGTERM and SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(1);

pub(super) async fn run(runtime: Arc<dyn Runtime>, id: String, command: Vec<String>, timeout: Duration) -> Outcome {
    let joined = command.join(" ");
    let spec = ExecSpec {
        argv: command,
        tty: false,
    };
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    // Blocking: the runtime spawns a process, and its pipes are read to their end.
    let task = tokio::task::spawn_blocking(move || -> Result<(std::process::ExitStatus, Vec<u8>), String> {
        let mut session = runtime.exec(&id, &spec).map_err(|e| e.to_string())?;
        // A pidfd, taken before the child can be reaped: a signal sent through it
        // after the exec ended cannot reach another process that got its pid.
        let pidfd = Pid::from_raw(session.child.id() as i32).and_then(|pid| pidfd_open(pid, PidfdFlags::empty()).ok());
        let _ = pid_tx.send(pidfd);
        drop(session.child.stdin.take());
        let stderr = session.child.stderr.take();
        let errors = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_end(&mut bytes);
            }
            bytes
        });
        let mut output = Vec::new();
        if let Some(mut stdout) = session.child.stdout.take() {
            let _ = stdout.read_to_end(&mut output);
        }
        output.extend(errors.join().unwrap_or_default());
        let status = session.child.wait().map_err(|e| e.to_string())?;
        Ok((status, output))
    });
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(Ok((status, output)))) => {
            let message = truncated(&output);
            if status.success() {
                Outcome::success(message)
            } else if message.is_empty() {
                Outcome::failure(format!("command {joined:?} exited with {status}"))
            } else {
                Outcome::failure(message)
            }
        }
        Ok(Ok(Err(e))) => Outcome::failure(e),
        Ok(Err(e)) => Outcome::failure(format!("exec: {e}")),
        Err(_) => {
            // The reading task is left to end with the process (or with the
            // container, should something in it keep the pipes open).
            if let Ok(Some(pidfd)) = pid_rx.await {
                let _ = pidfd_send_signal(&pidfd, Signal::TERM);
                tokio::spawn(async move {
                    tokio::time::sleep(KILL_AFTER).await;
                    let _ = pidfd_send_signal(&pidfd, Signal::KILL);
                });
            }
            Outcome::failure(format!("command {joined:?} timed out"))
        }
    }
}
