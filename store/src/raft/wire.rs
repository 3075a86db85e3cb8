//! Raft's replication and vote RPCs, and the batches followers forward to the leader,
//! on plain TCP (or TLS, for `https` peer URLs) connections next to the gRPC peer
//! service on the same port.
//!
//! ```text
//!  client, once per connection:  "berth-raft/1\n"
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

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::tls::{PeerDialer, PeerStream};

pub const MAGIC: &[u8] = b"berth-raft/1\n";

/// The largest message either side accepts.
const MAX_FRAME: usize = 1 << 30;
/// Idle connections kept per peer.
const MAX_IDLE: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

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
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::AppendEntries),
            2 => Some(Kind::Vote),
            4 => Some(Kind::ForwardBatch),
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

/// Idle connections to each peer, by URL, and how to dial new ones.
#[derive(Debug, Default)]
pub struct Pools {
    idle: Mutex<BTreeMap<String, Vec<PeerStream>>>,
    dialer: PeerDialer,
}

impl Pools {
    pub fn new(dialer: PeerDialer) -> Self {
        Self {
            idle: Mutex::default(),
            dialer,
        }
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
        stream.write_all(MAGIC).await?;
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

/// Reads one frame: its tag and body. `None` at a clean end of the stream.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    let tag = body.remove(0);
    Ok(Some((tag, body)))
}

async fn exchange(stream: &mut PeerStream, request: &[u8]) -> io::Result<(u8, Vec<u8>)> {
    stream.write_all(request).await?;
    stream.flush().await?;
    read_frame(stream)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection"))
}

/// Serves one connection that starts with [`MAGIC`]: each request is answered by
/// `handle` (an encoded answer, or an error's text) before the next is read.
pub async fn serve<S, H, F>(mut stream: S, handle: H) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Kind, Vec<u8>) -> F,
    F: Future<Output = Result<Vec<u8>, String>>,
{
    let mut magic = [0u8; MAGIC.len()];
    stream.read_exact(&mut magic).await?;
    if magic != MAGIC {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a raft stream"));
    }
    while let Some((tag, body)) = read_frame(&mut stream).await? {
        let answer = match Kind::from_byte(tag) {
            Some(kind) => handle(kind, body).await,
            None => Err(format!("unknown request kind {tag}")),
        };
        let reply = match answer {
            Ok(body) => frame(0, &body)?,
            Err(why) => frame(1, why.as_bytes())?,
        };
        stream.write_all(&reply).await?;
        stream.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A server that answers each request with its bytes reversed, refuses votes,
    /// and counts its connections.
    async fn echo_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let accepted = accepted.clone();
            async move {
                // One connection at a time, served here: aborting the task ends it.
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let _ = serve(stream, |kind, mut body| async move {
                        match kind {
                            Kind::AppendEntries | Kind::ForwardBatch => {
                                body.reverse();
                                Ok(body)
                            }
                            Kind::Vote => Err("votes are not taken here".to_string()),
                        }
                    })
                    .await;
                }
            }
        });
        (url, accepted, task)
    }

    const A_WHILE: Duration = Duration::from_secs(10);

    #[test]
    fn the_forward_kind_of_earlier_versions_is_unknown() {
        assert_eq!(Kind::from_byte(Kind::ForwardBatch as u8), Some(Kind::ForwardBatch));
        assert_eq!(Kind::from_byte(3), None, "an earlier version's forwarded batch");
    }

    #[tokio::test]
    async fn requests_are_answered_in_turn_on_one_kept_connection() {
        let (url, accepted, _server) = echo_server().await;
        let pools = Pools::default();
        for i in 0..5u8 {
            let answer = pools
                .call(&url, Kind::AppendEntries, &[i, 1, 2], A_WHILE)
                .await
                .unwrap();
            assert_eq!(answer, vec![2, 1, i]);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let big = vec![7u8; 3 << 20];
        assert_eq!(pools.call(&url, Kind::AppendEntries, &big, A_WHILE).await.unwrap(), big);
    }

    #[tokio::test]
    async fn a_refusal_carries_the_peers_reason_and_keeps_the_connection() {
        let (url, accepted, _server) = echo_server().await;
        let pools = Pools::default();
        let error = pools.call(&url, Kind::Vote, b"x", A_WHILE).await.unwrap_err();
        assert!(
            matches!(&error, CallError::Refused(why) if why == "votes are not taken here"),
            "{error}"
        );
        pools.call(&url, Kind::AppendEntries, b"ab", A_WHILE).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_peer_that_restarted_is_redialled_and_one_that_is_down_is_unreachable() {
        let (url, accepted, server) = echo_server().await;
        let pools = Pools::default();
        pools.call(&url, Kind::AppendEntries, b"ab", A_WHILE).await.unwrap();
        // The kept connection dies with the server; a new server on the same port.
        server.abort();
        let _ = server.await;
        let addr = url.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind(&addr).await.unwrap();
        let second = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve(stream, |_, body| async move { Ok(body) }).await.unwrap();
        });
        assert_eq!(
            pools.call(&url, Kind::AppendEntries, b"cd", A_WHILE).await.unwrap(),
            b"cd".to_vec()
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the first server saw one connection"
        );
        second.abort();
        let _ = second.await;
        let error = pools
            .call(&url, Kind::AppendEntries, b"ef", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Unreachable(_)), "{error}");
    }

    #[tokio::test]
    async fn a_write_goes_once_on_a_connection_the_peer_still_holds() {
        let (url, accepted, server) = echo_server().await;
        let pools = Pools::default();
        for i in 0..3u8 {
            let answer = pools
                .call_once(&url, Kind::ForwardBatch, &[i, 9], A_WHILE)
                .await
                .unwrap();
            assert_eq!(answer, vec![9, i]);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // The peer closed the kept connection: a new one is dialled before sending.
        server.abort();
        let _ = server.await;
        let listener = TcpListener::bind(url.trim_start_matches("http://")).await.unwrap();
        let second = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve(stream, |_, body| async move { Ok(body) }).await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            pools.call_once(&url, Kind::ForwardBatch, b"ab", A_WHILE).await.unwrap(),
            b"ab".to_vec()
        );
        second.abort();
    }

    #[tokio::test]
    async fn a_write_whose_answer_is_lost_is_not_sent_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(AtomicUsize::new(0));
        tokio::spawn({
            let received = received.clone();
            async move {
                // Reads each request and closes the connection without an answer.
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut magic = [0u8; MAGIC.len()];
                    if stream.read_exact(&mut magic).await.is_ok() && read_frame(&mut stream).await.is_ok() {
                        received.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        let pools = Pools::default();
        let error = pools
            .call_once(&url, Kind::ForwardBatch, b"put", A_WHILE)
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Lost(_)), "{error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(received.load(Ordering::SeqCst), 1, "the write went more than once");

        // With nobody listening, nothing went out.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nobody = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let error = pools
            .call_once(&nobody, Kind::ForwardBatch, b"put", A_WHILE)
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Unreachable(_)), "{error}");
    }

    #[tokio::test]
    async fn a_connection_without_the_greeting_or_with_a_bad_frame_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                outcomes.push(serve(stream, |_, body| async move { Ok(body) }).await);
            }
            outcomes
        });
        let mut stranger = TcpStream::connect(addr).await.unwrap();
        stranger.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let mut garbled = TcpStream::connect(addr).await.unwrap();
        garbled.write_all(MAGIC).await.unwrap();
        garbled.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        let outcomes = tokio::time::timeout(A_WHILE, server).await.unwrap().unwrap();
        for outcome in outcomes {
            assert_eq!(outcome.unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
    }
}
