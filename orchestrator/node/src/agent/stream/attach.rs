//! Attach as berth can offer it: the container's output from now on, read from its
//! log file (stdout and stderr interleaved there, so both arrive on stdout) until the
//! container ends or the client leaves.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, oneshot};

use super::session::{STDOUT, Session, Wanted, failure, success};
use crate::runtime::Runtime;

/// How often the end of the log is looked at again.
const POLL: Duration = Duration::from_millis(100);

pub fn follow(runtime: Arc<dyn Runtime>, id: String, log: PathBuf, wanted: Wanted) -> Session {
    let (output_tx, output) = mpsc::channel::<(u8, Bytes)>(16);
    let (exit_tx, exit) = oneshot::channel();
    tokio::spawn(async move {
        let status = relay(&*runtime, &id, &log, wanted.stdout || wanted.stderr, &output_tx).await;
        drop(output_tx);
        let _ = exit_tx.send(status);
    });
    Session {
        stdin: None,
        output,
        resize: None,
        exit,
    }
}

async fn relay(
    runtime: &dyn Runtime,
    id: &str,
    log: &std::path::Path,
    is_wanted: bool,
    output: &mpsc::Sender<(u8, Bytes)>,
) -> serde_json::Value {
    let mut file = match tokio::fs::File::open(log).await {
        Ok(file) => file,
        Err(e) => return failure(&format!("cannot read the container's output: {e}")),
    };
    if let Err(e) = file.seek(SeekFrom::End(0)).await {
        return failure(&format!("cannot read the container's output: {e}"));
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match file.read(&mut buf).await {
            Ok(0) => {
                let is_running = runtime.state(id).is_ok_and(|s| s.is_running());
                if !is_running || output.is_closed() {
                    // One more read: what it wrote just before it ended.
                    if let Ok(n) = file.read(&mut buf).await
                        && n > 0
                        && is_wanted
                    {
                        let _ = output.send((STDOUT, Bytes::copy_from_slice(&buf[..n]))).await;
                    }
                    return success();
                }
                tokio::time::sleep(POLL).await;
            }
            Ok(n) => {
                if is_wanted && output.send((STDOUT, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    return success();
                }
            }
            Err(e) => return failure(&format!("cannot read the container's output: {e}")),
        }
    }
}
