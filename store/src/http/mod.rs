//! HTTP/1.1 on the client URLs (beside gRPC, see [`split`]) and the metrics URLs:
//! `/health`, `/version`, `/metrics`, and on client URLs the etcd v3 JSON gateway.
//!
//! ```text
//!  connection ──► hyper (HTTP/1.1, keep-alive) ──► route ─┬─ GET /health    health.rs
//!                                                         ├─ GET /version   version.rs
//!                                                         ├─ GET /metrics   metrics.rs
//!                                                         └─ POST /v3/...   gateway/ ──► the gRPC
//!                                                                             services, in-process
//! ```

pub mod gateway;
mod health;
pub mod json;
mod metrics;
pub mod response;
pub mod split;
mod version;

use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use response::HttpResponse;

use crate::store::Store;

/// Which port a connection came in on: the metrics URLs serve only what etcd serves
/// there (`/health`, `/metrics`, and `/version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Client,
    Metrics,
}

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one connection until the client closes it or the replica shuts down.
pub async fn serve_connection<S>(stream: S, store: Store, port: Port)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = store.shutdown_signal();
    let service = service_fn(move |request| {
        let store = store.clone();
        async move { Ok::<_, std::convert::Infallible>(route(request, &store, port).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        served = connection => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "an HTTP connection ended");
            }
        }
        _ = shutdown.wait_for(|stopped| *stopped) => {}
    }
}

async fn route(request: Request<Incoming>, store: &Store, port: Port) -> HttpResponse {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/health" if is_get => health::health(store).await,
        "/version" if is_get => version::version(),
        "/metrics" if is_get => metrics::metrics(store),
        "/health" | "/version" | "/metrics" => response::method_not_allowed(),
        _ if port == Port::Client => match gateway::method_of(&path) {
            Some(rpc) if method == Method::POST => gateway::serve(rpc, request, store).await,
            Some(_) => response::method_not_allowed(),
            None => response::not_found(),
        },
        _ => response::not_found(),
    }
}
