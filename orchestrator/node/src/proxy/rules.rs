//! The ruleset, pure: service ports and their endpoints (model.rs) in, one
//! `iptables-restore --noflush` input out, kube-proxy's iptables mode in berth's own
//! chains (chains.rs). The input declares each chain of the proxy whose rules
//! changed, which flushes it, and fills it again; chains no longer needed are
//! flushed and deleted in the same input; nothing else on the host is touched. Each table's part is applied
//! as one transaction, so a packet sees the rules before or after a change, never
//! half of it.
//!
//! ```text
//!  nat PREROUTING, OUTPUT ─► SVCS ─┬─ -d clusterIP --dport p ─► SVC (or SVL: Local) ─┐
//!                                  ├─ -d externalIP --dport p ─► EXT ─┐              │
//!                                  └─ --dst-type LOCAL ─► NP ─ --dport nodePort ─► EXT │
//!         EXT: mark for masquerade (Cluster policy) ─► SVC, or (Local policy): pods │
//!              and the node itself ─► SVC, the rest ─► SVL (none: on to DROP)    │
//!         SVC/SVL: affinity (-m recent) then random balancing ─► SEP ◄────────────────┘
//!         SEP: mark hairpin traffic (from the endpoint itself), DNAT to ip:port
//!  nat POSTROUTING ─► POST: MASQUERADE what is marked
//!  filter OUTPUT, FORWARD (new) ─► SVCS: REJECT cluster IPs without endpoints
//!  filter INPUT, FORWARD (new) ─► NP: REJECT NodePorts and external IPs without endpoints
//!  filter FORWARD ─► FWD: accept marked and established traffic
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::chains::ChainNames;
use super::model::{Endpoint, ServicePort};

/// The packet mark meaning "masquerade this" (kube-proxy's bit; the CNI portmap
/// plugin uses another, 0x2000).
pub const MASQUERADE_MARK: &str = "0x4000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Filter,
    Nat,
}

impl Table {
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }
}

/// A chain of the proxy, in its table.
pub type Chain = (Table, String);

/// A rule in a standard chain that jumps into one of the proxy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub table: Table,
    /// The standard chain (`PREROUTING`, `FORWARD`, ...).
    pub from: &'static str,
    /// The rule's matches, before `-j`.
    pub matches: String,
    pub target: String,
    /// First in its chain (before the CNI plugins' rules); else last.
    pub first: bool,
}

impl Jump {
    /// The rule's specification, as `-A`, `-I` and `-D` take it after the chain.
    pub fn spec(&self) -> String {
        if self.matches.is_empty() {
            format!("-j {}", self.target)
        } else {
            format!("{} -j {}", self.matches, self.target)
        }
    }
}

/// The jumps from the standard chains into the proxy's, as kube-proxy places them.
pub fn jumps(names: &ChainNames) -> Vec<Jump> {
    let new = "-m conntrack --ctstate NEW".to_string();
    let jump = |table, from, matches: &str, target: String, first| Jump {
        table,
        from,
        matches: matches.to_string(),
        target,
        first,
    };
    let portals = "-m comment --comment \"berth service portals\"";
    vec![
        jump(Table::Nat, "PREROUTING", portals, names.services(), true),
        jump(Table::Nat, "OUTPUT", portals, names.services(), true),
        jump(
            Table::Nat,
            "POSTROUTING",
            "-m comment --comment \"berth postrouting rules\"",
            names.postrouting(),
            true,
        ),
        jump(Table::Filter, "INPUT", &new, names.node_ports(), true),
        jump(Table::Filter, "FORWARD", &new, names.node_ports(), true),
        jump(Table::Filter, "FORWARD", &new, names.services(), true),
        jump(Table::Filter, "OUTPUT", &new, names.services(), true),
        jump(Table::Filter, "FORWARD", "", names.forward(), false),
    ]
}

/// The node the rules are written for.
#[derive(Debug, Clone)]
pub struct ProxyNode {
    /// The Node's name (endpoints on it are local, for the `Local` policies).
    pub name: String,
    pub chains: ChainNames,
    /// The bridge this node's pods are on: their traffic to a Service's node port or
    /// external IP is the cluster's own, not subject to `externalTrafficPolicy:
    /// Local` (kube-proxy's bridge-interface local detector). None: no pod network.
    pub pod_bridge: Option<String>,
}

/// What a sync left in one chain: its rules, as written.
pub type ChainContent = String;

/// A chain found on the host whose rules are not known (rewritten at the next sync).
pub const UNKNOWN_CONTENT: &str = "\0unknown";

/// One `iptables-restore --noflush` input and the chains it leaves in place, with
/// their rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub text: String,
    pub chains: BTreeMap<Chain, ChainContent>,
}

/// The rules of one table, chain by chain, as they are written.
#[derive(Default)]
struct TableRules {
    chains: Vec<(String, Vec<String>)>,
}

impl TableRules {
    fn chain(&mut self, chain: &str) {
        if !self.chains.iter().any(|(c, _)| c == chain) {
            self.chains.push((chain.to_string(), Vec::new()));
        }
    }

    fn rule(&mut self, chain: &str, rule: String) {
        self.chain(chain);
        let (_, rules) = self
            .chains
            .iter_mut()
            .find(|(c, _)| c == chain)
            .expect("declared above");
        rules.push(format!("-A {chain} {rule}"));
    }
}

/// The input that makes the proxy's chains hold the rules for `ports`, deletes the
/// chains of `previous` (what the last input left) that are no longer needed, and
/// adds the `missing` jumps from the standard chains. Only the chains whose rules
/// differ from `previous` are written (all of them when `full`): a change to one
/// Service rewrites its own chains and the entry chains, whatever the number of
/// Services.
pub fn ruleset(
    ports: &[ServicePort],
    node: &ProxyNode,
    previous: &BTreeMap<Chain, ChainContent>,
    full: bool,
    missing: &[Jump],
) -> Ruleset {
    let names = &node.chains;
    let mut filter = TableRules::default();
    let mut nat = TableRules::default();
    for chain in [names.services(), names.node_ports(), names.forward()] {
        filter.chain(&chain);
    }
    for chain in [names.services(), names.node_ports(), names.postrouting()] {
        nat.chain(&chain);
    }

    let post = names.postrouting();
    nat.rule(
        &post,
        format!("-m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN"),
    );
    // Cleared so that a packet going through the host again is not masqueraded twice.
    nat.rule(&post, format!("-j MARK --xor-mark {MASQUERADE_MARK}"));
    nat.rule(
        &post,
        "-m comment --comment \"berth service traffic requiring SNAT\" -j MASQUERADE --random-fully".into(),
    );
    // With route_localnet on (for NodePorts on 127.0.0.1), nothing from elsewhere may
    // reach the host's loopback addresses (kube-proxy's rule for CVE-2020-8558).
    filter.rule(
        &names.node_ports(),
        "! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" \
         -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
            .into(),
    );
    let forward = names.forward();
    filter.rule(
        &forward,
        format!(
            "-m comment --comment \"berth forwarding rules\" -m mark --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j ACCEPT"
        ),
    );
    filter.rule(
        &forward,
        "-m comment --comment \"berth forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            .into(),
    );

    for port in ports {
        service_port_rules(port, node, &mut filter, &mut nat);
    }
    // Last: anything to a local address may be a NodePort.
    nat.rule(
        &names.services(),
        "-m comment --comment \"berth service nodeports; NOTE: this must be the last rule in this chain\" \
         -m addrtype --dst-type LOCAL -j "
            .to_string()
            + &names.node_ports(),
    );

    let mut chains = BTreeMap::new();
    let mut text = String::new();
    for (table, rules) in [(Table::Filter, &filter), (Table::Nat, &nat)] {
        let written: Vec<&(String, Vec<String>)> = rules
            .chains
            .iter()
            .filter(|(chain, lines)| full || previous.get(&(table, chain.clone())) != Some(&lines.join("\n")))
            .collect();
        let stale: Vec<&String> = previous
            .keys()
            .filter(|(t, c)| *t == table && !rules.chains.iter().any(|(chain, _)| chain == c))
            .map(|(_, c)| c)
            .collect();
        let _ = writeln!(text, "*{}", table.as_str());
        for chain in written.iter().map(|(c, _)| c).chain(stale.iter().copied()) {
            let _ = writeln!(text, ":{chain} - [0:0]");
        }
        for jump in missing.iter().filter(|j| j.table == table) {
            let position = if jump.first { "-I" } else { "-A" };
            let at = if jump.first { " 1" } else { "" };
            let _ = writeln!(text, "{position} {}{at} {}", jump.from, jump.spec());
        }
        for (_, lines) in &written {
            for line in lines {
                let _ = writeln!(text, "{line}");
            }
        }
        for chain in stale {
            let _ = writeln!(text, "-X {chain}");
        }
        text.push_str("COMMIT\n");
        chains.extend(
            rules
                .chains
                .iter()
                .map(|(chain, lines)| ((table, chain.clone()), lines.join("\n"))),
        );
    }
    Ruleset { text, chains }
}

/// `-p tcp -m tcp --dport 80`.
fn port_match(port: &ServicePort, number: u16) -> String {
    let protocol = port.protocol.as_str();
    format!("-p {protocol} -m {protocol} --dport {number}")
}

/// What traffic with no endpoint to go to meets: REJECT when the Service has no
/// endpoint at all (the client fails at once, as with a closed port), DROP when it
/// has some but none on this node under a `Local` policy (kube-proxy's choices).
fn no_endpoint_target(port: &ServicePort) -> (&'static str, &'static str) {
    if port.usable_endpoints(None).is_empty() {
        ("has no endpoints", "REJECT --reject-with icmp-port-unreachable")
    } else {
        ("has no local endpoints", "DROP")
    }
}

fn service_port_rules(port: &ServicePort, node: &ProxyNode, filter: &mut TableRules, nat: &mut TableRules) {
    let names = &node.chains;
    let display = port.display_name();
    let protocol = port.protocol.as_str();
    let cluster = port.usable_endpoints(None);
    let local = port.usable_endpoints(Some(&node.name));
    let svc = (!cluster.is_empty()).then(|| names.service_port("SVC", &display, protocol));
    let svl = (!local.is_empty() && (port.internal_local || port.external_local))
        .then(|| names.service_port("SVL", &display, protocol));
    if let Some(chain) = &svc {
        balance(port, chain, &cluster, names, nat);
    }
    if let Some(chain) = &svl {
        balance(port, chain, &local, names, nat);
    }
    let mut endpoints: Vec<&Endpoint> = cluster.clone();
    if svl.is_some() {
        endpoints.extend(local.iter().copied().filter(|e| !cluster.contains(e)));
    }
    for endpoint in endpoints {
        endpoint_rules(port, endpoint, names, nat);
    }

    // The cluster IP.
    let internal = if port.internal_local { &svl } else { &svc };
    let to_cluster_ip = format!("-d {}/32 {}", port.cluster_ip, port_match(port, port.port));
    match internal {
        Some(chain) => nat.rule(
            &names.services(),
            format!("{to_cluster_ip} -m comment --comment \"{display} cluster IP\" -j {chain}"),
        ),
        None => {
            let (why, target) = no_endpoint_target(port);
            filter.rule(
                &names.services(),
                format!("{to_cluster_ip} -m comment --comment \"{display} {why}\" -j {target}"),
            );
        }
    }

    // NodePort and external IPs: through the EXT chain whenever the Service has
    // endpoints somewhere, as kube-proxy does. Under the `Local` policy, traffic from
    // this node's pods and from the node itself is not "external" and may go to any
    // endpoint (the node's own is masqueraded, so the replies come back here); the
    // rest goes to this node's endpoints only, keeping the client's address, or,
    // with none here, falls through un-DNATed to the filter's DROP.
    if port.node_port.is_none() && port.external_ips.is_empty() {
        return;
    }
    let ext = names.service_port("EXT", display.as_str(), protocol);
    let external_target = if port.external_local { &svl } else { &svc };
    if let Some(svc) = &svc {
        nat.chain(&ext);
        if port.external_local {
            if let Some(bridge) = &node.pod_bridge {
                nat.rule(
                    &ext,
                    format!(
                        "-m comment --comment \"pod traffic for {display} external destinations\" -i {bridge} -j {svc}"
                    ),
                );
            }
            let local_source = "-m addrtype --src-type LOCAL";
            nat.rule(
                &ext,
                format!(
                    "-m comment --comment \"masquerade LOCAL traffic for {display} external destinations\" \
                     {local_source} -j MARK --or-mark {MASQUERADE_MARK}"
                ),
            );
            nat.rule(
                &ext,
                format!("-m comment --comment \"route LOCAL traffic for {display} external destinations\" {local_source} -j {svc}"),
            );
        } else {
            nat.rule(
                &ext,
                format!(
                    "-m comment --comment \"masquerade traffic for {display} external destinations\" \
                     -j MARK --or-mark {MASQUERADE_MARK}"
                ),
            );
        }
        if let Some(target) = external_target {
            nat.rule(&ext, format!("-j {target}"));
        }
        if let Some(node_port) = port.node_port {
            nat.rule(
                &names.node_ports(),
                format!(
                    "{} -m comment --comment \"{display}\" -j {ext}",
                    port_match(port, node_port)
                ),
            );
        }
        for ip in &port.external_ips {
            nat.rule(
                &names.services(),
                format!(
                    "-d {ip}/32 {} -m comment --comment \"{display} external IP\" -j {ext}",
                    port_match(port, port.port)
                ),
            );
        }
    }
    if external_target.is_some() {
        return;
    }
    // What reaches the node (INPUT) or passes through it (FORWARD) with nowhere to
    // go, in the chain filter hooks there (kube-proxy's KUBE-EXTERNAL-SERVICES).
    let (why, target) = no_endpoint_target(port);
    if let Some(node_port) = port.node_port {
        filter.rule(
            &names.node_ports(),
            format!(
                "-m addrtype --dst-type LOCAL {} -m comment --comment \"{display} {why}\" -j {target}",
                port_match(port, node_port)
            ),
        );
    }
    for ip in &port.external_ips {
        filter.rule(
            &names.node_ports(),
            format!(
                "-d {ip}/32 {} -m comment --comment \"{display} {why}\" -j {target}",
                port_match(port, port.port)
            ),
        );
    }
}

/// A service chain: with session affinity, a client seen recently goes back to its
/// endpoint; the others are spread at random, each endpoint taking 1/(n - i) of what
/// the ones before it left, so each gets 1/n.
fn balance(port: &ServicePort, chain: &str, endpoints: &[&Endpoint], names: &ChainNames, nat: &mut TableRules) {
    nat.chain(chain);
    let display = port.display_name();
    let protocol = port.protocol.as_str();
    if let Some(timeout_s) = port.affinity_timeout_s {
        for endpoint in endpoints {
            let sep = names.endpoint(&display, protocol, &endpoint.address());
            nat.rule(
                chain,
                format!(
                    "-m comment --comment \"{display} -> {}\" -m recent --name {sep} --rcheck --seconds {timeout_s} --reap -j {sep}",
                    endpoint.address()
                ),
            );
        }
    }
    let n = endpoints.len();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let sep = names.endpoint(&display, protocol, &endpoint.address());
        let comment = format!("-m comment --comment \"{display} -> {}\"", endpoint.address());
        if i + 1 < n {
            let probability = 1.0 / (n - i) as f64;
            nat.rule(
                chain,
                format!("{comment} -m statistic --mode random --probability {probability:.10} -j {sep}"),
            );
        } else {
            nat.rule(chain, format!("{comment} -j {sep}"));
        }
    }
}

/// An endpoint's chain: traffic from the endpoint to itself (hairpin) is
/// masqueraded, or the endpoint would answer itself directly and drop the reply
/// as unknown; then the DNAT, remembering the client for session affinity.
fn endpoint_rules(port: &ServicePort, endpoint: &Endpoint, names: &ChainNames, nat: &mut TableRules) {
    let display = port.display_name();
    let protocol = port.protocol.as_str();
    let address = endpoint.address();
    let sep = names.endpoint(&display, protocol, &address);
    nat.chain(&sep);
    let comment = format!("-m comment --comment \"{display}\"");
    nat.rule(
        &sep,
        format!("{comment} -s {}/32 -j MARK --or-mark {MASQUERADE_MARK}", endpoint.ip),
    );
    let affinity = if port.affinity_timeout_s.is_some() {
        format!(" -m recent --name {sep} --set --mask 255.255.255.255 --rsource")
    } else {
        String::new()
    };
    nat.rule(
        &sep,
        format!("{comment} -p {protocol}{affinity} -m {protocol} -j DNAT --to-destination {address}"),
    );
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
