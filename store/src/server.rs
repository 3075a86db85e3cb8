//! Serving a store replica: the etcd API on the client URLs (gRPC, and HTTP/1.1 for
//! `/health`, `/version`, `/metrics` and the JSON gateway, told apart by
//! `http::split`), the peer service on the peer URLs, and `/metrics`, `/health` and
//! `/version` on the metrics URLs.
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
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};

use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::grpc::authority::AuthorityFix;
use crate::grpc::request_limits::RequestLimits;
use crate::grpc::{auth, cluster, kv, lease, maintenance, peer, watch};
use crate::http::split::{Protocol, Rewound, split};
use crate::http::{self, Port};
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
        let max_peer_message = raft::FrameLimits::grpc_message(
            store.config().max_request_bytes,
            store.raft().config().snapshot_max_chunk_size,
        );
        for listener in peer_listeners {
            let acceptor = acceptor_for(&listener, store.tls().peer_acceptor())?;
            let svc = PeerServer::new(peer::PeerService { store: store.clone() })
                .max_decoding_message_size(max_peer_message)
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
            let streams = store.config().max_concurrent_streams;
            let router = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .max_concurrent_streams(streams)
                .initial_connection_window_size(connection_window(streams))
                // A client may give up on every call it has in flight (timeouts) before
                // this server has taken them up; h2's own allowance is 20.
                .http2_max_pending_accept_reset_streams(Some(streams as usize))
                .add_service(RequestLimits::new(
                    KvServer::new(kv::KvService { store: store.clone() }).max_decoding_message_size(max_message),
                    max_message,
                ))
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
            let incoming = client_incoming(listener.tcp, acceptor, store.clone());
            tasks.push(tokio::spawn(async move {
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

/// The HTTP/2 flow-control window of a client connection with up to `streams`
/// streams: the server closes a connection (GOAWAY, "too_many_data_frames") once the
/// small DATA frames it holds unread cost more than half its window, at up to
/// [`SMALL_FRAME_COST`] each, and every stream may hold one (a unary call's
/// request). At least hyper's default of 1 MiB.
fn connection_window(streams: u32) -> u32 {
    (u64::from(streams) * 2 * SMALL_FRAME_COST).clamp(1 << 20, i32::MAX as u64) as u32
}

/// What h2 counts a small DATA frame held unread as (its overhead threshold).
const SMALL_FRAME_COST: u64 = 256;

/// How long a new client connection may take to send its first bytes.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// The client port's connections, through the TLS handshake on an `https` URL: gRPC
/// ones go on to tonic (through the authority mending of `grpc::authority`), HTTP/1.1
/// ones are answered by `http`.
fn client_incoming(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    store: Store,
) -> impl Stream<Item = std::io::Result<AuthorityFix<Rewound<ServerStream>>>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut accepted = Box::pin(nodelay_incoming(listener));
    tokio::spawn(async move {
        let mut closed = Box::pin(shutdown_future(&store));
        loop {
            let stream = tokio::select! {
                next = accepted.next() => match next {
                    Some(Ok(stream)) => stream,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "accepting a client connection failed");
                        continue;
                    }
                    None => return,
                },
                () = &mut closed => return,
            };
            let (tx, store, acceptor) = (tx.clone(), store.clone(), acceptor.clone());
            tokio::spawn(async move {
                let stream = match acceptor {
                    Some(acceptor) => match tls::accept(&acceptor, stream).await {
                        Ok(stream) => stream,
                        // A client without an acceptable certificate, or not speaking TLS.
                        Err(e) => {
                            tracing::debug!(error = %e, "a client's TLS handshake failed");
                            return;
                        }
                    },
                    None => MaybeTls::Plain(stream),
                };
                let Ok(Ok((protocol, stream))) = tokio::time::timeout(FIRST_BYTES_TIMEOUT, split(stream)).await else {
                    return;
                };
                match protocol {
                    Protocol::Grpc => {
                        let _ = tx.send(Ok(AuthorityFix::new(stream))).await;
                    }
                    Protocol::Http1 => http::serve_connection(stream, store, Port::Client).await,
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
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
                    served = raft::wire::serve(stream, service.clone(), answer) => {
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

/// `/metrics`, `/health` and `/version` on a metrics URL.
async fn serve_metrics(listener: TcpListener, store: Store) {
    let mut shutdown = store.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(http::serve_connection(stream, store.clone(), Port::Metrics));
    }
}
