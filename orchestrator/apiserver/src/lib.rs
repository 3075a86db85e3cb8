//! The API server: Kubernetes' REST layout over plain HTTP/1.1, with every object in
//! the store. Any replica serves any request: reads are linearizable store reads,
//! writes are conditional store transactions, so replicas keep no state of their own.
//!
//! ```text
//! request ──► dispatch: route (pure) + query + body (JSON or YAML, ≤ 3 MiB)
//!               │
//!               ├─ GET/LIST ──────────► store read ──► selectors ──► JSON or YAML
//!               ├─ POST/PUT/PATCH ────► prepare (pure) ──► validate ──► managed fields ──► conditional write
//!               ├─ PATCH (apply) ─────► apply (merge, ownership, conflicts) ──► prepare ──► ...
//!               ├─ DELETE ────────────► delete (a namespace: mark, empty, delete)
//!               ├─ watch ─────────────► store watch from resourceVersion + 1 ──► lines
//!               └─ log ───────────────► the node's agent, streamed through
//!
//! any failure ──► a `Status` object (NotFound, Conflict, Invalid, Expired, ...)
//! ```

mod codec;
mod discovery;
mod dispatch;
mod logs;
mod managed_fields;
mod namespace_deletion;
mod openapi;
mod patch;
mod prepare;
mod rest;
mod route;
mod scale;
mod selector;
mod status;
mod storage;
mod table;
mod watch;

#[cfg(test)]
mod tests;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use tracing::Instrument;

use berth_api::meta::ObjectMeta;
use berth_api::objects::{Namespace, NamespaceSpec, NamespaceStatus};
use berth_client::events::EventLeases;
use berth_client::kv::{Kv, KvError};
use berth_client::registry::Registry;

/// The API server's handle on the store; cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    kv: Kv,
    registry: Registry,
    event_leases: std::sync::Arc<EventLeases>,
}

impl ApiServer {
    pub fn new(kv: Kv) -> ApiServer {
        ApiServer {
            registry: Registry::new(kv.clone()),
            event_leases: Default::default(),
            kv,
        }
    }

    /// Every path goes through one handler, so that unknown paths and methods are
    /// answered with `Status` objects too.
    pub fn router(&self) -> Router {
        Router::new().fallback(answer).with_state(self.clone())
    }
}

/// Serves the API on `listener` until the process ends; makes sure the `default`
/// namespace exists (in the background, retrying while the store is unavailable).
pub async fn serve(listener: tokio::net::TcpListener, api: ApiServer) {
    tokio::spawn(ensure_default_namespace(api.registry.clone()));
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving the API");
    }
    if let Err(e) = axum::serve(listener, api.router()).await {
        tracing::error!(error = %e, "the API server stopped");
    }
}

async fn answer(State(api): State<ApiServer>, request: Request) -> Response {
    let format = codec::response_format(request.headers());
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path());
    async move {
        match dispatch::handle(&api, request).await {
            Ok(response) => {
                tracing::debug!(code = response.status().as_u16(), "answered");
                response
            }
            Err(error) => {
                tracing::debug!(%error, "failed");
                codec::render(format, error.code, &error.status())
            }
        }
    }
    .instrument(span)
    .await
}

/// Creates the `default` namespace unless it exists.
pub async fn ensure_default_namespace(registry: Registry) {
    let mut namespace = Namespace::new(
        ObjectMeta {
            name: Some("default".into()),
            ..Default::default()
        },
        NamespaceSpec::default(),
    );
    namespace.status = NamespaceStatus {
        phase: Some("Active".into()),
        ..Default::default()
    };
    loop {
        match registry.create(&namespace, None).await {
            Ok(_) | Err(KvError::AlreadyExists) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot create the default namespace yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
