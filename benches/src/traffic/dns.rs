//! DNS queries per second and their latency on one node: the agent's own cluster DNS
//! server (on its pod bridge's gateway, port 53, answering from the catalog of Services
//! its reflectors keep), asked over UDP from inside that host by concurrent clients,
//! each sending its next query when the last was answered (closed loop).
//!
//! ```text
//!  --dns-services Services created (ClusterIP, no selector), then per client:
//!    A? dns-<random>.default.svc.cluster.local ──► the reply: same id, NOERROR, one answer
//!  peer (when dnsmasq is installed): dnsmasq on the same host, the same names and
//!    addresses from a hosts file, the same clients             ──► berth / dnsmasq
//! ```
//!
//! dnsmasq answers from a static table, so it is a floor for a server on this machine
//! rather than CoreDNS's equal (CoreDNS is not packaged here).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_testkit::Process;
use berth_testkit::hosts::{Host, system_tool};
use serde_json::json;
use tokio::net::UdpSocket;

use super::cluster::{Api, TrafficCluster};
use crate::driver::Outcome;

/// How long a query may wait for its reply before it counts as an error.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The port dnsmasq serves on (53 on the gateway address is the agent's).
const PEER_PORT: u16 = 5353;

#[derive(Clone, Debug)]
pub struct Queries {
    /// Names asked for, at random.
    pub names: Vec<String>,
    pub clients: usize,
    pub warm_up: Duration,
    pub duration: Duration,
}

/// Creates `count` Services `dns-<i>` and returns their names and cluster IPs.
pub async fn create_services(cluster: &TrafficCluster, count: usize) -> anyhow::Result<Vec<(String, Ipv4Addr)>> {
    let mut api = Api::open(&cluster.api_authority).await?;
    let mut services = Vec::new();
    for index in 0..count {
        let name = format!("dns-{index}");
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}]},
        });
        api.create("/api/v1/namespaces/default/services", &service).await?;
        let created = api
            .get_json(&format!("/api/v1/namespaces/default/services/{name}"))
            .await?;
        let ip = created["spec"]["clusterIP"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
            .with_context(|| format!("Service {name} has no cluster IP"))?;
        services.push((format!("{name}.default.svc.cluster.local"), ip));
    }
    Ok(services)
}

/// Waits until the server at `server`, asked from `host`, knows the last name.
pub fn wait_known(host: &Host, server: SocketAddr, name: &str) -> anyhow::Result<()> {
    let name = name.to_owned();
    host.spawn_inside(move || -> anyhow::Result<()> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(server)?;
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        let started = Instant::now();
        let mut buffer = [0; 1500];
        loop {
            socket.send(&encode_query(7, &name))?;
            if let Ok(length) = socket.recv(&mut buffer)
                && check_reply(&buffer[..length], 7).is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{server} does not answer for {name} after 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the DNS check panicked"))?
    .context("entering the host")?
}

/// Runs the clients inside `host` against `server`.
pub fn measure(host: &Host, server: SocketAddr, queries: &Queries) -> anyhow::Result<Outcome> {
    let queries = queries.clone();
    host.spawn_inside(move || -> anyhow::Result<Outcome> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let started = Instant::now();
            let counted_from = started + queries.warm_up;
            let ends = counted_from + queries.duration;
            let clients: Vec<_> = (0..queries.clients)
                .map(|index| {
                    let queries = queries.clone();
                    tokio::spawn(async move { client(server, &queries, index, counted_from, ends).await })
                })
                .collect();
            let mut outcome = Outcome::default();
            for client in clients {
                outcome.merge(client.await??);
            }
            outcome.elapsed = queries.duration;
            Ok(outcome)
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the DNS clients panicked"))?
    .context("entering the host")?
}

async fn client(
    server: SocketAddr,
    queries: &Queries,
    index: usize,
    counted_from: Instant,
    ends: Instant,
) -> anyhow::Result<Outcome> {
    let socket = UdpSocket::bind("0.0.0.0:0").await?;
    socket.connect(server).await?;
    let mut outcome = Outcome::default();
    let mut buffer = vec![0; 4096];
    // A small linear congruential generator: which name to ask for.
    let mut state = index as u64 * 2_654_435_761 + 1;
    let mut id: u16 = 0;
    loop {
        let now = Instant::now();
        if now >= ends {
            break;
        }
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let name = &queries.names[(state >> 33) as usize % queries.names.len()];
        id = id.wrapping_add(1);
        socket.send(&encode_query(id, name)).await?;
        let result = tokio::time::timeout(QUERY_TIMEOUT, async {
            // A late reply to an earlier query that timed out is read and skipped.
            loop {
                let length = socket.recv(&mut buffer).await.map_err(|e| e.to_string())?;
                if buffer[..length].get(..2) == Some(&id.to_be_bytes()[..]) {
                    return check_reply(&buffer[..length], id);
                }
            }
        })
        .await;
        let took = now.elapsed();
        if now < counted_from {
            continue;
        }
        match result {
            Ok(Ok(())) => outcome.latencies.push(took),
            Ok(Err(error)) => outcome.record_error(error),
            Err(_) => outcome.record_error(format!("no reply within {QUERY_TIMEOUT:?}")),
        }
    }
    Ok(outcome)
}

/// A standard query (recursion desired) for the A record of `name`.
fn encode_query(id: u16, name: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(64);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.extend_from_slice(&[0, 0, 1, 0, 1]);
    message
}

/// A reply to query `id` that is NOERROR with at least one answer.
fn check_reply(reply: &[u8], id: u16) -> Result<(), String> {
    if reply.len() < 12 {
        return Err("a reply shorter than its header".into());
    }
    if reply[..2] != id.to_be_bytes() {
        return Err("a reply to another query".into());
    }
    let rcode = reply[3] & 0x0f;
    if rcode != 0 {
        return Err(format!("rcode {rcode}"));
    }
    if u16::from_be_bytes([reply[6], reply[7]]) == 0 {
        return Err("no answer".into());
    }
    Ok(())
}

/// dnsmasq on `host`, serving `records` from a hosts file and nothing else; `None`
/// when it is not installed.
pub fn start_peer(
    host: &Host,
    dir: &Path,
    records: &[(String, Ipv4Addr)],
) -> anyhow::Result<Option<(Process, SocketAddr)>> {
    let dnsmasq = system_tool("dnsmasq");
    if !dnsmasq.is_file() {
        return Ok(None);
    }
    let hosts_file = dir.join("dnsmasq.hosts");
    let lines: String = records.iter().map(|(name, ip)| format!("{ip} {name}\n")).collect();
    std::fs::write(&hosts_file, lines)?;
    let args = [
        "--keep-in-foreground".to_owned(),
        "--conf-file=/dev/null".to_owned(),
        "--no-resolv".to_owned(),
        "--no-hosts".to_owned(),
        format!("--addn-hosts={}", hosts_file.display()),
        format!("--listen-address={}", host.ip),
        "--bind-interfaces".to_owned(),
        format!("--port={PEER_PORT}"),
        "--user=root".to_owned(),
        "--pid-file=".to_owned(),
    ];
    let mut process = host.process("dnsmasq", dnsmasq, args, dir.join("dnsmasq.log"));
    process.start()?;
    Ok(Some((process, SocketAddr::from((host.ip, PEER_PORT)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_its_labels_and_asks_for_an_a_record() {
        let query = encode_query(0x1234, "echo.default.svc.cluster.local");
        assert_eq!(&query[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(query[4..6], [0, 1]);
        assert_eq!(&query[12..17], b"\x04echo");
        assert_eq!(&query[query.len() - 5..], &[0, 0, 1, 0, 1]);
    }

    #[test]
    fn only_a_noerror_reply_with_an_answer_to_the_query_counts() {
        let mut reply = encode_query(9, "a.b");
        reply[2] = 0x81;
        assert_eq!(check_reply(&reply, 9), Err("no answer".into()));
        reply[7] = 1;
        assert_eq!(check_reply(&reply, 9), Ok(()));
        assert!(check_reply(&reply, 10).is_err());
        reply[3] = 3;
        assert_eq!(check_reply(&reply, 9), Err("rcode 3".into()));
    }
}
