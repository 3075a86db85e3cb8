//! SPDY tunnelled in WebSocket (`SPDY/3.1+portforward.k8s.io`), the way kubectl 1.31+
//! tries port forwarding first: every binary message carries SPDY's bytes as they
//! come. The tunnel turns the WebSocket connection back into a byte stream, over
//! which the SPDY server runs as it does on a plain upgrade.
//!
//! ```text
//! upgraded ──messages──► pump ──bytes──► duplex ◄──► spdy::serve
//!          ◄──binary───        ◄─bytes──
//! ```

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use super::websocket::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

pub const PORT_FORWARD: &str = "SPDY/3.1+portforward.k8s.io";

/// The byte stream the WebSocket connection `io` carries; pumps run until either side
/// ends.
pub fn open<S: AsyncRead + AsyncWrite + Send + 'static>(io: S) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_ws, mut to_ws) = tokio::io::split(io);
    let (mut from_spdy, mut to_spdy) = tokio::io::split(ours);
    let (frames_tx, mut frames_rx) = mpsc::channel::<(u8, Vec<u8>)>(32);
    tokio::spawn(async move {
        while let Some((opcode, payload)) = frames_rx.recv().await {
            if websocket::write_frame(&mut to_ws, opcode, &payload).await.is_err() || opcode == OP_CLOSE {
                break;
            }
        }
        let _ = to_ws.shutdown().await;
    });
    let pongs = frames_tx.clone();
    tokio::spawn(async move {
        let mut partial = None;
        while let Ok(message) = websocket::read_message(&mut from_ws, &mut partial).await {
            match message.opcode {
                OP_PING => {
                    let _ = pongs.send((OP_PONG, message.payload.to_vec())).await;
                }
                OP_CLOSE => break,
                OP_BINARY | OP_TEXT => {
                    let is_written = to_spdy.write_all(&message.payload).await.is_ok();
                    if !is_written {
                        break;
                    }
                }
                _ => {}
            }
        }
        let _ = to_spdy.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_spdy.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if frames_tx.send((OP_BINARY, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = frames_tx.send((OP_CLOSE, websocket::close_payload(1000, ""))).await;
    });
    theirs
}
