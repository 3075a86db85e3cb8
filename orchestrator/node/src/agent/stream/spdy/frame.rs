//! SPDY/3.1's frames, as bytes and back; no I/O here.
//!
//! ```text
//! control: 1 | version(15) = 3 | type(16) | flags(8) | length(24) | body
//! data:    0 | stream id(31)             | flags(8) | length(24) | payload
//! ```
//!
//! Header blocks stay compressed here; `headers` compresses and expands them.

use bytes::Bytes;

pub const VERSION: u16 = 3;
/// DATA and SYN_STREAM/SYN_REPLY: the sender's half of the stream ends.
pub const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        flags: u8,
        header_block: Bytes,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        header_block: Bytes,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        payload: Bytes,
    },
    /// SETTINGS, HEADERS, WINDOW_UPDATE and unknown types: read and let go.
    /// (kubectl's SPDY library keeps no flow-control windows, so neither does berth.)
    Ignored {
        kind: u16,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("SPDY version {0} (only 3 is spoken)")]
    Version(u16),
    #[error("a {kind} frame too short ({length} bytes)")]
    Short { kind: &'static str, length: usize },
}

/// The frame's total length (head included), once its 8-byte head is known.
pub fn frame_length(head: &[u8; 8]) -> usize {
    8 + (usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses one whole frame (head and body).
pub fn decode(frame: Bytes) -> Result<Frame, FrameError> {
    let flags = frame[4];
    let body = frame.slice(8..);
    if frame[0] & 0x80 == 0 {
        return Ok(Frame::Data {
            stream_id: u32_at(&frame, 0) & 0x7FFF_FFFF,
            flags,
            payload: body,
        });
    }
    let version = u16::from_be_bytes([frame[0], frame[1]]) & 0x7FFF;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let kind = u16::from_be_bytes([frame[2], frame[3]]);
    let need = |name: &'static str, length: usize| {
        if body.len() < length {
            Err(FrameError::Short {
                kind: name,
                length: body.len(),
            })
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        SYN_STREAM => {
            // stream id, associated stream id, priority and slot, then the headers.
            need("SYN_STREAM", 10)?;
            Frame::SynStream {
                stream_id: u32_at(&body, 0) & 0x7FFF_FFFF,
                flags,
                header_block: body.slice(10..),
            }
        }
        SYN_REPLY => {
            need("SYN_REPLY", 4)?;
            Frame::SynReply {
                stream_id: u32_at(&body, 0) & 0x7FFF_FFFF,
                flags,
                header_block: body.slice(4..),
            }
        }
        RST_STREAM => {
            need("RST_STREAM", 8)?;
            Frame::RstStream {
                stream_id: u32_at(&body, 0) & 0x7FFF_FFFF,
                status: u32_at(&body, 4),
            }
        }
        PING => {
            need("PING", 4)?;
            Frame::Ping { id: u32_at(&body, 0) }
        }
        GOAWAY => {
            need("GOAWAY", 4)?;
            Frame::GoAway {
                last_good_stream_id: u32_at(&body, 0) & 0x7FFF_FFFF,
            }
        }
        other @ (SETTINGS | HEADERS | WINDOW_UPDATE) => Frame::Ignored { kind: other },
        other => Frame::Ignored { kind: other },
    })
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// The frame as bytes. Only the frames a server sends are encoded with a body;
/// `Ignored` has none to give.
pub fn encode(frame: &Frame) -> Vec<u8> {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            header_block,
        } => {
            let mut body = stream_id.to_be_bytes().to_vec();
            body.extend_from_slice(&[0; 6]);
            body.extend_from_slice(header_block);
            control(SYN_STREAM, *flags, &body)
        }
        Frame::SynReply {
            stream_id,
            flags,
            header_block,
        } => {
            let mut body = stream_id.to_be_bytes().to_vec();
            body.extend_from_slice(header_block);
            control(SYN_REPLY, *flags, &body)
        }
        Frame::RstStream { stream_id, status } => {
            let mut body = stream_id.to_be_bytes().to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(RST_STREAM, 0, &body)
        }
        Frame::Ping { id } => control(PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last_good_stream_id } => {
            let mut body = last_good_stream_id.to_be_bytes().to_vec();
            body.extend_from_slice(&0u32.to_be_bytes());
            control(GOAWAY, 0, &body)
        }
        Frame::Data {
            stream_id,
            flags,
            payload,
        } => {
            let mut out = Vec::with_capacity(8 + payload.len());
            out.extend_from_slice(&(stream_id & 0x7FFF_FFFF).to_be_bytes());
            out.push(*flags);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(payload);
            out
        }
        Frame::Ignored { kind } => control(*kind, 0, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) {
        let bytes = Bytes::from(encode(&frame));
        let head: [u8; 8] = bytes[..8].try_into().unwrap();
        assert_eq!(frame_length(&head), bytes.len());
        assert_eq!(decode(bytes).unwrap(), frame);
    }

    #[test]
    fn frames_round_trip() {
        round_trip(Frame::SynStream {
            stream_id: 7,
            flags: FLAG_FIN,
            header_block: Bytes::from_static(b"\x78\x01abc"),
        });
        round_trip(Frame::SynReply {
            stream_id: 7,
            flags: 0,
            header_block: Bytes::from_static(b"xyz"),
        });
        round_trip(Frame::RstStream {
            stream_id: 3,
            status: 3, // REFUSED_STREAM
        });
        round_trip(Frame::Ping { id: 0xdead_beef });
        round_trip(Frame::GoAway { last_good_stream_id: 9 });
        round_trip(Frame::Data {
            stream_id: 5,
            flags: FLAG_FIN,
            payload: Bytes::from(vec![7u8; 70_000]),
        });
    }

    #[test]
    fn a_ping_is_the_specs_bytes() {
        assert_eq!(encode(&Frame::Ping { id: 1 }), [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
    }

    #[test]
    fn other_versions_and_short_frames_are_errors() {
        let mut ping = encode(&Frame::Ping { id: 1 });
        ping[1] = 2;
        assert_eq!(decode(ping.into()), Err(FrameError::Version(2)));
        let short = control(RST_STREAM, 0, &[0, 0, 0, 1]);
        assert!(matches!(decode(short.into()), Err(FrameError::Short { .. })));
    }
}
