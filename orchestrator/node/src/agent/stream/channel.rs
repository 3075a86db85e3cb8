//! Kubernetes' channel protocol over WebSocket (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`): every binary message starts with its stream's number.
//!
//! ```text
//!  0 stdin   client → agent
//!  1 stdout  agent → client
//!  2 stderr  agent → client
//!  3 error   agent → client, once, last: a metav1.Status (Success, or NonZeroExitCode
//!            with the code in details.causes[ExitCode])
//!  4 resize  client → agent: {"Width": w, "Height": h}
//!  255 close client → agent, v5 only: [255, n] closes stream n (stdin: EOF)
//! ```

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::session::{Session, TerminalSize};
use super::websocket::{self, Message, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, V4];

const STDIN: u8 = 0;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// Relays `session` over the upgraded connection until the session has ended and its
/// Status is sent, or the client goes away.
pub async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(io: S, session: Session) {
    let Session {
        stdin,
        mut output,
        resize,
        exit,
    } = session;
    let (mut reader, mut writer) = tokio::io::split(io);
    let (frames_tx, mut frames_rx) = mpsc::channel::<(u8, Vec<u8>)>(16);
    let writing = tokio::spawn(async move {
        while let Some((opcode, payload)) = frames_rx.recv().await {
            if websocket::write_frame(&mut writer, opcode, &payload).await.is_err() {
                return;
            }
            if opcode == OP_CLOSE {
                let _ = writer.shutdown().await;
                return;
            }
        }
    });
    let (client_gone_tx, mut client_gone) = tokio::sync::oneshot::channel::<()>();
    let pongs = frames_tx.clone();
    let reading = tokio::spawn(async move {
        let mut stdin = stdin;
        let mut partial = None;
        loop {
            let message = match websocket::read_message(&mut reader, &mut partial).await {
                Ok(message) => message,
                Err(error) => {
                    tracing::debug!(%error, "the exec client's connection ended");
                    break;
                }
            };
            match message {
                Message {
                    opcode: OP_PING,
                    payload,
                } => {
                    let _ = pongs.send((OP_PONG, payload.to_vec())).await;
                }
                Message { opcode: OP_CLOSE, .. } => break,
                Message {
                    opcode: OP_BINARY | OP_TEXT,
                    payload,
                } => match payload.first() {
                    Some(&STDIN) => {
                        if let Some(tx) = &stdin
                            && payload.len() > 1
                            && tx.send(payload.slice(1..)).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Some(&RESIZE) => {
                        if let (Some(resize), Ok(size)) =
                            (&resize, serde_json::from_slice::<TerminalSize>(&payload[1..]))
                        {
                            let _ = resize.send((size.width, size.height));
                        }
                    }
                    Some(&CLOSE) if payload.get(1) == Some(&STDIN) => stdin = None,
                    _ => {}
                },
                _ => {}
            }
        }
        let _ = client_gone_tx.send(());
    });
    // Output first, then the Status: kubectl takes the Status as the end.
    let status = loop {
        tokio::select! {
            chunk = output.recv() => match chunk {
                Some((stream, bytes)) => {
                    if frames_tx.send((OP_BINARY, prefixed(stream, &bytes))).await.is_err() {
                        break None;
                    }
                }
                None => break exit.await.ok(),
            },
            _ = &mut client_gone => break None,
        }
    };
    if let Some(status) = status {
        send_status(&frames_tx, &status).await;
        let _ = frames_tx.send((OP_CLOSE, websocket::close_payload(1000, ""))).await;
    }
    drop(frames_tx);
    reading.abort();
    let _ = writing.await;
}

async fn send_status(frames: &mpsc::Sender<(u8, Vec<u8>)>, status: &Value) {
    let body = serde_json::to_vec(status).unwrap_or_default();
    let _ = frames.send((OP_BINARY, prefixed(ERROR, &body))).await;
}

fn prefixed(stream: u8, bytes: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(bytes.len() + 1);
    payload.push(stream);
    payload.extend_from_slice(bytes);
    payload
}

/// The subprotocol to answer with: the first the client offers that is served.
pub fn choose(offered: &str) -> Option<&'static str> {
    offered
        .split(',')
        .map(str::trim)
        .find_map(|p| PROTOCOLS.iter().find(|served| **served == p).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_first_served_protocol_offered() {
        assert_eq!(choose("v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io"), Some(V5));
        assert_eq!(choose("base64.channel.k8s.io,v4.channel.k8s.io"), Some(V4));
        assert_eq!(choose("channel.k8s.io"), None);
    }
}
