//! Raft's replication and vote RPCs, the batches followers forward to the leader and
//! the hashes replicas compare, on plain TCP (or TLS, for `https` peer URLs)
//! connections next to the gRPC peer service on the same port.
//!
//! ```text
//!  client, once per connection:  "berth-raft/2\n" | cluster ID | member ID | membership index
//!                                 (each u64 LE, see `peer_identity`)
//!  request:   len u32 LE | kind u8 | bincode message (len - 1 bytes)
//!  response:  len u32 LE | status u8 (0 ok, 1 error) | bincode result, or the error's text
//! ```
//!
//! A connection carries one RPC at a time, and a sender keeps a few idle ones per
//! peer. The leader's replication waits for each AppendEntries answer before it sends
//! the next one, so its latency is a write's: on HTTP/2 through tonic each one also
//! crossed the channel's buffer task and both sides' connection tasks, and one
//! request here is one `write` and one `read` on each side. A listener tells the two
//! apart by the first byte, which no HTTP/2 connection starts with, or, over TLS, by
//! the ALPN protocol the dialler asked for (`crate::tls::RAFT_ALPN`).
//!
//! A server reads nothing from a connection whose greeting names another cluster or
//! a sender that is not a member (see `peer_identity`), nor a request longer than
//! its kind can be (see `FrameLimits`): it answers with an error frame that says why
//! and closes the connection. A body is read as its bytes arrive, so a length prefix
//! alone allocates nothing.
//!
//! Versions: `berth-raft/1` greeted without the identity. A replica of this version
//! answers such a greeting with an error frame naming both versions, which the
//! earlier replica reports as the peer's refusal; an earlier replica closes a
//! connection that greets with `berth-raft/2`, which this one reports as the peer
//! being unreachable. A cluster is upgraded by stopping every member, upgrading, and
//! starting them again: the two versions never exchange Raft messages.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use super::frame_limits::MAX_FRAME;
use crate::peer_identity::{IDENTITY_BYTES, Me, PeerIdentity};
use crate::tls::{PeerDialer, PeerStream};

pub const MAGIC: &[u8] = b"berth-raft/2\n";
/// The greeting of earlier versions, which did not name the sender.
const MAGIC_V1: &[u8] = b"berth-raft/1\n";

/// Idle connections kept per peer.
const MAX_IDLE: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A refused connection is read (and what it sends thrown away) for this long and
/// this many bytes after the refusal, so that the refusal is not lost to a reset.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 1 << 20;
/// How long a new connection may take to greet.
const GREETING_TIME: Duration = Duration::from_secs(10);
/// The first allocation for a body; it grows as the bytes arrive.
const FIRST_READ: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    AppendEntries = 1,
    Vote = 2,
    /// A follower's batch of client commands for the leader to write, answered with a
    /// [`ForwardOutcome`](super::ForwardOutcome). Kind 3 was this request with the
    /// answer of earlier versions (errors as a gRPC status): it is not reused, so a
    /// replica of an earlier version is refused before anything is written.
    ForwardBatch = 4,
    /// A replica's hash of its key-value history at a revision (etcd's HashKV), for
    /// the corruption checks: answered with `Result<PeerHash, StoreError>`.
    HashKv = 5,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::AppendEntries),
            2 => Some(Kind::Vote),
            4 => Some(Kind::ForwardBatch),
            5 => Some(Kind::HashKv),
            _ => None,
        }
    }
}

/// Whether a connection that starts with `first` speaks this protocol.
pub fn is_raft_stream(first: u8) -> bool {
    first == MAGIC[0]
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached, or the connection broke.
    #[error("{0}")]
    Unreachable(io::Error),
    /// The peer answered with an error.
    #[error("peer refused the request: {0}")]
    Refused(String),
    /// The request cannot be sent (it is too large).
    #[error("{0}")]
    Unsendable(io::Error),
    /// The request went out and no answer came back: the peer may have acted on it.
    #[error("{0}")]
    Lost(io::Error),
}

/// Idle connections to each peer, by URL, who this replica says it is when it dials
/// one, and how it dials (TLS for `https` URLs).
#[derive(Debug)]
pub struct Pools {
    me: Me,
    idle: Mutex<BTreeMap<String, Vec<PeerStream>>>,
    dialer: PeerDialer,
}

impl Pools {
    /// Pools that dial `http` URLs only; see [`Pools::with_dialer`].
    pub fn new(me: Me) -> Self {
        Self {
            me,
            idle: Mutex::default(),
            dialer: PeerDialer::default(),
        }
    }

    pub fn with_dialer(self, dialer: PeerDialer) -> Self {
        Self { dialer, ..self }
    }

    fn take(&self, url: &str) -> Option<PeerStream> {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(url)
            .and_then(Vec::pop)
    }

    fn put_back(&self, url: &str, stream: PeerStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.entry(url.to_string()).or_default();
        if conns.len() < MAX_IDLE {
            conns.push(stream);
        }
    }

    /// Sends one request to the peer at `url` and returns its answer, all within
    /// `timeout`. A request that fails on a connection kept from before is sent once
    /// more on a new one (the peer may have restarted since): Raft's RPCs may be
    /// delivered twice.
    pub async fn call(&self, url: &str, kind: Kind, message: &[u8], timeout: Duration) -> Result<Vec<u8>, CallError> {
        let request = frame(kind as u8, message).map_err(CallError::Unsendable)?;
        let attempt = async {
            if let Some(mut stream) = self.take(url)
                && let Ok(answer) = exchange(&mut stream, &request).await
            {
                return Ok((stream, answer));
            }
            let mut stream = self.dial(url).await?;
            let answer = exchange(&mut stream, &request).await?;
            Ok((stream, answer))
        };
        let (stream, answer) = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| CallError::Unreachable(no_answer(url, timeout)))?
            .map_err(CallError::Unreachable)?;
        self.finish(url, stream, answer)
    }

    /// Sends one request that must not be delivered twice (a write) and returns its
    /// answer, within `timeout`. A kept connection is used only if the peer has not
    /// closed it; once the request is on its way it is never sent again.
    pub async fn call_once(
        &self,
        url: &str,
        kind: Kind,
        message: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let request = frame(kind as u8, message).map_err(CallError::Unsendable)?;
        let attempt = async {
            let mut stream = loop {
                match self.take(url) {
                    Some(stream) if is_open(&stream) => break stream,
                    Some(_) => continue,
                    None => break self.dial(url).await.map_err(CallError::Unreachable)?,
                }
            };
            let answer = exchange(&mut stream, &request).await.map_err(CallError::Lost)?;
            Ok::<_, CallError>((stream, answer))
        };
        let (stream, answer) = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| CallError::Lost(no_answer(url, timeout)))??;
        self.finish(url, stream, answer)
    }

    /// Keeps the connection of a complete exchange and reads the peer's answer.
    fn finish(&self, url: &str, stream: PeerStream, (status, body): (u8, Vec<u8>)) -> Result<Vec<u8>, CallError> {
        self.put_back(url, stream);
        match status {
            0 => Ok(body),
            _ => Err(CallError::Refused(String::from_utf8_lossy(&body).into_owned())),
        }
    }
}

fn no_answer(url: &str, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer from {url} within {timeout:?}"),
    )
}

/// Whether a kept connection is still open: nothing is due on it between requests,
/// so anything readable is the peer closing it (or garbage). Over TLS too: the
/// listener sends no session tickets, so a readable socket is a close_notify or a
/// reset, and a connection found readable is dropped, never read from again.
fn is_open(stream: &PeerStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.tcp().try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl Pools {
    async fn dial(&self, url: &str) -> io::Result<PeerStream> {
        let mut stream = self.dialer.connect(url, CONNECT_TIMEOUT).await?;
        let mut greeting = Vec::with_capacity(MAGIC.len() + IDENTITY_BYTES);
        greeting.extend_from_slice(MAGIC);
        greeting.extend_from_slice(&self.me.identity().to_bytes());
        stream.write_all(&greeting).await?;
        Ok(stream)
    }
}

fn frame(tag: u8, body: &[u8]) -> io::Result<Vec<u8>> {
    if body.len() >= MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a message of {} bytes is larger than {MAX_FRAME}", body.len()),
        ));
    }
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&(body.len() as u32 + 1).to_le_bytes());
    out.push(tag);
    out.extend_from_slice(body);
    Ok(out)
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads a frame's length and tag: the body's length and the tag. `None` at a clean
/// end of the stream.
async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<(usize, u8)>> {
    let mut header = [0u8; 5];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 {
        return Err(invalid("bad frame length 0".into()));
    }
    Ok(Some((len - 1, header[4])))
}

/// Reads `len` bytes, allocating as they arrive rather than for `len` up front.
async fn read_body<S: AsyncRead + Unpin>(stream: &mut S, len: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(len.min(FIRST_READ));
    let read = (&mut *stream).take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the frame was cut short"));
    }
    Ok(body)
}

/// Reads one answer frame: its status and body.
async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(u8, Vec<u8>)> {
    let (len, status) = read_header(stream)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection"))?;
    if len >= MAX_FRAME {
        return Err(invalid(format!("an answer of {len} bytes is larger than {MAX_FRAME}")));
    }
    Ok((status, read_body(stream, len).await?))
}

async fn exchange(stream: &mut PeerStream, request: &[u8]) -> io::Result<(u8, Vec<u8>)> {
    stream.write_all(request).await?;
    stream.flush().await?;
    read_answer(stream).await
}

/// What a server checks before it reads a request.
pub trait Admission {
    /// Whether the connection's sender is served; why not otherwise.
    fn admit(&self, sender: PeerIdentity) -> Result<(), String>;
    /// The largest message of `kind` this server reads.
    fn max_message_bytes(&self, kind: Kind) -> usize;
}

/// Answers with an error frame that says `why` and ends the connection, reading
/// (and throwing away) what the peer still sends for a moment so that the answer is
/// not lost to a reset. Returns the error the connection ends with.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, kind: io::ErrorKind, why: String) -> io::Error {
    if let Ok(reply) = frame(1, why.as_bytes())
        && stream.write_all(&reply).await.is_ok()
        && stream.flush().await.is_ok()
    {
        let _ = stream.shutdown().await;
        let drain = async {
            let mut sink = [0u8; 16 * 1024];
            let mut drained = 0;
            while drained < DRAIN_BYTES {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
    io::Error::new(kind, why)
}

/// Serves one connection that starts with [`MAGIC`] and a sender `admission` admits:
/// each request is answered by `handle` (an encoded answer, or an error's text)
/// before the next is read.
pub async fn serve<S, A, H, F>(mut stream: S, admission: A, handle: H) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: Admission,
    H: Fn(Kind, Vec<u8>) -> F,
    F: Future<Output = Result<Vec<u8>, String>>,
{
    let mut greeting = [0u8; MAGIC.len() + IDENTITY_BYTES];
    let greeted = tokio::time::timeout(GREETING_TIME, stream.read_exact(&mut greeting[..MAGIC.len()])).await;
    greeted.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no greeting"))??;
    let (magic, identity) = greeting.split_at_mut(MAGIC.len());
    if magic == MAGIC_V1 {
        let why = "this replica speaks berth-raft/2, which names the sender's cluster and member, and the \
                   sender berth-raft/1 (an earlier berth version): every member must run the same version";
        return Err(refuse(&mut stream, io::ErrorKind::InvalidData, why.into()).await);
    }
    if magic != MAGIC {
        return Err(invalid("not a raft stream".into()));
    }
    let greeted = tokio::time::timeout(GREETING_TIME, stream.read_exact(identity)).await;
    greeted.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no identity in the greeting"))??;
    let identity: [u8; IDENTITY_BYTES] = identity.try_into().unwrap_or([0; IDENTITY_BYTES]);
    let sender = PeerIdentity::from_bytes(identity);
    if let Err(why) = admission.admit(sender) {
        return Err(refuse(&mut stream, io::ErrorKind::PermissionDenied, why).await);
    }
    while let Some((len, tag)) = read_header(&mut stream).await? {
        // Checked again for each request: the sender may have been removed since.
        if let Err(why) = admission.admit(sender) {
            return Err(refuse(&mut stream, io::ErrorKind::PermissionDenied, why).await);
        }
        let Some(kind) = Kind::from_byte(tag) else {
            let why = format!("unknown request kind {tag}");
            return Err(refuse(&mut stream, io::ErrorKind::InvalidData, why).await);
        };
        let limit = admission.max_message_bytes(kind);
        if len > limit {
            let why = format!("a {kind:?} message of {len} bytes is larger than this replica's limit of {limit} bytes");
            return Err(refuse(&mut stream, io::ErrorKind::InvalidData, why).await);
        }
        let body = read_body(&mut stream, len).await?;
        let reply = match handle(kind, body).await {
            Ok(body) => frame(0, &body)?,
            Err(why) => frame(1, why.as_bytes())?,
        };
        stream.write_all(&reply).await?;
        stream.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
