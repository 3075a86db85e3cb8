//! Stale UDP flows. A UDP "connection" is a conntrack entry that lives as long as its
//! packets keep coming, and its NAT was decided by the first packet: a client that
//! keeps sending to a Service (a pod's resolver to the cluster DNS) would go on
//! reaching an endpoint that is gone, or, had it started before the Service had
//! endpoints, never be DNATed at all. So after each sync that changed where UDP
//! Services' traffic may go, the proxy deletes the UDP flows whose original
//! destination is a Service's address and port (a NodePort: any address of that
//! port, if the flow was DNATed) and whose reply source is not a serving endpoint of
//! that port any more, and the flows to Service addresses and node ports that went
//! away, as kube-proxy does. TCP needs none of this: a connection to a dead endpoint
//! fails, and the client's next one is NATed afresh.
//!
//! ```text
//!  ServicePorts ─► UdpTargets::of (pure) ──┐
//!  conntrack -L -p udp ─► parse_flows ─────┴─► UdpTargets::stale (pure)
//!        ─► one `conntrack -D` per stale (destination, endpoint) pair
//! ```
//!
//! The work is done by Debian's `conntrack` tool; without it the proxy works as
//! before and says once that stale flows stay.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use super::model::{Protocol, ServicePort};
use crate::network::netns;

/// An endpoint's `ip:port`.
type Target = (Ipv4Addr, u16);

/// One UDP flow of the conntrack table, as `conntrack -L` prints it: its original
/// destination, and where replies come from (the endpoint it was DNATed to, or the
/// original destination when it was not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub orig_dst: Ipv4Addr,
    pub orig_dport: u16,
    pub reply_src: Ipv4Addr,
    pub reply_sport: u16,
}

impl Flow {
    fn is_dnated(&self) -> bool {
        (self.reply_src, self.reply_sport) != (self.orig_dst, self.orig_dport)
    }
}

/// The flows of `conntrack -L` output (`-o extended` or not): in each line, the
/// first `dst=`/`dport=` are the original direction's, the second `src=`/`sport=`
/// the reply's. Lines that are not IPv4 flows with ports are skipped.
pub fn parse_flows(listing: &str) -> Vec<Flow> {
    listing
        .lines()
        .filter_map(|line| {
            let mut values: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (key, value) in line.split_whitespace().filter_map(|word| word.split_once('=')) {
                values.entry(key).or_default().push(value);
            }
            let nth = |key: &str, n: usize| values.get(key).and_then(|v| v.get(n)).copied();
            Some(Flow {
                orig_dst: nth("dst", 0)?.parse().ok()?,
                orig_dport: nth("dport", 0)?.parse().ok()?,
                reply_src: nth("src", 1)?.parse().ok()?,
                reply_sport: nth("sport", 1)?.parse().ok()?,
            })
        })
        .collect()
}

/// Flows to delete, as one `conntrack -D` filter: those to `orig_dst` (any
/// address for a node port) and `orig_dport` whose replies come from
/// `reply_src:reply_sport`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleFlows {
    pub orig_dst: Option<Ipv4Addr>,
    pub orig_dport: u16,
    pub reply_src: Ipv4Addr,
    pub reply_sport: u16,
}

impl StaleFlows {
    /// `conntrack`'s arguments deleting these flows.
    pub fn delete_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-D", "-p", "udp", "-f", "ipv4"].map(String::from).into();
        if let Some(dst) = self.orig_dst {
            args.extend(["--orig-dst".into(), dst.to_string()]);
        }
        args.extend([
            "--orig-port-dst".into(),
            self.orig_dport.to_string(),
            "--reply-src".into(),
            self.reply_src.to_string(),
            "--reply-port-src".into(),
            self.reply_sport.to_string(),
        ]);
        args
    }
}

/// Where the UDP Services' traffic may go: each Service address and port (cluster
/// IP, external IPs) and each node port, with its serving endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpTargets {
    by_address: BTreeMap<Target, BTreeSet<Target>>,
    by_node_port: BTreeMap<u16, BTreeSet<Target>>,
}

impl UdpTargets {
    pub fn of(ports: &[ServicePort]) -> UdpTargets {
        let mut targets = UdpTargets::default();
        for port in ports.iter().filter(|p| p.protocol == Protocol::Udp) {
            // Serving endpoints, of any node: a flow to a terminating endpoint that
            // still serves may finish, one to another node's under a Local policy
            // was let through by that policy's rules.
            let serving: BTreeSet<Target> = port
                .endpoints
                .iter()
                .filter(|e| e.serving || e.ready)
                .map(|e| (e.ip, e.port))
                .collect();
            for ip in std::iter::once(port.cluster_ip).chain(port.external_ips.iter().copied()) {
                targets
                    .by_address
                    .entry((ip, port.port))
                    .or_default()
                    .extend(serving.iter().copied());
            }
            if let Some(node_port) = port.node_port {
                targets
                    .by_node_port
                    .entry(node_port)
                    .or_default()
                    .extend(serving.iter().copied());
            }
        }
        targets
    }

    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty() && self.by_node_port.is_empty()
    }

    /// The flows of `flows` that go where they may not any more: to one of these
    /// targets but not to a serving endpoint of it (not DNATed included), or to a
    /// Service address or node port of `previous` that is gone. A node port's flows
    /// count only when DNATed (others merely share its number).
    pub fn stale(&self, previous: Option<&UdpTargets>, flows: &[Flow]) -> BTreeSet<StaleFlows> {
        let is_stale = |flow: &Flow| -> Option<Option<Ipv4Addr>> {
            let address = (flow.orig_dst, flow.orig_dport);
            let reply = (flow.reply_src, flow.reply_sport);
            if let Some(serving) = self.by_address.get(&address) {
                return (!serving.contains(&reply)).then_some(Some(flow.orig_dst));
            }
            if previous.is_some_and(|p| p.by_address.contains_key(&address)) {
                return Some(Some(flow.orig_dst));
            }
            if !flow.is_dnated() {
                return None;
            }
            match self.by_node_port.get(&flow.orig_dport) {
                Some(serving) => (!serving.contains(&reply)).then_some(None),
                None => previous
                    .is_some_and(|p| p.by_node_port.contains_key(&flow.orig_dport))
                    .then_some(None),
            }
        };
        flows
            .iter()
            .filter_map(|flow| {
                is_stale(flow).map(|orig_dst| StaleFlows {
                    orig_dst,
                    orig_dport: flow.orig_dport,
                    reply_src: flow.reply_src,
                    reply_sport: flow.reply_sport,
                })
            })
            .collect()
    }
}

/// Whether the `conntrack` tool runs here.
pub fn available() -> bool {
    Command::new("conntrack")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Deletes the flows that `targets` make stale (`previous`: the targets of the last
/// clean-up), in the namespace at `host_netns` (blocking); how many filters it ran.
pub fn clean(host_netns: Option<&Path>, targets: &UdpTargets, previous: Option<&UdpTargets>) -> io::Result<usize> {
    let listing = netns::run_in(host_netns, "conntrack", &["-L", "-p", "udp", "-f", "ipv4"])?;
    let stale = targets.stale(previous, &parse_flows(&listing));
    for flows in &stale {
        let mut delete = Command::new("conntrack");
        delete.args(flows.delete_args());
        let out = netns::output_in(host_netns, delete, b"")?;
        // Exit status 1 with "0 flow entries": the flows ended meanwhile.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains(" 0 flow entries") {
            return Err(io::Error::other(format!(
                "conntrack {}: {}",
                flows.delete_args().join(" "),
                stderr.trim()
            )));
        }
    }
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::Endpoint;

    const LISTING: &str = "\
udp      17 29 src=10.244.1.5 dst=10.96.0.10 sport=40000 dport=53 [UNREPLIED] src=10.244.1.2 dst=10.244.1.5 sport=5353 dport=40000 mark=0 use=1
ipv4     2 udp      17 119 src=10.244.1.5 dst=10.96.0.10 sport=40001 dport=53 src=10.244.1.3 dst=10.244.1.5 sport=5353 dport=40001 [ASSURED] mark=0 use=1
udp      17 29 src=10.244.1.6 dst=10.96.0.10 sport=40002 dport=53 [UNREPLIED] src=10.96.0.10 dst=10.244.1.6 sport=53 dport=40002 mark=0 use=1
udp      17 29 src=192.168.1.9 dst=192.168.1.1 sport=40003 dport=30053 src=10.244.1.2 dst=192.168.1.9 sport=5353 dport=40003 mark=0 use=1
udp      17 29 src=10.244.1.5 dst=192.168.7.7 sport=40004 dport=30053 src=192.168.7.7 dst=10.244.1.5 sport=30053 dport=40004 mark=0 use=1
udp      17 29 src=10.244.1.5 dst=10.96.0.11 sport=40005 dport=53 src=10.244.1.4 dst=10.244.1.5 sport=5353 dport=40005 mark=0 use=1
udp      17 29 src=10.244.1.5 dst=8.8.8.8 sport=40006 dport=53 src=8.8.8.8 dst=192.168.1.1 sport=53 dport=40006 mark=0 use=1
";

    fn flow(orig_dst: &str, orig_dport: u16, reply_src: &str, reply_sport: u16) -> Flow {
        Flow {
            orig_dst: orig_dst.parse().unwrap(),
            orig_dport,
            reply_src: reply_src.parse().unwrap(),
            reply_sport,
        }
    }

    fn dns(endpoints: &[(&str, bool, bool)]) -> ServicePort {
        ServicePort {
            namespace: "kube-system".into(),
            service: "dns".into(),
            port_name: "dns".into(),
            protocol: Protocol::Udp,
            cluster_ip: "10.96.0.10".parse().unwrap(),
            port: 53,
            node_port: Some(30053),
            external_ips: Vec::new(),
            affinity_timeout_s: None,
            internal_local: false,
            external_local: false,
            endpoints: endpoints
                .iter()
                .map(|(ip, ready, serving)| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 5353,
                    ready: *ready,
                    serving: *serving,
                    terminating: !*ready,
                    node_name: None,
                })
                .collect(),
        }
    }

    fn stale(orig_dst: Option<&str>, orig_dport: u16, reply_src: &str, reply_sport: u16) -> StaleFlows {
        StaleFlows {
            orig_dst: orig_dst.map(|d| d.parse().unwrap()),
            orig_dport,
            reply_src: reply_src.parse().unwrap(),
            reply_sport,
        }
    }

    #[test]
    fn flows_are_read_from_both_listing_formats() {
        let flows = parse_flows(LISTING);
        assert_eq!(flows.len(), 7);
        assert_eq!(flows[0], flow("10.96.0.10", 53, "10.244.1.2", 5353));
        assert_eq!(flows[1], flow("10.96.0.10", 53, "10.244.1.3", 5353), "-o extended");
        assert!(!flows[2].is_dnated());
        assert!(parse_flows("conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n").is_empty());
    }

    #[test]
    fn flows_to_endpoints_that_no_longer_serve_go_and_the_others_stay() {
        let flows = parse_flows(LISTING);
        // .2 was replaced by .3; .4 is terminating but still serving.
        let targets = UdpTargets::of(&[dns(&[("10.244.1.3", true, true), ("10.244.1.4", false, true)])]);
        let mut eleven = dns(&[("10.244.1.4", false, true)]);
        eleven.service = "dns2".into();
        eleven.cluster_ip = "10.96.0.11".parse().unwrap();
        eleven.node_port = None;
        let targets_with_eleven =
            UdpTargets::of(&[dns(&[("10.244.1.3", true, true), ("10.244.1.4", false, true)]), eleven]);
        assert_eq!(
            targets_with_eleven.stale(None, &flows),
            [
                stale(None, 30053, "10.244.1.2", 5353),
                stale(Some("10.96.0.10"), 53, "10.244.1.2", 5353),
                stale(Some("10.96.0.10"), 53, "10.96.0.10", 53),
            ]
            .into(),
            "the removed endpoint's flows, by cluster IP and by node port, and one never DNATed; \
             not a flow that only shares the node port's number, nor one to another address"
        );
        assert_eq!(
            targets.stale(Some(&targets_with_eleven), &flows),
            [
                stale(None, 30053, "10.244.1.2", 5353),
                stale(Some("10.96.0.10"), 53, "10.244.1.2", 5353),
                stale(Some("10.96.0.10"), 53, "10.96.0.10", 53),
                stale(Some("10.96.0.11"), 53, "10.244.1.4", 5353),
            ]
            .into(),
            "a Service address that went away loses its flows"
        );
    }

    #[test]
    fn tcp_services_have_no_udp_targets() {
        let mut tcp = dns(&[("10.244.1.3", true, true)]);
        tcp.protocol = Protocol::Tcp;
        assert!(UdpTargets::of(&[tcp]).is_empty());
        assert!(
            UdpTargets::of(&[dns(&[])]).stale(None, &parse_flows(LISTING)).len() == 4,
            "no endpoint serves: every flow to the Service goes"
        );
    }

    #[test]
    fn the_delete_filter_names_the_destination_and_the_endpoint() {
        assert_eq!(
            stale(Some("10.96.0.10"), 53, "10.244.1.2", 5353)
                .delete_args()
                .join(" "),
            "-D -p udp -f ipv4 --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.2 --reply-port-src 5353"
        );
        assert_eq!(
            stale(None, 30053, "10.244.1.2", 5353).delete_args().join(" "),
            "-D -p udp -f ipv4 --orig-port-dst 30053 --reply-src 10.244.1.2 --reply-port-src 5353"
        );
    }
}
