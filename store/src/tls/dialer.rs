//! How a replica dials its peers: plain TCP for `http` peer URLs, TLS for `https`
//! ones, presenting its peer certificate as a client certificate (peers authenticate
//! each other). Raft streams and the gRPC peer service share the port; the ALPN
//! protocol each asks for tells the listener which one a connection is.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use super::stream::PeerStream;

/// The peer dialler. `Default` dials `http` URLs only: an `https` one is refused.
#[derive(Clone, Default)]
pub struct PeerDialer {
    tls: Option<Arc<DialerTls>>,
}

struct DialerTls {
    /// ALPN [`RAFT_ALPN`](super::RAFT_ALPN).
    raft: TlsConnector,
    /// ALPN `h2`.
    grpc: Arc<ClientConfig>,
}

impl std::fmt::Debug for PeerDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDialer").field("tls", &self.tls.is_some()).finish()
    }
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// `https://host:port/` → `host:port`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// The name a peer's certificate must carry: the URL's host (an IP address or a DNS name).
fn server_name(host_port: &str) -> io::Result<ServerName<'static>> {
    let host = host_port.rsplit_once(':').map_or(host_port, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("peer host {host:?}: {e}")))
}

async fn tls_connect(connector: &TlsConnector, addr: &str) -> io::Result<TlsStream<TcpStream>> {
    let name = server_name(addr)?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    connector.connect(name, tcp).await
}

impl PeerDialer {
    pub(super) fn new(raft: ClientConfig, grpc: ClientConfig) -> Self {
        Self {
            tls: Some(Arc::new(DialerTls {
                raft: TlsConnector::from(Arc::new(raft)),
                grpc: Arc::new(grpc),
            })),
        }
    }

    fn tls(&self, url: &str) -> io::Result<&DialerTls> {
        self.tls.as_deref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "peer URL {url} is https but this replica has no peer TLS \
                     (--peer-cert-file and --peer-key-file, or --peer-auto-tls)"
                ),
            )
        })
    }

    /// A connection for raft streams to the peer at `url`, TLS set up, within `timeout`.
    pub async fn connect(&self, url: &str, timeout: Duration) -> io::Result<PeerStream> {
        let addr = host_port(url);
        let connecting = async {
            if is_https(url) {
                let connector = &self.tls(url)?.raft;
                Ok(PeerStream::Tls(Box::new(tls_connect(connector, addr).await?)))
            } else {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Ok(PeerStream::Plain(tcp))
            }
        };
        tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out")))?
    }

    /// A lazily connected gRPC channel to the peer at `url`, set up by `configure`.
    ///
    /// For an `https` URL this dialler's connector does the TLS and tonic is handed the
    /// URL as `http`: tonic built with a TLS feature of its own (a crate elsewhere in
    /// the build may switch one on) refuses an `https` URI it was given no TLS
    /// settings for, and would otherwise try to wrap the connection a second time.
    pub fn channel(
        &self,
        url: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel, Box<dyn std::error::Error + Send + Sync>> {
        if !is_https(url) {
            return Ok(configure(Endpoint::from_shared(url.to_string())?).connect_lazy());
        }
        let config = self.tls(url)?.grpc.clone();
        let endpoint = configure(Endpoint::from_shared(format!("http://{}", &url[8..]))?);
        Ok(endpoint.connect_with_connector_lazy(GrpcConnector { config }))
    }
}

/// Dials the peer gRPC service over TLS for tonic.
#[derive(Clone)]
struct GrpcConnector {
    config: Arc<ClientConfig>,
}

impl tower_service::Service<Uri> for GrpcConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = TlsConnector::from(self.config.clone());
        Box::pin(async move {
            let authority = uri
                .authority()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("peer URI {uri} has no host")))?;
            let addr = match authority.port_u16() {
                Some(_) => authority.as_str().to_string(),
                None => format!("{}:443", authority.host()),
            };
            Ok(TokioIo::new(tls_connect(&connector, &addr).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_certificate_must_name_the_urls_host() {
        assert_eq!(
            server_name("127.0.0.1:2380").unwrap(),
            ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
        );
        assert_eq!(
            server_name("[::1]:2380").unwrap(),
            ServerName::IpAddress(std::net::Ipv6Addr::LOCALHOST.into())
        );
        assert_eq!(
            server_name("infra0.example.com:2380").unwrap(),
            ServerName::try_from("infra0.example.com").unwrap()
        );
    }

    #[tokio::test]
    async fn an_https_peer_needs_peer_tls() {
        let error = PeerDialer::default()
            .connect("https://127.0.0.1:1", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("--peer-auto-tls"), "{error}");
    }
}
