//! A streaming session as the protocols see it, whatever runs behind it: stdin to
//! write, stdout and stderr to read, terminal resizes, and how it ended. An exec'd
//! process (its pipes or its pty, each served by a blocking thread) is one; attach's
//! view of a container's log is another.
//!
//! ```text
//!  client ─stdin──► Session.stdin ──thread──► pipe / pty master
//!  client ◄─1,2──── Session.output ◄─thread── pipes / pty master   (ends when all end)
//!  client ◄─3────── Session.exit   ◄─thread── wait()               (after the output)
//! ```

use std::io::{Read, Write};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::{ExecSession, resize_terminal};

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// A client's resize message (remotecommand's TerminalSize).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// What the client asked to be connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub struct Session {
    /// Closed (dropped) when the client closes its stdin; None when not asked for.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// Output with its stream (STDOUT or STDERR); ends once every output has ended.
    pub output: mpsc::Receiver<(u8, Bytes)>,
    /// The client's window size (width, height), when there is a terminal.
    pub resize: Option<mpsc::UnboundedSender<(u16, u16)>>,
    /// The end, as the metav1.Status the error stream carries.
    pub exit: oneshot::Receiver<Value>,
}

impl Session {
    /// A session that ends at once with `status` (the command could not start).
    pub fn failed(status: Value) -> Session {
        let (_, output) = mpsc::channel(1);
        let (exit_tx, exit) = oneshot::channel();
        let _ = exit_tx.send(status);
        Session {
            stdin: None,
            output,
            resize: None,
            exit,
        }
    }
}

/// The Status of a successful end.
pub fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The Status of a command that exited with `code` (kubelet's words and reason, so
/// kubectl exits with the same code).
pub fn exit_status(argv: &[String], code: i32) -> Value {
    if code == 0 {
        return success();
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {argv:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// A failure that is not an exit code (the command could not start, the container
/// went away).
pub fn failure(message: &str) -> Value {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500})
}

/// Serves an exec'd process: threads relay its pipes or its pty.
pub fn from_exec(exec: ExecSession, argv: Vec<String>, wanted: Wanted) -> Session {
    let ExecSession { mut child, pty } = exec;
    let (output_tx, output) = mpsc::channel::<(u8, Bytes)>(16);
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let mut resize = None;
    match pty {
        Some(master) => {
            if let Ok(reader) = master.try_clone() {
                relay_output(reader, STDOUT, wanted.stdout, output_tx.clone());
            }
            if let Ok(writer) = master.try_clone() {
                relay_input(writer, stdin_rx);
            }
            let (resize_tx, mut resize_rx) = mpsc::unbounded_channel::<(u16, u16)>();
            std::thread::spawn(move || {
                while let Some((width, height)) = resize_rx.blocking_recv() {
                    if let Err(error) = resize_terminal(&master, width, height) {
                        tracing::debug!(%error, "cannot resize an exec's terminal");
                    }
                }
            });
            resize = Some(resize_tx);
        }
        None => {
            if let Some(stdout) = child.stdout.take() {
                relay_output(stdout, STDOUT, wanted.stdout, output_tx.clone());
            }
            if let Some(stderr) = child.stderr.take() {
                relay_output(stderr, STDERR, wanted.stderr, output_tx.clone());
            }
            if let Some(stdin) = child.stdin.take() {
                relay_input(stdin, stdin_rx);
            }
        }
    }
    drop(output_tx);
    let (exit_tx, exit) = oneshot::channel();
    std::thread::spawn(move || {
        let status = match child.wait() {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt as _;
                let code = status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(137);
                exit_status(&argv, code)
            }
            Err(error) => failure(&format!("cannot wait for the command: {error}")),
        };
        let _ = exit_tx.send(status);
    });
    Session {
        stdin: wanted.stdin.then_some(stdin_tx),
        output,
        resize,
        exit,
    }
}

/// Copies `reader` to the output as `stream` until it ends (EOF, or EIO from a pty
/// whose other side has closed); drains without sending when the client does not want it.
fn relay_output(mut reader: impl Read + Send + 'static, stream: u8, is_wanted: bool, tx: mpsc::Sender<(u8, Bytes)>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) if is_wanted => {
                    if tx.blocking_send((stream, Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
            }
        }
    });
}

/// Writes what the client sends to `writer`; dropping it (end of the channel) closes
/// the process's stdin.
fn relay_input(mut writer: impl Write + Send + 'static, mut rx: mpsc::Receiver<Bytes>) {
    std::thread::spawn(move || {
        while let Some(chunk) = rx.blocking_recv() {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_zero_exit_carries_its_code_as_kubectl_reads_it() {
        let status = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&[], 0), success());
    }
}
