//! Client connections whose requests carry a URL as their `:authority`, mended before
//! the HTTP/2 server reads them.
//!
//! etcdctl 3.4 dials a single endpoint (`endpoint status`, `endpoint hashkv`,
//! `snapshot save`, `move-leader`, `defrag`) through gRPC's passthrough resolver with
//! the endpoint URL as the target, so every request on that connection says
//! `:authority: http://127.0.0.1:2379`. etcd's Go server takes it; the HTTP/2 server
//! under tonic (h2) refuses a malformed authority with `RST_STREAM(PROTOCOL_ERROR)` and
//! has no setting to relax that.
//!
//! So the first header block of each connection is decoded here. A well-formed
//! authority (every other client) switches the connection to a plain pass-through for
//! the rest of its life, at no cost. A URL switches it to rewriting: every header
//! block is decoded with the client's HPACK state and encoded again without the
//! dynamic table, its authority cut down to `host:port`. A gRPC client keeps one
//! authority per connection, so the first block decides for all.
//!
//! ```text
//!  client bytes ──► preface ──► frames ─┬─ HEADERS/CONTINUATION ──► block ──► decide / rewrite
//!                                       └─ any other frame ──► as they are
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use httlib_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The largest frame payload a peer may send before the server raises the limit; the
/// server behind this keeps the default.
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// The HPACK table size the server behind this allows (the protocol's default).
const HEADER_TABLE_SIZE: u32 = 4096;
/// A header block larger than this is left to the server to refuse.
const MAX_BLOCK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// This many bytes of the connection preface are still to come.
    Preface(usize),
    /// Waiting for the first header block.
    Deciding,
    /// The first block named a URL: every block is rewritten.
    Rewriting,
    /// Nothing to mend: bytes go through untouched.
    PassThrough,
}

/// A header block being gathered from a HEADERS frame and its CONTINUATIONs.
struct Block {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as received, for when the block goes through unchanged.
    raw: BytesMut,
}

/// A client connection, as the HTTP/2 server reads it. Writes go straight through.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Read from the client, not yet looked at.
    raw: BytesMut,
    /// Ready for the server.
    ready: BytesMut,
    /// Bytes of a frame that is not part of a header block, still to pass through.
    skip: usize,
    block: Option<Block>,
    /// The client's HPACK state, while its blocks are decoded.
    decoder: Option<Decoder<'static>>,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            mode: Mode::Preface(PREFACE_LEN),
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            skip: 0,
            block: None,
            decoder: None,
        }
    }

    /// Moves everything that can be decided on from `raw` to `ready`.
    fn process(&mut self) {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.raw.len());
                let through = self.raw.split_to(n);
                self.ready.extend_from_slice(&through);
                self.skip -= n;
                if self.skip > 0 {
                    return;
                }
            }
            match self.mode {
                Mode::PassThrough => {
                    let rest = self.raw.split();
                    self.ready.extend_from_slice(&rest);
                    return;
                }
                Mode::Preface(left) => {
                    let n = left.min(self.raw.len());
                    let through = self.raw.split_to(n);
                    self.ready.extend_from_slice(&through);
                    if n < left {
                        self.mode = Mode::Preface(left - n);
                        return;
                    }
                    self.mode = Mode::Deciding;
                }
                Mode::Deciding | Mode::Rewriting => {
                    if self.raw.len() < FRAME_HEADER_LEN {
                        return;
                    }
                    let len = usize::from(self.raw[0]) << 16 | usize::from(self.raw[1]) << 8 | usize::from(self.raw[2]);
                    let kind = self.raw[3];
                    if kind != TYPE_HEADERS && kind != TYPE_CONTINUATION {
                        self.skip = FRAME_HEADER_LEN + len;
                        continue;
                    }
                    let gathered = self.block.as_ref().map_or(0, |b| b.raw.len());
                    if gathered + len > MAX_BLOCK {
                        self.give_up();
                        continue;
                    }
                    if self.raw.len() < FRAME_HEADER_LEN + len {
                        return;
                    }
                    let frame = self.raw.split_to(FRAME_HEADER_LEN + len);
                    self.on_header_frame(frame);
                }
            }
        }
    }

    /// Stops mending: what was gathered goes through as it came, and so does the rest.
    fn give_up(&mut self) {
        if let Some(block) = self.block.take() {
            self.ready.extend_from_slice(&block.raw);
        }
        self.decoder = None;
        self.mode = Mode::PassThrough;
    }

    /// Stops mending and lets `frame` through after what was gathered, in order.
    fn give_up_with(&mut self, frame: &[u8]) {
        self.give_up();
        self.ready.extend_from_slice(frame);
    }

    fn on_header_frame(&mut self, frame: BytesMut) {
        let flags = frame[4];
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER_LEN..];
        if frame[3] == TYPE_HEADERS {
            // Malformed (bad lengths, or a new block before the last one ended): the
            // server says so.
            let Some((priority, fragment)) = split_headers_payload(flags, payload).filter(|_| self.block.is_none())
            else {
                self.give_up_with(&frame);
                return;
            };
            let fragment = fragment.to_vec();
            self.block = Some(Block {
                stream_id,
                end_stream: flags & FLAG_END_STREAM != 0,
                priority,
                fragment,
                raw: frame,
            });
        } else {
            match &mut self.block {
                Some(block) if block.stream_id == stream_id => {
                    block.fragment.extend_from_slice(payload);
                    block.raw.extend_from_slice(&frame);
                }
                _ => {
                    self.give_up_with(&frame);
                    return;
                }
            }
        }
        if flags & FLAG_END_HEADERS != 0 {
            let block = self.block.take().expect("gathered above");
            self.on_block(block);
        }
    }

    fn on_block(&mut self, block: Block) {
        let decoder = self
            .decoder
            .get_or_insert_with(|| Decoder::with_dynamic_size(HEADER_TABLE_SIZE));
        let mut fragment = block.fragment.clone();
        let mut fields = Vec::new();
        if decoder.decode(&mut fragment, &mut fields).is_err() {
            self.block = Some(block);
            self.give_up();
            return;
        }
        let authority = fields.iter().find(|(name, _, _)| name == b":authority");
        let fix = authority.map_or(Fix::Keep, |(_, value, _)| fix_authority(value));
        if self.mode == Mode::Deciding {
            if fix == Fix::Keep {
                self.ready.extend_from_slice(&block.raw);
                self.decoder = None;
                self.mode = Mode::PassThrough;
                return;
            }
            tracing::debug!(
                authority = %String::from_utf8_lossy(&authority.map(|a| a.1.clone()).unwrap_or_default()),
                "a client names a URL as its HTTP/2 authority; rewriting its header blocks"
            );
            self.mode = Mode::Rewriting;
        }
        let mut encoder = Encoder::default();
        let mut encoded = Vec::new();
        for (name, value, _) in fields {
            let value = match (&fix, name.as_slice()) {
                (Fix::Drop, b":authority") => continue,
                (Fix::Replace(fixed), b":authority") => fixed.clone(),
                _ => value,
            };
            // Flags 0: a literal without indexing, so the server's table never changes.
            if encoder.encode_literal(name, value, 0, &mut encoded).is_err() {
                self.block = Some(block);
                self.give_up();
                return;
            }
        }
        write_block(&mut self.ready, &block, &encoded);
    }
}

/// The priority fields and the header block fragment of a HEADERS payload, without
/// its padding; `None` if the lengths do not add up.
fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut pad = 0;
    if flags & FLAG_PADDED != 0 {
        let (&len, after) = rest.split_first()?;
        pad = usize::from(len);
        rest = after;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let (fields, after) = rest.split_at_checked(5)?;
        priority = Some(fields.try_into().ok()?);
        rest = after;
    }
    let keep = rest.len().checked_sub(pad)?;
    Some((priority, &rest[..keep]))
}

/// A HEADERS frame (and CONTINUATIONs as needed) carrying `encoded` for `block`'s stream.
fn write_block(out: &mut BytesMut, block: &Block, encoded: &[u8]) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first_len = encoded.len().min(MAX_FRAME_PAYLOAD - priority_len);
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = 0;
    if block.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    write_frame_header(out, priority_len + first.len(), TYPE_HEADERS, flags, block.stream_id);
    if let Some(priority) = &block.priority {
        out.extend_from_slice(priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        rest = after;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        write_frame_header(out, chunk.len(), TYPE_CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
    }
}

fn write_frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

#[derive(Debug, PartialEq, Eq)]
enum Fix {
    Keep,
    Replace(Vec<u8>),
    Drop,
}

/// What to do with an `:authority` value: keep a well-formed one, cut a URL down to
/// its `host:port`, drop what cannot be mended (an authority is optional in HTTP/2).
fn fix_authority(value: &[u8]) -> Fix {
    if tonic::codegen::http::uri::Authority::try_from(value).is_ok() {
        return Fix::Keep;
    }
    let after_scheme = value
        .windows(3)
        .position(|w| w == b"://")
        .map_or(value, |at| &value[at + 3..]);
    let host_port = after_scheme.split(|&b| b == b'/').next().unwrap_or_default();
    if !host_port.is_empty() && tonic::codegen::http::uri::Authority::try_from(host_port).is_ok() {
        Fix::Replace(host_port.to_vec())
    } else {
        Fix::Drop
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = buf.remaining().min(this.ready.len());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::PassThrough && this.raw.is_empty() && this.skip == 0 {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client closed: whatever is left goes to the server as it is.
                this.give_up();
                let rest = this.raw.split();
                this.ready.extend_from_slice(&rest);
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.raw.extend_from_slice(read.filled());
            this.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// A header block as a client's encoder writes it: with incremental indexing, so
    /// later blocks can refer to the table.
    fn encode(encoder: &mut Encoder<'static>, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            let flags = Encoder::BEST_FORMAT | Encoder::WITH_INDEXING | Encoder::HUFFMAN_VALUE;
            encoder
                .encode((name.as_bytes().to_vec(), value.as_bytes().to_vec(), flags), &mut out)
                .unwrap();
        }
        out
    }

    fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame_header(&mut out, payload.len(), kind, flags, stream_id);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    async fn through(input: Vec<u8>) -> Vec<u8> {
        // Fed in small pieces, so that frames arrive split.
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in input.chunks(7) {
                client.write_all(piece).await.unwrap();
            }
        });
        let mut fixed = AuthorityFix::new(server);
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    /// Splits the server's view into frames after the preface: (type, flags, stream, payload).
    fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert_eq!(&bytes[..PREFACE_LEN], PREFACE);
        let mut rest = &bytes[PREFACE_LEN..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
            out.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
            rest = &rest[9 + len..];
        }
        out
    }

    fn decode(decoder: &mut Decoder<'static>, block: &[u8]) -> Vec<(String, String)> {
        let mut buf = block.to_vec();
        let mut fields = Vec::new();
        decoder.decode(&mut buf, &mut fields).unwrap();
        fields
            .into_iter()
            .map(|(n, v, _)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    fn request(authority: &str, path: &str) -> Vec<(&'static str, String)> {
        vec![
            (":method", "POST".into()),
            (":scheme", "http".into()),
            (":path", path.into()),
            (":authority", authority.into()),
            ("content-type", "application/grpc".into()),
        ]
    }

    fn as_refs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        fields.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[tokio::test]
    async fn a_url_authority_is_cut_to_host_and_port_in_every_block() {
        let mut client = Encoder::default();
        let settings = frame(0x4, 0, 0, &[]);
        let first = request("http://127.0.0.1:2379", "/etcdserverpb.Maintenance/Status");
        let second = request("http://127.0.0.1:2379", "/etcdserverpb.Maintenance/HashKV");
        let first_block = encode(&mut client, &as_refs(&first));
        // The second block refers to the client's table for most of its fields.
        let second_block = encode(&mut client, &as_refs(&second));
        assert!(second_block.len() < first_block.len());
        let data = frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0");
        let mut input = PREFACE.to_vec();
        input.extend(settings.clone());
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &first_block));
        input.extend(data.clone());
        // The second block split over HEADERS and a CONTINUATION.
        let (a, b) = second_block.split_at(3);
        input.extend(frame(TYPE_HEADERS, FLAG_END_STREAM, 3, a));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, b));

        let out = frames(&through(input).await);
        let mut server = Decoder::with_dynamic_size(HEADER_TABLE_SIZE);
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!((out[0].0, out[0].3.as_slice()), (0x4, &settings[9..]));
        assert_eq!((out[1].0, out[1].1, out[1].2), (TYPE_HEADERS, FLAG_END_HEADERS, 1));
        let fixed = |fields: &[(&str, String)]| -> Vec<(String, String)> {
            fields
                .iter()
                .map(|(n, v)| {
                    let v = if *n == ":authority" {
                        "127.0.0.1:2379"
                    } else {
                        v.as_str()
                    };
                    (n.to_string(), v.to_string())
                })
                .collect()
        };
        assert_eq!(decode(&mut server, &out[1].3), fixed(&first));
        assert_eq!(out[2].3, data[9..].to_vec(), "other frames pass as they are");
        assert_eq!(
            (out[3].0, out[3].1, out[3].2),
            (TYPE_HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 3)
        );
        assert_eq!(decode(&mut server, &out[3].3), fixed(&second));
    }

    #[tokio::test]
    async fn a_connection_with_a_proper_authority_passes_unchanged() {
        let mut client = Encoder::default();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        for stream in [1, 3, 5] {
            let block = encode(
                &mut client,
                &as_refs(&request("127.0.0.1:2379", "/etcdserverpb.KV/Put")),
            );
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, &block));
            input.extend(frame(0x0, FLAG_END_STREAM, stream, b"\0\0\0\0\0"));
        }
        assert_eq!(through(input.clone()).await, input);
    }

    #[tokio::test]
    async fn a_malformed_sequence_of_header_frames_passes_unchanged_and_in_order() {
        let mut client = Encoder::default();
        let block = encode(
            &mut client,
            &as_refs(&request("http://127.0.0.1:2379", "/etcdserverpb.KV/Put")),
        );
        let (a, b) = block.split_at(4);
        let mut input = PREFACE.to_vec();
        // A block left open, then a new HEADERS on another stream, then a stray
        // CONTINUATION: the server is the one to refuse it, byte for byte.
        input.extend(frame(TYPE_HEADERS, 0, 1, a));
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, b));
        assert_eq!(through(input.clone()).await, input);
    }

    #[test]
    fn authorities_are_kept_cut_or_dropped() {
        assert_eq!(fix_authority(b"127.0.0.1:2379"), Fix::Keep);
        assert_eq!(fix_authority(b"etcd-0.example:2379"), Fix::Keep);
        assert_eq!(
            fix_authority(b"http://127.0.0.1:2379"),
            Fix::Replace(b"127.0.0.1:2379".to_vec())
        );
        assert_eq!(
            fix_authority(b"https://etcd:2379/"),
            Fix::Replace(b"etcd:2379".to_vec())
        );
        assert_eq!(fix_authority(b"unix:///run/etcd.sock"), Fix::Drop);
    }
}
