//! The server side of WebSocket (RFC 6455) as Kubernetes' streaming endpoints use it:
//! the opening handshake's answer, and frames: the client's are masked, ours are not;
//! fragmented messages are joined; pings are answered by the caller.
//!
//! ```text
//!  0               1               2               3
//!  FIN RSV opcode  MASK len7       [len16 | len64]  [masking key]  payload...
//! ```

use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID RFC 6455 appends to the client's key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest message taken from a client: stdin chunks and resize messages are small.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    let mut hash = Sha1::new();
    hash.update(key.trim().as_bytes());
    hash.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hash.finalize())
}

/// One whole message (or control frame) from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub opcode: u8,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
}

/// Reads the next message, joining fragments; control frames (close, ping, pong) come
/// back as they arrive, even between the fragments of a message.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    partial: &mut Option<Message>,
) -> Result<Message, FrameError> {
    loop {
        let (fin, opcode, payload) = read_frame(reader).await?;
        if opcode >= OP_CLOSE {
            if !fin {
                return Err(FrameError::Protocol("a fragmented control frame"));
            }
            return Ok(Message { opcode, payload });
        }
        let message = match (opcode, partial.take()) {
            (OP_CONTINUATION, None) => return Err(FrameError::Protocol("a continuation without a message")),
            (OP_CONTINUATION, Some(mut started)) => {
                if started.payload.len() + payload.len() > MAX_MESSAGE_BYTES {
                    return Err(FrameError::Protocol("a message too large"));
                }
                let mut joined = Vec::with_capacity(started.payload.len() + payload.len());
                joined.extend_from_slice(&started.payload);
                joined.extend_from_slice(&payload);
                started.payload = joined.into();
                started
            }
            (_, Some(_)) => return Err(FrameError::Protocol("a new message inside a fragmented one")),
            (opcode, None) => Message { opcode, payload },
        };
        if fin {
            return Ok(message);
        }
        *partial = Some(message);
    }
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(bool, u8, Bytes), FrameError> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    let fin = head[0] & 0x80 != 0;
    if head[0] & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set without an extension"));
    }
    let opcode = head[0] & 0x0F;
    if head[1] & 0x80 == 0 {
        return Err(FrameError::Protocol("an unmasked frame from a client"));
    }
    let len = match head[1] & 0x7F {
        126 => u64::from(reader.read_u16().await?),
        127 => reader.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_MESSAGE_BYTES as u64 {
        return Err(FrameError::Protocol("a frame too large"));
    }
    let mut mask = [0u8; 4];
    reader.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).await?;
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
    Ok((fin, opcode, payload.into()))
}

/// One whole, unmasked frame.
pub fn encode_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    writer.write_all(&encode_frame(opcode, payload)).await?;
    writer.flush().await
}

/// A close frame's payload: the status code, then a reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's frame: masked, as RFC 6455 requires of clients.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = encode_frame(opcode, payload);
        if !fin {
            frame[0] &= 0x7F;
        }
        let header_len = frame.len() - payload.len();
        frame[1] |= 0x80;
        let mut out = frame[..header_len].to_vec();
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn lengths_take_7_16_or_64_bits() {
        assert_eq!(encode_frame(OP_BINARY, &[1; 125])[..2], [0x82, 125]);
        assert_eq!(encode_frame(OP_BINARY, &[1; 126])[..4], [0x82, 126, 0, 126]);
        assert_eq!(
            encode_frame(OP_BINARY, &vec![1; 70_000])[..10],
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }

    #[tokio::test]
    async fn reads_masked_fragmented_messages_with_control_frames_between() {
        let mut wire = client_frame(false, OP_BINARY, b"\x00hel");
        wire.extend(client_frame(true, OP_PING, b"p"));
        wire.extend(client_frame(true, OP_CONTINUATION, &[b'l'; 300]));
        wire.extend(client_frame(true, OP_CLOSE, &close_payload(1000, "")));
        let mut reader = &wire[..];
        let mut partial = None;
        let ping = read_message(&mut reader, &mut partial).await.unwrap();
        assert_eq!((ping.opcode, &ping.payload[..]), (OP_PING, &b"p"[..]));
        let data = read_message(&mut reader, &mut partial).await.unwrap();
        assert_eq!(data.opcode, OP_BINARY);
        assert_eq!(&data.payload[..4], b"\x00hel");
        assert_eq!(data.payload.len(), 4 + 300);
        let close = read_message(&mut reader, &mut partial).await.unwrap();
        assert_eq!((close.opcode, &close.payload[..]), (OP_CLOSE, &[0x03, 0xe8][..]));
    }

    #[tokio::test]
    async fn refuses_unmasked_frames() {
        let wire = encode_frame(OP_BINARY, b"x");
        let error = read_message(&mut &wire[..], &mut None).await.unwrap_err();
        assert!(error.to_string().contains("unmasked"), "{error}");
    }
}
