//! Serving a store replica: the etcd API on the client URLs, the peer service on
//! the peer URLs, and `/metrics` and `/health` on the metrics URLs.
//!
//! Listeners are bound before the store opens, so a port in use fails start-up with
//! a clear error instead of a replica that cannot be reached. `https` URLs put each
//! accepted connection through the TLS handshake (`crate::tls`) before anything else
//! reads it; the handshakes run in tasks of their own, so a slow one holds up no
//! other connection.

use std::net::SocketAddr;
use std::time::Duration;

use berth_proto::berthpb::peer_server::PeerServer;
use berth_proto::etcdserverpb::auth_server::AuthServer;
use berth_proto::etcdserverpb::cluster_server::ClusterServer;
use berth_proto::etcdserverpb::kv_server::KvServer;
use berth_proto::etcdserverpb::lease_server::LeaseServer;
use berth_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use berth_proto::etcdserverpb::watch_server::WatchServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};

use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::grpc::authority::AuthorityFix;
use crate::grpc::{auth, cluster, kv, lease, maintenance, peer, watch};
use crate::raft;
use crate::store::Store;
use crate::tls::{self, MaybeTls, ServerStream};

/// gRPC framing and headers on top of the request itself (etcd allows the same).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// `http://host:port` or `https://host:port` → a socket address (`localhost` is loopback).
pub fn parse_listen_url(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| StoreError::InvalidArgument(format!("URL {url:?} must start with http:// or https://")))?;
    let host_port = rest.trim_end_matches('/');
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| StoreError::InvalidArgument(format!("URL {url:?} has no port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    let port: u16 = port
        .parse()
        .map_err(|_| StoreError::InvalidArgument(format!("URL {url:?} has a bad port")))?;
    let ip = host
        .parse()
        .map_err(|_| StoreError::InvalidArgument(format!("URL {url:?}: listen on an IP address or localhost")))?;
    Ok(SocketAddr::new(ip, port))
}

/// A bound listener, and whether its URL is `https`.
struct Listener {
    tcp: TcpListener,
    is_https: bool,
}

async fn bind_all(urls: &[String], what: &str) -> Result<Vec<Listener>> {
    let mut listeners = Vec::new();
    for url in urls {
        let addr = parse_listen_url(url)?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| StoreError::InvalidArgument(format!("cannot listen for {what} on {url}: {e}")))?;
        let is_https = url.starts_with("https://");
        listeners.push(Listener { tcp, is_https });
    }
    Ok(listeners)
}

/// The acceptor of a listener: `None` for `http`. `Tls::load` has checked that every
/// `https` URL has one.
fn acceptor_for(listener: &Listener, acceptor: Option<&TlsAcceptor>) -> Result<Option<TlsAcceptor>> {
    match (listener.is_https, acceptor) {
        (false, _) => Ok(None),
        (true, Some(acceptor)) => Ok(Some(acceptor.clone())),
        (true, None) => Err(StoreError::Internal("an https listener without TLS".to_string())),
    }
}

/// A running replica with its listeners.
pub struct Server {
    store: Store,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    pub async fn start(config: StoreConfig) -> Result<Server> {
        let client_listeners = bind_all(&config.listen_client_urls, "clients").await?;
        let peer_listeners = bind_all(&config.listen_peer_urls, "peers").await?;
        let metrics_listeners = bind_all(&config.listen_metrics_urls, "metrics").await?;
        let max_message = config.max_request_bytes + GRPC_OVERHEAD_BYTES;
        let store = Store::open(config).await?;
        let mut tasks = Vec::new();
        for listener in peer_listeners {
            let acceptor = acceptor_for(&listener, store.tls().peer_acceptor())?;
            let svc = PeerServer::new(peer::PeerService { store: store.clone() })
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            let router = tonic::transport::Server::builder().tcp_nodelay(true).add_service(svc);
            let shutdown = shutdown_future(&store);
            let incoming = peer_incoming(listener.tcp, acceptor, peer::PeerService { store: store.clone() });
            tasks.push(tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
                    tracing::error!(error = %e, "peer server failed");
                }
            }));
        }
        for listener in client_listeners {
            let acceptor = acceptor_for(&listener, store.tls().client_acceptor())?;
            let router = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .add_service(
                    KvServer::new(kv::KvService { store: store.clone() }).max_decoding_message_size(max_message),
                )
                .add_service(
                    WatchServer::new(watch::WatchService { store: store.clone() })
                        .max_decoding_message_size(max_message),
                )
                .add_service(LeaseServer::new(lease::LeaseService { store: store.clone() }))
                .add_service(ClusterServer::new(cluster::ClusterService { store: store.clone() }))
                .add_service(MaintenanceServer::new(maintenance::MaintenanceService {
                    store: store.clone(),
                }))
                .add_service(AuthServer::new(auth::AuthService { store: store.clone() }));
            let shutdown = shutdown_future(&store);
            tasks.push(tokio::spawn(async move {
                let incoming = client_incoming(listener.tcp, acceptor).map(|accepted| accepted.map(AuthorityFix::new));
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
                    tracing::error!(error = %e, "client server failed");
                }
            }));
        }
        for listener in metrics_listeners {
            tasks.push(tokio::spawn(serve_metrics(listener.tcp, store.clone())));
        }
        Ok(Server { store, tasks })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops serving, shuts Raft down and flushes the backend.
    pub async fn shutdown(self) {
        self.store.shutdown().await;
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

/// Accepted connections with Nagle's algorithm off. tonic sets TCP_NODELAY only on
/// listeners it binds itself; without it a small response queued behind another
/// waits for the peer's delayed ACK (~40 ms).
fn nodelay_incoming(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> + Send + 'static {
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// The client port's connections, through the TLS handshake on an `https` URL.
fn client_incoming(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
) -> std::pin::Pin<Box<dyn Stream<Item = std::io::Result<ServerStream>> + Send>> {
    let Some(acceptor) = acceptor else {
        return Box::pin(nodelay_incoming(listener).map(|accepted| accepted.map(MaybeTls::Plain)));
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut accepted = Box::pin(nodelay_incoming(listener));
    tokio::spawn(async move {
        loop {
            // The server drops its end when it stops: the listener closes with it.
            let next = tokio::select! {
                next = accepted.next() => next,
                () = tx.closed() => return,
            };
            let stream = match next {
                Some(Ok(stream)) => stream,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "accepting a client connection failed");
                    continue;
                }
                None => return,
            };
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            tokio::spawn(async move {
                match tls::accept(&acceptor, stream).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    // A client without an acceptable certificate, or not speaking TLS.
                    Err(e) => tracing::debug!(error = %e, "a client's TLS handshake failed"),
                }
            });
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The peer port's connections: raft streams (see `raft::wire`) are answered here,
/// the rest go on to the gRPC peer service. On an `https` URL each connection goes
/// through the TLS handshake first, and its ALPN protocol tells a raft stream.
fn peer_incoming(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    service: peer::PeerService,
) -> impl Stream<Item = std::io::Result<ServerStream>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut accepted = Box::pin(nodelay_incoming(listener));
    tokio::spawn(async move {
        let mut closed = Box::pin(shutdown_future(&service.store));
        loop {
            let stream = tokio::select! {
                next = accepted.next() => match next {
                    Some(Ok(stream)) => stream,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "accepting a peer connection failed");
                        continue;
                    }
                    None => return,
                },
                () = &mut closed => return,
            };
            let (tx, service, acceptor) = (tx.clone(), service.clone(), acceptor.clone());
            tokio::spawn(async move {
                let (stream, is_raft) = match acceptor {
                    Some(acceptor) => match tls::accept(&acceptor, stream).await {
                        Ok(stream) => {
                            let is_raft = stream.alpn_protocol() == Some(tls::RAFT_ALPN);
                            (stream, is_raft)
                        }
                        Err(e) => {
                            // A peer whose certificate the peer CA does not vouch for.
                            tracing::warn!(error = %e, "a peer's TLS handshake failed");
                            return;
                        }
                    },
                    None => {
                        let mut first = [0u8; 1];
                        let peeked = tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await;
                        if !matches!(peeked, Ok(Ok(1))) {
                            return;
                        }
                        (MaybeTls::Plain(stream), raft::wire::is_raft_stream(first[0]))
                    }
                };
                if !is_raft {
                    let _ = tx.send(Ok(stream)).await;
                    return;
                }
                let closed = shutdown_future(&service.store);
                let answer = |kind, message| {
                    let service = service.clone();
                    async move { service.answer_raft_stream(kind, message).await }
                };
                // A replica that shuts down closes its streams, so that a peer's next
                // request finds whatever listens on the port after it.
                tokio::select! {
                    served = raft::wire::serve(stream, answer) => {
                        if let Err(e) = served {
                            tracing::debug!(error = %e, "a raft stream ended");
                        }
                    }
                    () = closed => {}
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn shutdown_future(store: &Store) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut signal = store.shutdown_signal();
    async move {
        while !*signal.borrow_and_update() {
            if signal.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A minimal HTTP/1.1 responder for `/metrics` (Prometheus text) and `/health`.
async fn serve_metrics(listener: TcpListener, store: Store) {
    let mut shutdown = store.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let store = store.clone();
        tokio::spawn(async move {
            let _ = answer_http(stream, &store).await;
        });
    }
}

async fn answer_http(mut stream: TcpStream, store: &Store) -> std::io::Result<()> {
    // Read until the end of the request headers (a client may send them in pieces).
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .map_err(std::io::Error::other)??;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request = String::from_utf8_lossy(&buf);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path.split('?').next().unwrap_or("/") {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics_text(store)),
        "/health" => {
            if store.current_leader().is_some() {
                ("200 OK", "application/json", "{\"health\":\"true\"}".to_string())
            } else {
                (
                    "503 Service Unavailable",
                    "application/json",
                    "{\"health\":\"false\",\"reason\":\"no leader\"}".to_string(),
                )
            }
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn metrics_text(store: &Store) -> String {
    let metrics = store.raft().metrics().borrow().clone();
    let (revision, compacted, keys, leases, applied) = {
        let state = store.state().read();
        (
            state.kv.current_revision(),
            state.kv.compact_revision(),
            state.kv.key_count(),
            state.leases.len(),
            state.last_applied.map_or(0, |l| l.index),
        )
    };
    let gauges: [(&str, &str, f64); 9] = [
        (
            "etcd_server_has_leader",
            "Whether a leader exists.",
            f64::from(u8::from(metrics.current_leader.is_some())),
        ),
        (
            "etcd_server_is_leader",
            "Whether this member is the leader.",
            f64::from(u8::from(store.is_leader())),
        ),
        (
            "etcd_server_proposals_committed_total",
            "The last committed log index.",
            metrics.last_log_index.unwrap_or(0) as f64,
        ),
        (
            "etcd_server_proposals_applied_total",
            "The last applied log index.",
            applied as f64,
        ),
        (
            "etcd_server_term",
            "The current Raft term.",
            metrics.current_term as f64,
        ),
        (
            "etcd_mvcc_db_total_size_in_bytes",
            "Backend size on disk.",
            store.backend().size_bytes() as f64,
        ),
        (
            "etcd_debugging_mvcc_current_revision",
            "The current revision.",
            revision as f64,
        ),
        (
            "etcd_debugging_mvcc_compact_revision",
            "The last compacted revision.",
            compacted as f64,
        ),
        ("etcd_debugging_mvcc_keys_total", "Keys with history.", keys as f64),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
    }
    out.push_str(&format!(
        "# HELP etcd_debugging_lease_total Leases granted and alive.\n# TYPE etcd_debugging_lease_total gauge\netcd_debugging_lease_total {leases}\n"
    ));
    out
}
