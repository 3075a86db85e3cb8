//! Connections: the accept loop, with a cap, and a clock on each connection that
//! closes it when a client is too slow to send a request's head (slowloris) or keeps
//! it open with no request for too long.
//!
//! ```text
//! accept ──► at max_connections, stop accepting: further connections wait in the
//!   │        listen backlog until one closes (Go's netutil.LimitListener does this)
//!   ▼
//! one task per connection (HTTP/1.1, keep-alive):
//!
//!   accepted ──► Head ──head read──► Busy ──response sent──► Idle ──first byte──► Head ...
//!                 │ read_header_timeout                       │ idle_timeout
//!                 ▼                                           ▼
//!               closed                                      closed
//! ```
//!
//! As in Go's server, the first request's head is timed from the accept, and each
//! later one from its first byte.
//!
//! hyper's own header timeout runs from the end of the previous response, so it
//! would bound the idle time by the header time; the clock here tells the two apart,
//! as Go's `ReadHeaderTimeout` and `IdleTimeout` (which kube-apiserver sets) do. A
//! busy connection has no clock: the request timeout bounds its handler.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::ApiServer;
use super::auth::UserInfo;
use super::auth::authn::certificate_user;
use super::settings::Settings;

/// Accepts connections until the process ends.
pub async fn accept(listener: TcpListener, api: ApiServer) {
    let open = Arc::new(Semaphore::new(
        api.settings.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    loop {
        let slot = open
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to be freed.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(open_connection(stream, api.clone(), slot));
    }
}

/// What the connection tells each of its requests: the user of the client
/// certificate it showed in the TLS handshake (verified against the client CA).
/// `answer` turns it, with the request's own credentials, into its user.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub certificate_user: Option<UserInfo>,
    /// The client's address, for the audit log.
    pub peer: Option<std::net::IpAddr>,
}

/// Serves a new connection: plain, or after a TLS handshake that must finish within
/// the header timeout (a client that stalls in it holds no slot for longer).
async fn open_connection(stream: TcpStream, api: ApiServer, slot: OwnedSemaphorePermit) {
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let Some(acceptor) = api.tls.clone() else {
        let credentials = Credentials {
            certificate_user: None,
            peer,
        };
        return serve(stream, credentials, api, slot).await;
    };
    let tls = match tokio::time::timeout(api.settings.read_header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let certificate_user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| certificate_user(cert));
    serve(tls, Credentials { certificate_user, peer }, api, slot).await
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request since `since`.
    Idle { since: Instant },
    /// Waiting for a request's head since `since`: the accept, or the request's first
    /// byte after an idle time.
    Head { since: Instant },
    /// A request is being answered.
    Busy,
}

/// A connection's phase, moved on by its reads and its requests, and the wake-up
/// that tells the connection's task to look at it again.
struct Clock {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Clock {
    fn set(&self, from: impl Fn(Phase) -> Option<Phase>) {
        let mut phase = self.phase.lock().expect("the clock lock is never poisoned");
        if let Some(next) = from(*phase) {
            *phase = next;
            self.changed.notify_one();
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().expect("the clock lock is never poisoned")
    }

    /// When the connection is to be closed if nothing happens before.
    fn deadline(&self, settings: &Settings) -> Option<Instant> {
        match self.phase() {
            Phase::Idle { since } => since.checked_add(settings.idle_timeout),
            Phase::Head { since } => since.checked_add(settings.read_header_timeout),
            Phase::Busy => None,
        }
    }
}

/// Marks the connection busy while it lives: from the request's head until hyper
/// has sent (and dropped) the response body.
struct Busy(Arc<Clock>);

impl Busy {
    fn start(clock: &Arc<Clock>) -> Busy {
        clock.set(|_| Some(Phase::Busy));
        Busy(clock.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(|_| Some(Phase::Idle { since: Instant::now() }));
    }
}

/// A response body that keeps the connection busy until hyper has sent it.
struct Guarded {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket (or its TLS session), telling the clock when a request's first bytes
/// arrive.
struct Watched<S> {
    stream: S,
    clock: Arc<Clock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.set(|phase| match phase {
                Phase::Idle { .. } => Some(Phase::Head { since: Instant::now() }),
                _ => None,
            });
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves one connection until the client closes it or its clock runs out.
async fn serve<S>(stream: S, credentials: Credentials, api: ApiServer, _slot: OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = api.settings.clone();
    let clock = Arc::new(Clock {
        phase: Mutex::new(Phase::Head { since: Instant::now() }),
        changed: Notify::new(),
    });
    let io = TokioIo::new(Watched {
        stream,
        clock: clock.clone(),
    });
    let service = {
        let clock = clock.clone();
        service_fn(move |mut request: hyper::Request<Incoming>| {
            let busy = Busy::start(&clock);
            let api = api.clone();
            request.extensions_mut().insert(credentials.clone());
            async move {
                let response = super::answer(&api, request.map(Body::new)).await;
                Ok::<_, Infallible>(response.map(|body| Guarded { body, _busy: busy }))
            }
        })
    };
    // With upgrades: exec, attach and port-forward switch protocols (see `streaming`);
    // the connection future then ends and the upgraded stream lives on in its own task.
    let connection = http1::Builder::new().serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    loop {
        let deadline = clock.deadline(&settings);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = clock.changed.notified() => {}
            () = sleep_until(deadline) => {
                if clock.deadline(&settings).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(phase = ?clock.phase(), "closing a connection that ran out of time");
                    return;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
