//! Links a test can cut: a userspace TCP proxy per directed link, as the jepsen-style
//! suite's nemesis uses (this kernel has no `tc netem`, and loopback cannot be
//! partitioned with iptables without cutting the test itself off). A replica dials its
//! peers through them (`--dial-peer-urls`); an agent can reach the store through them.
//! Cutting a link closes its open connections and every new one at once, as a
//! partition the dialer notices; healing lets new connections through again.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_testkit::Cluster;

#[derive(Default)]
struct State {
    is_cut: AtomicBool,
    is_stopped: AtomicBool,
    /// Both ends of every connection passed through, to shut down on a cut.
    open: Mutex<Vec<TcpStream>>,
}

/// One directed link's proxy; dropping it stops it and closes its connections.
pub struct Link {
    pub listen: SocketAddr,
    state: Arc<State>,
}

impl Link {
    pub fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                if shared.is_stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(inbound) = inbound else { continue };
                if shared.is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the dialer sees its connection closed
                }
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                {
                    let mut open = shared.open.lock().unwrap();
                    open.retain(|s| s.peer_addr().is_ok());
                    open.push(inbound.try_clone().unwrap());
                    open.push(outbound.try_clone().unwrap());
                }
                pump(inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                pump(outbound, inbound);
            }
        });
        Link { listen, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Cuts the link: open connections close, new ones are closed at once.
    pub fn cut(&self) {
        self.state.is_cut.store(true, Ordering::SeqCst);
        for stream in self.state.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.state.is_cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
        self.state.is_stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the stop and returns.
        let _ = TcpStream::connect(self.listen);
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    });
}

/// Every directed peer link between a cluster's replicas, each through a [`Link`];
/// call before the replicas start (it sets their `--dial-peer-urls`).
pub struct PeerLinks {
    /// (from, to) → the link `from` dials `to` through.
    links: Vec<((usize, usize), Link)>,
}

impl PeerLinks {
    pub fn wire(servers: &mut Cluster) -> PeerLinks {
        let n = servers.replicas.len();
        let mut links = Vec::new();
        for from in 0..n {
            let mut dial = Vec::new();
            for to in (0..n).filter(|to| *to != from) {
                let target: SocketAddr = ([127, 0, 0, 1], servers.replicas[to].peer_port).into();
                let link = Link::start(target);
                dial.push(format!("{}={}", servers.replicas[to].name, link.url()));
                links.push(((from, to), link));
            }
            servers.replicas[from].dial_peer_urls = Some(dial.join(","));
        }
        PeerLinks { links }
    }

    /// Cuts (or heals) every link to and from replica `index`: it is partitioned
    /// from its peers, while still running and serving its own clients.
    pub fn isolate(&self, index: usize, is_cut: bool) {
        for ((from, to), link) in &self.links {
            if *from == index || *to == index {
                if is_cut { link.cut() } else { link.heal() }
            }
        }
    }
}
