//! What the pod network's tests build on: "hosts" that are network namespaces (so a
//! test never touches the machine's own bridge, routes or iptables, and two hosts
//! fit on one machine), servers and clients inside namespaces, and what a host has
//! left (veths, leases, iptables chains). Everything a fixture makes goes in its
//! Drop, whether the test passed or not.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::network::{CniNetwork, CniSettings, PodNetwork, PodNetworkSpec, PortMapping, netns};

/// Whether this machine can run the tests (root, the plugins, ip, unshare,
/// iptables); if not, says so through `berth_testkit::skip` (which fails under CI).
pub fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        berth_testkit::skip("root (network namespaces, bridges, iptables)");
        return false;
    }
    let settings = CniSettings::new(PathBuf::from("/nonexistent"));
    if let Err(e) = CniNetwork::available(&settings) {
        berth_testkit::skip(&e);
        return false;
    }
    for tool in ["ip", "unshare", "iptables-save"] {
        let found = std::process::Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            berth_testkit::skip(&format!("the {tool} command"));
            return false;
        }
    }
    true
}

/// A network namespace standing for a node, with its own state dir; its Drop tears
/// down every pod network still in it, then the namespace (and with it the bridge,
/// the veths, the routes and the iptables rules made inside).
pub struct Host {
    pub netns: PathBuf,
    pub state: tempfile::TempDir,
    pub network: Option<CniNetwork>,
}

impl Host {
    /// A host whose loopback is up (portmap's hostPorts on 127.0.0.1 need it).
    pub fn new(name: &str) -> Host {
        let state = tempfile::Builder::new()
            .prefix(&format!("berth-net-{name}-"))
            .tempdir()
            .expect("a state dir");
        let netns = state.path().join("host-netns");
        netns::create(&netns).expect("the host's namespace");
        let mut settings = CniSettings::new(state.path().join("network"));
        settings.host_netns = Some(netns.clone());
        let host = Host {
            netns,
            state,
            network: Some(CniNetwork::new(settings)),
        };
        host.ip(&["link", "set", "lo", "up"]);
        host
    }

    pub fn network(&self) -> &CniNetwork {
        self.network.as_ref().expect("the network")
    }

    /// Runs `ip args…` on this host.
    pub fn ip(&self, args: &[&str]) -> String {
        netns::run_in(Some(&self.netns), "ip", args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The veths on this host (the host ends of the pods' pairs).
    pub fn veths(&self) -> Vec<String> {
        let links: Vec<serde_json::Value> =
            serde_json::from_str(&self.ip(&["-j", "link", "show", "type", "veth"])).unwrap_or_default();
        links
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(String::from))
            .filter(|name| !name.starts_with("phys"))
            .collect()
    }

    /// The nat table, for a failing assertion's message.
    pub fn nat_table(&self) -> String {
        netns::run_in(Some(&self.netns), "iptables-save", &["-t", "nat"]).unwrap_or_else(|e| e.to_string())
    }

    /// The nat table's chains made for single pods: the bridge's masquerade chains
    /// (`CNI-<hash>`) and portmap's `CNI-DN-<hash>`; the shared `CNI-HOSTPORT-*`
    /// chains are the node's.
    pub fn pod_chains(&self) -> Vec<String> {
        let saved = netns::run_in(Some(&self.netns), "iptables-save", &["-t", "nat"]).expect("iptables-save");
        // A chain is declared (`:NAME`) or shows in its rules (`-A NAME`): this
        // iptables-save does not always print the declarations.
        let mut chains: Vec<String> = saved
            .lines()
            .filter_map(|l| l.strip_prefix(':').or_else(|| l.strip_prefix("-A ")))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|chain| chain.starts_with("CNI-") && !chain.starts_with("CNI-HOSTPORT-"))
            .map(String::from)
            .collect();
        chains.sort();
        chains.dedup();
        chains
    }

    /// host-local's leases: one file per address in use, named by the address.
    pub fn leases(&self) -> Vec<String> {
        let dir = self.state.path().join("network/cni/networks/berth");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.parse::<IpAddr>().is_ok())
            .collect()
    }

    pub fn netns_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.path().join("network/netns"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(network) = self.network.take() {
            for pod in network.list() {
                if let Err(e) = network.teardown(&pod) {
                    eprintln!("cleaning up pod {pod}: {e}");
                }
            }
        }
        // Any namespace file still mounted under the state dir (a second network
        // of the test's, a pod whose teardown failed), the host's last.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.state.path();
        for leftover in mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(root) && *p != self.netns)
        {
            let _ = netns::remove(&leftover);
        }
        if let Err(e) = netns::remove(&self.netns) {
            eprintln!("removing the host namespace {}: {e}", self.netns.display());
        }
    }
}

/// Connects two hosts by a veth pair ("the wire"), `a_ip` and `b_ip` on a /24.
pub fn wire(a: &Host, a_ip: &str, b: &Host, b_ip: &str) {
    let b_ns = b.netns.display().to_string();
    a.ip(&[
        "link", "add", "phys0", "type", "veth", "peer", "name", "phys0", "netns", &b_ns,
    ]);
    for (host, address) in [(a, a_ip), (b, b_ip)] {
        host.ip(&["addr", "add", &format!("{address}/24"), "dev", "phys0"]);
        host.ip(&["link", "set", "phys0", "up"]);
    }
}

pub fn pod(uid: &str, name: &str, ports: Vec<PortMapping>) -> PodNetworkSpec {
    PodNetworkSpec {
        pod_uid: uid.into(),
        namespace: "default".into(),
        name: name.into(),
        ports,
    }
}

pub fn tcp_port(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        host_port,
        container_port,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }
}

/// A TCP server listening inside a namespace (a socket stays in the namespace it
/// was made in, whichever thread serves it): it answers each connection with
/// `reply` and the peer address it saw. The thread ends with the test process.
pub fn serve(netns_path: &Path, port: u16, reply: &'static str) -> SocketAddr {
    let listener = netns::in_netns(Some(netns_path), || TcpListener::bind(("0.0.0.0", port)))
        .expect("setns")
        .expect("bind");
    let address = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let peer = conn.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            let _ = conn.write_all(format!("{reply} {peer}").as_bytes());
        }
    });
    address
}

/// Connects from inside `from` (a namespace file) to `to` and reads the answer:
/// `Err` when the connection fails (a generous timeout: "it hangs").
pub fn call(from: &Path, to: SocketAddr) -> Result<String, String> {
    netns::in_netns(Some(from), || {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(|e| format!("{to}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map_err(|e| format!("{to}: {e}"))?;
        Ok(answer)
    })
    .map_err(|e| e.to_string())?
}
