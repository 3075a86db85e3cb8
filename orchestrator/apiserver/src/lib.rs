//! The API server: Kubernetes' REST layout over plain HTTP/1.1, with every object in
//! the store. Any replica serves any request: reads are linearizable store reads,
//! writes are conditional store transactions, so replicas keep no state of their own.
//!
//! ```text
//! connection ──► connections: at most max_connections; closed when its request head
//!   │            is slower than read_header_timeout, or it idles past idle_timeout
//!   ▼
//! request ──► dispatch: route (pure) + query (range-checked) ──► in-flight slot
//!   │           (429 when none is free) ──► request timeout (504), but for watches and logs
//!   │           ──► body (≤ 3 MiB, else 413; JSON, YAML or protobuf, depth-checked and decoded
//!   │               on the blocking pool)
//!               ├─ GET ───────────────► store read ──► JSON or YAML
//!               ├─ LIST ──────────────► store pages at one revision ──► selectors ──► limit/continue
//!               ├─ POST/PUT/PATCH ────► prepare (pure) ──► validate ──► managed fields ──► conditional write
//!               │                       (413 when the object is over the store's request limit)
//!               ├─ PATCH (apply) ─────► apply (merge, ownership, conflicts) ──► prepare ──► ...
//!               ├─ DELETE ────────────► delete (a namespace: mark, empty, delete)
//!               ├─ watch ─────────────► store watch from resourceVersion + 1 ──► lines
//!               └─ log ───────────────► the node's agent, streamed through
//!
//! any failure ──► a `Status` object (NotFound, Conflict, Invalid, Expired, ...)
//! ```
//!
//! The limits are [`Settings`], with kube-apiserver's defaults.

mod admission;
pub mod audit;
pub mod auth;
mod codec;
mod connections;
mod discovery;
mod dispatch;
mod eviction;
mod graceful;
mod inflight;
mod isolation;
pub mod kubernetes_service;
mod list;
mod logs;
mod managed_fields;
mod metrics;
mod namespace_deletion;
mod nesting;
mod openapi;
mod params;
mod patch;
mod prepare;
mod protobuf;
mod request_metrics;
mod rest;
mod route;
mod scale;
mod selector;
pub mod services;
pub mod settings;
mod status;
mod storage;
mod storage_admission;
mod streaming;
mod table;
mod watch;
mod watch_cache;

#[cfg(test)]
mod tests;

use std::time::Duration;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::response::Response;
use tracing::Instrument;

use berth_api::meta::ObjectMeta;
use berth_api::objects::{Namespace, NamespaceSpec, NamespaceStatus};
use berth_client::events::EventLeases;
use berth_client::kv::{Kv, KvError};
use berth_client::registry::Registry;
pub use settings::Settings;

/// The API server's handle on the store; cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    kv: Kv,
    registry: Registry,
    event_leases: std::sync::Arc<EventLeases>,
    settings: Settings,
    inflight: inflight::InFlight,
    /// Who requests are made as (see `auth::authn`).
    authenticator: std::sync::Arc<auth::Authenticator>,
    /// HTTPS: the server's certificate and the client CA; plain HTTP without.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// `--audit-log-path` with its policy.
    audit: Option<audit::AuditLog>,
    authorizer: auth::authz::Authorizer,
    /// One store watch per kind, fanned out to every client's watch.
    watch_caches: std::sync::Arc<watch_cache::Caches>,
    /// What this server has answered, for `/metrics`.
    request_metrics: std::sync::Arc<request_metrics::RequestMetrics>,
    /// The group committer of nodes' Lease renewals (see `rest::write`), started
    /// by the first.
    node_lease_group: std::sync::Arc<std::sync::OnceLock<berth_client::kv::Group>>,
}

impl ApiServer {
    /// An API server with kube-apiserver's default limits.
    pub fn new(kv: Kv) -> ApiServer {
        ApiServer::with_settings(kv, Settings::default())
    }

    pub fn with_settings(kv: Kv, settings: Settings) -> ApiServer {
        ApiServer {
            registry: Registry::new(kv.clone()),
            event_leases: Default::default(),
            kv,
            inflight: inflight::InFlight::new(&settings),
            authorizer: auth::authz::Authorizer::new(&settings.authorization_modes),
            settings,
            authenticator: Default::default(),
            tls: None,
            audit: None,
            watch_caches: Default::default(),
            request_metrics: Default::default(),
            node_lease_group: Default::default(),
        }
    }

    /// Records requests in `log` (see `audit`).
    pub fn with_audit(mut self, log: Option<audit::AuditLog>) -> ApiServer {
        self.audit = log;
        self
    }

    /// Serves HTTPS with `tls` (see `berth_pki::tls::server_config`), authenticating
    /// requests with `authenticator`.
    pub fn with_security(
        mut self,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        authenticator: auth::Authenticator,
    ) -> ApiServer {
        self.tls = tls.map(tokio_rustls::TlsAcceptor::from);
        self.authenticator = std::sync::Arc::new(authenticator);
        self
    }

    /// The group committer nodes' Lease renewals go through: renewals arriving
    /// while a batch is in flight are committed together in the next, one store
    /// transaction (one log entry) per batch rather than per heartbeat.
    fn node_lease_group(&self) -> &berth_client::kv::Group {
        self.node_lease_group.get_or_init(|| self.kv.group())
    }
}

/// Serves the API on `listener` until the process ends; makes sure the `default`
/// and `kube-node-lease` (the nodes' heartbeat Leases) namespaces exist (in the background, retrying while the store is unavailable),
/// and keeps the `kubernetes` Service listing this server.
pub async fn serve(listener: tokio::net::TcpListener, api: ApiServer) {
    tokio::spawn(ensure_default_namespace(
        api.registry.clone(),
        api.settings.isolate_namespaces,
    ));
    tokio::spawn(ensure_namespace(
        api.registry.clone(),
        berth_api::kinds::lease::NODE_LEASE_NAMESPACE,
        api.settings.isolate_namespaces,
    ));
    tokio::spawn(ensure_runtime_classes(api.registry.clone()));
    tokio::spawn(ensure_priority_classes(api.registry.clone()));
    tokio::spawn(storage_admission::ensure_default_storage_class(api.registry.clone()));
    let node_mode = api.authorizer.node_graph().is_some();
    tokio::spawn(auth::bootstrap::ensure_default_roles(api.kv.clone(), node_mode));
    api.authorizer.start(&api.kv);
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, settings = ?api.settings, "serving the API");
        tokio::spawn(kubernetes_service::run(
            api.kv.clone(),
            api.settings.service_network,
            kubernetes_service::Port::of(api.tls.is_some()),
            address.port(),
            kubernetes_service::advertised(address, api.settings.advertise_address),
        ));
    }
    connections::accept(listener, api).await;
}

/// Every request goes through here, so that unknown paths and methods, and every
/// failure, are answered with `Status` objects.
async fn answer(api: &ApiServer, mut request: Request) -> Response {
    let format = codec::response_format(request.headers());
    // A request from a connection is authenticated here; one made in-process (the
    // tests) may carry its user already.
    let mut source = None;
    if let Some(credentials) = request.extensions_mut().remove::<connections::Credentials>() {
        source = credentials.peer;
        match api
            .authenticator
            .authenticate(&api.kv, request.headers(), credentials.certificate_user.as_ref())
            .await
        {
            Ok(user) => {
                request.extensions_mut().insert(user);
            }
            Err(error) => {
                if let Some(log) = &api.audit {
                    audit::unauthenticated(log, &request, source, &error.status());
                }
                return codec::render(format, error.code, &error.status());
            }
        }
    }
    // The unit tests act as a user by naming it in a header.
    #[cfg(test)]
    let mut request = tests::as_named_user(request);
    let user = request
        .extensions()
        .get::<auth::UserInfo>()
        .cloned()
        .unwrap_or_else(auth::UserInfo::anonymous);
    // `kubectl --as`: the request goes on as the user asked for, if this one may be it.
    let impersonated = match impersonation(api, &user, request.headers()).await {
        Ok(impersonated) => impersonated,
        Err(error) => return codec::render(format, error.code, &error.status()),
    };
    if let Some(impersonated) = &impersonated {
        request.extensions_mut().insert(impersonated.clone());
    }
    let record = match &api.audit {
        None => None,
        Some(log) => match audit::begin(log, &mut request, &user, impersonated.as_ref(), source).await {
            Ok(record) => record,
            Err(error) => return codec::render(format, error.code, &error.status()),
        },
    };
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path());
    async move {
        // Handlers' annotations are collected only for a request that is audited.
        let (handled, annotations) = match record {
            Some(_) => audit::collecting(dispatch::handle(api, request)).await,
            None => (dispatch::handle(api, request).await, Vec::new()),
        };
        let (response, status) = match handled {
            Ok(response) => {
                tracing::debug!(code = response.status().as_u16(), "answered");
                (response, None)
            }
            Err(error) => {
                tracing::debug!(%error, "failed");
                let status = error.status();
                let mut response = codec::render(format, error.code, &status);
                if let Some(seconds) = error.retry_after_seconds() {
                    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
                }
                (response, Some(status))
            }
        };
        if let (Some(log), Some(mut record)) = (&api.audit, record) {
            record.annotations.extend(annotations);
            let streams = record.attributes.as_ref().is_some_and(|a| {
                a.verb == "watch"
                    || a.resource
                        .as_ref()
                        .is_some_and(|r| matches!(r.subresource.as_str(), "log" | "exec" | "attach" | "portforward"))
            });
            let stage = if streams { "ResponseStarted" } else { "ResponseComplete" };
            log.write(record, response.status().as_u16(), status.as_ref(), stage);
        }
        let route = route::parse(uri.path());
        let watch = params::Params::parse(&uri).is_ok_and(|p| p.flag("watch").unwrap_or(false));
        let labels = request_metrics::labels_of(&method, uri.path(), route.as_ref(), watch);
        api.request_metrics.count_request(labels, response.status().as_u16());
        response
    }
    .instrument(span)
    .await
}

/// The user a request impersonates (`Impersonate-*` headers), once the authorizer has
/// read the roles it decides by.
async fn impersonation(
    api: &ApiServer,
    user: &auth::UserInfo,
    headers: &axum::http::HeaderMap,
) -> Result<Option<auth::UserInfo>, status::ApiError> {
    if !headers.keys().any(|name| name.as_str().starts_with("impersonate-")) {
        return Ok(None);
    }
    api.authorizer.ready().await?;
    auth::impersonation::impersonate(&api.authorizer, user, headers)
}

/// Creates the built-in RuntimeClasses (`runc`, `process`) that do not exist, as
/// the `default` namespace is created; ones a user changed or deleted and made
/// again are left as they are.
pub async fn ensure_runtime_classes(registry: Registry) {
    use berth_api::kinds::Object;
    use berth_api::kinds::runtime_class::{BUILT_IN, runtime_class};
    for (name, handler) in BUILT_IN {
        let class = Object::new(runtime_class(name, handler));
        loop {
            match registry.create(&class, None).await {
                Ok(_) | Err(KvError::AlreadyExists) => break,
                Err(e) => {
                    tracing::debug!(error = %e, class = name, "cannot create the RuntimeClass yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// Creates the system's PriorityClasses (`system-node-critical`,
/// `system-cluster-critical`) that do not exist, as kube-apiserver does at start.
pub async fn ensure_priority_classes(registry: Registry) {
    use berth_api::kinds::Object;
    use berth_api::kinds::priority_class::system_classes;
    use berth_api::meta::MetaExt;
    for class in system_classes() {
        let class = Object::new(class);
        loop {
            match registry.create(&class, None).await {
                Ok(_) | Err(KvError::AlreadyExists) => break,
                Err(e) => {
                    tracing::debug!(error = %e, class = class.metadata().name(), "cannot create the PriorityClass yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// Creates the `default` namespace unless it exists.
pub async fn ensure_default_namespace(registry: Registry, isolate: bool) {
    ensure_namespace(registry, "default", isolate).await
}

/// Creates the namespace `name` unless it exists.
pub async fn ensure_namespace(registry: Registry, name: &str, isolate: bool) {
    let labels = isolate.then(isolation::labels);
    let mut namespace = Namespace::new(
        ObjectMeta {
            name: Some(name.into()),
            labels,
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
                tracing::debug!(error = %e, namespace = name, "cannot create the namespace yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
