//! A userspace TCP proxy on one directed peer link (this kernel has no `tc netem`).
//!
//! Replica A dials replica B through the proxy A→B (`--dial-peer-urls`), so the
//! proxy decides what of A's traffic to B gets through: everything, nothing (a
//! partition: open connections are cut and new ones closed at once), or everything
//! late (delay) or in bursts with stalls (loss; a TCP stream cannot lose bytes, so
//! loss shows as the retransmission stalls it would cause).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::rng::Rng;

/// How long a "lost" chunk stalls its connection, like a TCP retransmission timeout.
const LOSS_STALL: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct LinkState {
    is_blocked: AtomicBool,
    delay_ms: AtomicU64,
    loss_percent: AtomicU64,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// One directed link's proxy. Dropping it stops it.
pub struct LinkProxy {
    pub listen: SocketAddr,
    state: Arc<LinkState>,
    accept_task: JoinHandle<()>,
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.cut_connections();
    }
}

impl LinkProxy {
    pub async fn start(target: SocketAddr, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let state = Arc::new(LinkState::default());
        let accept_task = tokio::spawn(accept_loop(listener, target, state.clone(), seed));
        Ok(Self {
            listen,
            state,
            accept_task,
        })
    }

    /// The URL to dial the target by: `scheme` is the target's (`http` or `https`;
    /// the proxy forwards bytes, so TLS passes through it).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.listen)
    }

    /// Cuts the link (true) or heals it (false).
    pub fn set_blocked(&self, blocked: bool) {
        self.state.is_blocked.store(blocked, Ordering::SeqCst);
        if blocked {
            self.cut_connections();
        }
    }

    pub fn is_blocked(&self) -> bool {
        self.state.is_blocked.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_loss_percent(&self, percent: u64) {
        self.state.loss_percent.store(percent.min(100), Ordering::SeqCst);
    }

    /// Back to passing everything through at once.
    pub fn heal(&self) {
        self.set_delay(Duration::ZERO);
        self.set_loss_percent(0);
        self.set_blocked(false);
    }

    fn cut_connections(&self) {
        let mut connections = self.state.connections.lock().unwrap_or_else(|p| p.into_inner());
        for task in connections.drain(..) {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: Arc<LinkState>, seed: u64) {
    let mut rng = Rng::new(seed);
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if state.is_blocked.load(Ordering::SeqCst) {
            drop(inbound); // a partition: the dialer sees its connection closed
            continue;
        }
        let state_for_conn = state.clone();
        let conn_seed = rng.next_u64();
        let task = tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            let forward = pump(in_read, out_write, state_for_conn.clone(), Rng::new(conn_seed));
            let backward = pump(out_read, in_write, state_for_conn, Rng::new(conn_seed ^ 1));
            tokio::select! {
                _ = forward => {}
                _ = backward => {}
            }
        });
        let mut connections = state.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.retain(|t| !t.is_finished());
        connections.push(task);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<LinkState>,
    mut rng: Rng,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if state.is_blocked.load(Ordering::SeqCst) {
            return;
        }
        let delay_ms = state.delay_ms.load(Ordering::SeqCst);
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        let loss = state.loss_percent.load(Ordering::SeqCst);
        if loss > 0 && rng.chance(loss) {
            tokio::time::sleep(LOSS_STALL).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn passes_blocks_and_heals() {
        let proxy = LinkProxy::start(echo_server().await, 1).await.unwrap();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");
        proxy.set_blocked(true);
        assert!(
            round_trip(proxy.listen).await.is_err(),
            "a blocked link carries nothing"
        );
        proxy.heal();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn delay_slows_the_link() {
        let proxy = LinkProxy::start(echo_server().await, 2).await.unwrap();
        proxy.set_delay(Duration::from_millis(150));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "both directions are delayed"
        );
    }
}
