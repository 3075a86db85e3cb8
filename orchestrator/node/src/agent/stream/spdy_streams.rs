//! exec and attach over SPDY (`v4.channel.k8s.io` negotiated in
//! `X-Stream-Protocol-Version`), the protocol kubectl falls back to when a WebSocket
//! upgrade fails, and the one older clients speak. The client opens one SPDY stream per
//! channel, named by its `streamType` header; the session starts once every stream the
//! request asked for is open, as the kubelet waits for them.
//!
//! ```text
//! error   agent → client: the end, a metav1.Status as JSON, then FIN
//! stdin   client → agent: FIN closes the command's stdin
//! stdout, stderr          agent → client, FIN at their end
//! resize  client → agent: TerminalSize objects, one JSON document after another
//! ```

use std::time::Duration;

use tokio::sync::mpsc;

use super::session::{STDERR, STDOUT, Session, TerminalSize, Wanted};
use super::spdy::{self, Outbound, Stream};

pub const V4: &str = "v4.channel.k8s.io";
/// How long the client has to open every stream it asked for (the kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The streams of one session, as they are opened.
#[derive(Default)]
struct Streams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl Streams {
    fn add(&mut self, stream: Stream) {
        let slot = match stream.header("streamtype") {
            Some("error") => &mut self.error,
            Some("stdin") => &mut self.stdin,
            Some("stdout") => &mut self.stdout,
            Some("stderr") => &mut self.stderr,
            Some("resize") => &mut self.resize,
            other => {
                tracing::debug!(stream_type = ?other, "an exec stream of an unknown type");
                return;
            }
        };
        *slot = Some(stream);
    }

    /// Whether every stream `wanted` calls for is open (the kubelet's rule: stderr is
    /// not opened with a terminal, resize only with one).
    fn is_complete(&self, wanted: Wanted) -> bool {
        self.error.is_some()
            && (!wanted.stdin || self.stdin.is_some())
            && (!wanted.stdout || self.stdout.is_some())
            && (!wanted.stderr || wanted.tty || self.stderr.is_some())
            && (!wanted.tty || self.resize.is_some())
    }
}

/// Serves one upgraded connection: waits for the streams, starts the session with
/// `start`, relays it.
pub async fn serve<S, F, Fut>(io: S, wanted: Wanted, start: F)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Session>,
{
    let (opened_tx, opened) = mpsc::unbounded_channel::<Stream>();
    let connection = spdy::serve(io, move |stream| {
        let _ = opened_tx.send(stream);
    });
    tokio::join!(connection, relay(opened, wanted, start));
}

async fn relay<F, Fut>(mut opened: mpsc::UnboundedReceiver<Stream>, wanted: Wanted, start: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Session>,
{
    let mut streams = Streams::default();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while !streams.is_complete(wanted) {
        match tokio::time::timeout_at(deadline, opened.recv()).await {
            Ok(Some(stream)) => streams.add(stream),
            Ok(None) => return,
            Err(_) => {
                tracing::debug!("an exec client did not open its streams in time");
                return;
            }
        }
    }
    let Session {
        stdin,
        mut output,
        resize,
        exit,
    } = start().await;
    if let (Some(mut stream), Some(stdin)) = (streams.stdin.take(), stdin) {
        tokio::spawn(async move {
            while let Some(chunk) = stream.inbound.recv().await {
                if stdin.send(chunk).await.is_err() {
                    return;
                }
            }
        });
    }
    if let (Some(mut stream), Some(resize)) = (streams.resize.take(), resize) {
        tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(chunk) = stream.inbound.recv().await {
                pending.extend_from_slice(&chunk);
                for size in take_sizes(&mut pending) {
                    let _ = resize.send((size.width, size.height));
                }
            }
        });
    }
    let outbound = |stream: &Option<Stream>| stream.as_ref().map(|s| s.outbound.clone());
    let (stdout, stderr) = (outbound(&streams.stdout), outbound(&streams.stderr));
    while let Some((channel, bytes)) = output.recv().await {
        let target: &Option<Outbound> = if channel == STDERR { &stderr } else { &stdout };
        debug_assert!(channel == STDOUT || channel == STDERR);
        if let Some(target) = target
            && !target.send(&bytes).await
        {
            return;
        }
    }
    for stream in [&stdout, &stderr].into_iter().flatten() {
        stream.finish().await;
    }
    let status = exit
        .await
        .unwrap_or_else(|_| super::session::failure("the session ended without a status"));
    if let Some(error) = &streams.error {
        let body = serde_json::to_vec(&status).unwrap_or_default();
        error.outbound.send(&body).await;
        error.outbound.finish().await;
    }
}

/// The whole TerminalSize documents at the front of `pending`, removed from it.
fn take_sizes(pending: &mut Vec<u8>) -> Vec<TerminalSize> {
    let mut sizes = Vec::new();
    let mut documents = serde_json::Deserializer::from_slice(pending).into_iter::<TerminalSize>();
    let mut used = 0;
    while let Some(Ok(size)) = documents.next() {
        used = documents.byte_offset();
        sizes.push(size);
    }
    pending.drain(..used);
    sizes
}

/// The 101's `X-Stream-Protocol-Version`: v4 when the client offers it.
pub fn negotiate(offered: &[&str]) -> Result<&'static str, String> {
    if offered.contains(&V4) {
        Ok(V4)
    } else {
        Err(format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [{V4:?}]"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_documents_are_taken_whole() {
        let mut pending = br#"{"Width":80,"Height":24}{"Width":100,"#.to_vec();
        let sizes = take_sizes(&mut pending);
        assert_eq!(sizes, [TerminalSize { width: 80, height: 24 }]);
        assert_eq!(pending, br#"{"Width":100,"#);
        pending.extend_from_slice(b"\"Height\":40}\n");
        assert_eq!(take_sizes(&mut pending), [TerminalSize { width: 100, height: 40 }]);
    }

    #[test]
    fn only_v4_is_spoken() {
        assert_eq!(negotiate(&["v4.channel.k8s.io", "v3.channel.k8s.io"]), Ok(V4));
        assert!(
            negotiate(&["channel.k8s.io"])
                .unwrap_err()
                .contains("unable to negotiate protocol")
        );
    }
}
