//! The server: UDP and TCP on one address, each query answered from the zone or
//! forwarded, as it came, to the host's resolvers.
//!
//! ```text
//!  query ─► wire::parse_query ─┬─ FORMERR / NOTIMP
//!                              ├─ zone::answer (under the domain) ─► wire::write_reply
//!                              │     (UDP: cut to 512 bytes or the client's EDNS size,
//!                              │      with the truncated bit, so it asks again over TCP)
//!                              └─ anything else ─► each upstream in turn, same transport
//!                                   ─► its reply verbatim (SERVFAIL when none answers)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::catalog::Catalog;
use crate::wire::{self, CLASS_IN, CLASSIC_UDP_BYTES, NOTIMP, SERVFAIL};
use crate::zone::{self, ZoneConfig};

/// How long an upstream has to answer before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP connection may sit idle between queries (RFC 7766 suggests seconds).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What answers queries: the zone, its catalog and the resolvers to forward to.
pub struct Resolver {
    pub zone: ZoneConfig,
    pub catalog: Arc<Catalog>,
    /// The host's resolvers (port 53 unless a test says otherwise), never this
    /// server's own address: a query forwarded to itself would loop.
    pub upstreams: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Resolver {
    /// The reply to `bytes`, or None for bytes not worth one (no id to answer).
    async fn handle(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let query = match wire::parse_query(bytes) {
            Ok(query) => query,
            Err(e) => {
                tracing::debug!(error = e.0, "a query that does not parse");
                return wire::format_error(bytes);
            }
        };
        if query.opcode != 0 {
            return Some(wire::error_reply(&query, NOTIMP));
        }
        if query.qclass == CLASS_IN
            && let Some(reply) = self
                .catalog
                .read(|c| zone::answer(&self.zone, c, &query.name, query.qtype))
        {
            let limit = match transport {
                Transport::Tcp => usize::from(u16::MAX),
                Transport::Udp => query
                    .edns_udp_bytes
                    .map_or(CLASSIC_UDP_BYTES, |size| usize::from(size.min(wire::EDNS_UDP_BYTES))),
            };
            return Some(wire::write_reply(&query, &reply, limit));
        }
        for upstream in &self.upstreams {
            let forwarded = match transport {
                Transport::Udp => forward_udp(*upstream, bytes).await,
                Transport::Tcp => forward_tcp(*upstream, bytes).await,
            };
            match forwarded {
                Ok(reply) if reply.get(..2) == bytes.get(..2) => return Some(reply),
                Ok(_) => tracing::debug!(%upstream, "an upstream's reply with another id"),
                Err(e) => tracing::debug!(%upstream, error = %e, "an upstream did not answer"),
            }
        }
        Some(wire::error_reply(&query, SERVFAIL))
    }
}

async fn forward_udp(upstream: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(bytes).await?;
    let mut buffer = vec![0; 65535];
    let length = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buffer))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    buffer.truncate(length);
    Ok(buffer)
}

async fn forward_tcp(upstream: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        write_framed(&mut stream, bytes).await?;
        read_framed(&mut stream).await
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let length = stream.read_u16().await?;
    let mut message = vec![0; usize::from(length)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(message.len()).map_err(|_| std::io::Error::other("message too long"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

/// The server's sockets, bound.
pub struct Listeners {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Listeners {
    /// Binds UDP and TCP at `address`. With `freebind`, the address need not be the
    /// host's yet (IP_FREEBIND): the pod bridge gets its gateway address with the
    /// node's first pod, and the server is there before it.
    pub fn bind(address: SocketAddr, freebind: bool) -> std::io::Result<Listeners> {
        let (udp, tcp) = Self::bind_std(address, freebind)?;
        Self::from_std(udp, tcp)
    }

    /// [`Listeners::bind`]'s sockets, not yet tokio's: for binding on a thread inside
    /// another network namespace, which has no runtime.
    pub fn bind_std(
        address: SocketAddr,
        freebind: bool,
    ) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
        // Port 0 (tests) picks the UDP port; the same TCP port may be taken, so a few
        // ports are tried.
        let attempts = if address.port() == 0 { 20 } else { 1 };
        let mut result = Self::bind_once(address, freebind);
        for _ in 1..attempts {
            match &result {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => result = Self::bind_once(address, freebind),
                _ => break,
            }
        }
        result
    }

    /// Needs a tokio runtime.
    pub fn from_std(udp: std::net::UdpSocket, tcp: std::net::TcpListener) -> std::io::Result<Listeners> {
        Ok(Listeners {
            udp: UdpSocket::from_std(udp)?,
            tcp: TcpListener::from_std(tcp)?,
        })
    }

    fn bind_once(address: SocketAddr, freebind: bool) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
        let socket = |kind: Type, protocol: Protocol| -> std::io::Result<Socket> {
            let socket = Socket::new(Domain::for_address(address), kind, Some(protocol))?;
            if freebind {
                if address.is_ipv4() {
                    socket.set_freebind_v4(true)?;
                } else {
                    socket.set_freebind_v6(true)?;
                }
            }
            socket.set_nonblocking(true)?;
            Ok(socket)
        };
        let udp = socket(Type::DGRAM, Protocol::UDP)?;
        udp.bind(&address.into())?;
        // The TCP port follows the UDP one (a test's port 0 picks one for both).
        let bound = udp.local_addr()?.as_socket().unwrap_or(address);
        let tcp = socket(Type::STREAM, Protocol::TCP)?;
        tcp.set_reuse_address(true)?;
        tcp.bind(&bound.into())?;
        tcp.listen(1024)?;
        Ok((udp.into(), tcp.into()))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Answers queries until the task is dropped.
    pub async fn serve(self, resolver: Arc<Resolver>) {
        let udp = Arc::new(self.udp);
        tokio::join!(serve_udp(udp, resolver.clone()), serve_tcp(self.tcp, resolver));
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, resolver: Arc<Resolver>) {
    let mut buffer = vec![0; 65535];
    loop {
        let (length, client) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors of earlier replies surface here; the socket stays usable.
                tracing::debug!(error = %e, "receiving a query");
                continue;
            }
        };
        let query = buffer[..length].to_vec();
        let (socket, resolver) = (socket.clone(), resolver.clone());
        // Each query on a task of its own: a forwarded one may wait for its upstream.
        tokio::spawn(async move {
            if let Some(reply) = resolver.handle(&query, Transport::Udp).await
                && let Err(e) = socket.send_to(&reply, client).await
            {
                tracing::debug!(%client, error = %e, "sending a reply");
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a DNS connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let resolver = resolver.clone();
        tokio::spawn(async move {
            while let Ok(Ok(query)) = tokio::time::timeout(TCP_IDLE_TIMEOUT, read_framed(&mut stream)).await {
                let Some(reply) = resolver.handle(&query, Transport::Tcp).await else {
                    break;
                };
                if write_framed(&mut stream, &reply).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
