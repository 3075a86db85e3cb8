//! The server side of a SPDY/3.1 connection, as kubectl's SPDY library (spdystream)
//! speaks it: the client opens streams with SYN_STREAM and headers, the server answers
//! each with SYN_REPLY; DATA frames carry the bytes, FIN half-closes; PINGs are
//! echoed. spdystream keeps no flow-control windows, so WINDOW_UPDATE and SETTINGS are
//! read and let go.
//!
//! ```text
//! reader (this task): frames in ──► SYN_STREAM: reply, hand a Stream to the handler
//!                                   DATA: to the stream's inbound channel (FIN: close it)
//!                                   PING: echo          RST_STREAM: close the stream
//! writer (a task):    frames out ◄── every Outbound (SYN_REPLY, DATA, FIN, PING)
//! ```

pub mod frame;
pub mod headers;

use std::collections::HashMap;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use frame::{FLAG_FIN, Frame};
use headers::HeaderCodec;

/// The largest frame taken from a client.
const MAX_FRAME_BYTES: usize = 1 << 20;
/// The largest DATA payload berth sends in one frame.
const DATA_CHUNK_BYTES: usize = 32 * 1024;

/// A stream the client opened.
pub struct Stream {
    /// Names lower-cased, as they came.
    pub headers: Vec<(String, String)>,
    /// What the client sends on it; ends at its FIN (or a reset).
    pub inbound: mpsc::Receiver<Bytes>,
    pub outbound: Outbound,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The sending half of one stream.
#[derive(Clone)]
pub struct Outbound {
    id: u32,
    frames: mpsc::Sender<Vec<u8>>,
}

impl Outbound {
    /// Sends `bytes` as DATA frames; false once the connection is gone.
    pub async fn send(&self, bytes: &[u8]) -> bool {
        for chunk in bytes.chunks(DATA_CHUNK_BYTES) {
            let data = Frame::Data {
                stream_id: self.id,
                flags: 0,
                payload: Bytes::copy_from_slice(chunk),
            };
            if self.frames.send(frame::encode(&data)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Ends this side of the stream (an empty DATA frame with FIN).
    pub async fn finish(&self) {
        let fin = Frame::Data {
            stream_id: self.id,
            flags: FLAG_FIN,
            payload: Bytes::new(),
        };
        let _ = self.frames.send(frame::encode(&fin)).await;
    }
}

/// Serves the connection until the client goes away, handing each new stream to
/// `on_stream`.
pub async fn serve<S, F>(io: S, mut on_stream: F)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    F: FnMut(Stream),
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let (frames_tx, mut frames_rx) = mpsc::channel::<Vec<u8>>(64);
    let writing = tokio::spawn(async move {
        while let Some(bytes) = frames_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut codec = HeaderCodec::new();
    let mut inbound: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let frame = match read_frame(&mut reader).await {
            Ok(frame) => frame,
            Err(error) => {
                tracing::debug!(%error, "a SPDY connection ended");
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                header_block,
            } => {
                let headers = match codec.decode(&header_block) {
                    Ok(headers) => headers,
                    Err(error) => {
                        // The header stream's state is lost: nothing later can be read.
                        tracing::debug!(%error, "a SPDY header block does not decode");
                        break;
                    }
                };
                let reply = Frame::SynReply {
                    stream_id,
                    flags: 0,
                    header_block: codec.encode(&[]).into(),
                };
                if frames_tx.send(frame::encode(&reply)).await.is_err() {
                    break;
                }
                let (tx, rx) = mpsc::channel(16);
                if flags & FLAG_FIN == 0 {
                    inbound.insert(stream_id, tx);
                }
                on_stream(Stream {
                    headers,
                    inbound: rx,
                    outbound: Outbound {
                        id: stream_id,
                        frames: frames_tx.clone(),
                    },
                });
            }
            Frame::Data {
                stream_id,
                flags,
                payload,
            } => {
                if let Some(tx) = inbound.get(&stream_id)
                    && !payload.is_empty()
                    && tx.send(payload).await.is_err()
                {
                    inbound.remove(&stream_id);
                }
                if flags & FLAG_FIN != 0 {
                    inbound.remove(&stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                inbound.remove(&stream_id);
            }
            Frame::Ping { id } => {
                let _ = frames_tx.send(frame::encode(&Frame::Ping { id })).await;
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. } | Frame::Ignored { .. } => {}
        }
    }
    drop(inbound);
    drop(frames_tx);
    // The writer ends once every stream's Outbound is dropped too.
    let _ = writing.await;
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] frame::FrameError),
    #[error("a frame of {0} bytes is too large")]
    TooLarge(usize),
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Frame, ReadError> {
    let mut head = [0u8; 8];
    reader.read_exact(&mut head).await?;
    let length = frame::frame_length(&head);
    if length > MAX_FRAME_BYTES {
        return Err(ReadError::TooLarge(length));
    }
    let mut bytes = vec![0u8; length];
    bytes[..8].copy_from_slice(&head);
    reader.read_exact(&mut bytes[8..]).await?;
    Ok(frame::decode(bytes.into())?)
}
