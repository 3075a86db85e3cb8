//! The packet filter's rules, pure: the pod filters (model.rs) in, the chains of
//! the filter table out, each as its `iptables-restore` lines.
//!
//! ```text
//!  filter FORWARD ─► BERTH-NETPOL-<tag>: replies (ESTABLISHED,RELATED) return at once
//!                     ├─ -s <pod IP> ─► BERTH-NPE-<pod>: what it may send, else DROP
//!                     └─ -d <pod IP> ─► BERTH-NPI-<pod>: what it may receive, else DROP
//!  BERTH-NPI/NPE: each allowance RETURNs (allowed); an ipBlock with exceptions goes
//!                 through BERTH-NPB-<...>, which RETURNs for an exception and marks
//!                 the rest (0x10000), and a marked packet RETURNs
//! ```
//!
//! Every packet between pods, on one node's bridge (br_netfilter) or routed between
//! nodes, crosses FORWARD after the service proxy's DNAT, so traffic to a Service
//! is filtered as traffic to the pod it went to. Egress rules come before ingress
//! rules, so a packet between two pods of this node passes both checks. The host's
//! own traffic (probes, port-forward) leaves by OUTPUT and is never filtered, nor
//! is what pods send to the host (INPUT: the cluster DNS on the bridge's gateway).

use std::collections::BTreeMap;

use super::model::{Allow, Peer, PodFilter, Ports};
use crate::proxy::chains::{ChainOwner, hash32};

/// The mark an ipBlock's sub-chain gives an allowed packet.
pub const ALLOWED_MARK: &str = "0x10000";

/// The chain names of one agent's filter (tagged with its pod bridge's name, as
/// the service proxy's chains are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterChains {
    tag: String,
    code: String,
}

const PER_POD_PREFIXES: [&str; 3] = ["BERTH-NPI-", "BERTH-NPE-", "BERTH-NPB-"];

impl FilterChains {
    pub fn new(tag: &str) -> FilterChains {
        assert!(
            !tag.is_empty() && tag.len() <= 15,
            "a filter tag has 1 to 15 characters: {tag:?}"
        );
        FilterChains {
            tag: tag.to_string(),
            code: hash32(&["netpol", tag], 4),
        }
    }

    /// The chain FORWARD jumps to.
    pub fn main(&self) -> String {
        format!("BERTH-NETPOL-{}", self.tag)
    }

    /// A pod's chain; `kind` is "NPI" (ingress), "NPE" (egress) or "NPB" (an
    /// ipBlock's, then `key` says which).
    pub fn pod(&self, kind: &str, key: &[&str]) -> String {
        format!("BERTH-{kind}-{}{}", self.code, hash32(key, 12))
    }

    /// The rule that jumps from FORWARD into the filter.
    pub fn jump_spec(&self) -> String {
        format!("-m comment --comment \"berth network policies\" -j {}", self.main())
    }
}

impl ChainOwner for FilterChains {
    fn is_own(&self, chain: &str) -> bool {
        chain == self.main()
            || PER_POD_PREFIXES.iter().any(|prefix| {
                chain
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(&self.code))
            })
    }
}

/// Every chain of the filter and its rules (`-A ...` lines), the main chain first.
pub fn chains(filters: &[PodFilter], names: &FilterChains) -> BTreeMap<String, Vec<String>> {
    let main = names.main();
    let mut out = BTreeMap::new();
    let mut main_rules = vec![format!(
        "-A {main} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    )];
    let mut ingress_jumps = Vec::new();
    for filter in filters {
        let who = format!("{}/{}", filter.namespace, filter.name);
        let key = [filter.namespace.as_str(), filter.name.as_str(), &filter.ip.to_string()];
        if let Some(allowed) = &filter.egress {
            let chain = names.pod("NPE", &[&key[..], &["egress"]].concat());
            main_rules.push(format!(
                "-A {main} -s {}/32 -m comment --comment \"{who} egress\" -j {chain}",
                filter.ip
            ));
            pod_chain(&mut out, names, &chain, allowed, "-d", &who);
        }
        if let Some(allowed) = &filter.ingress {
            let chain = names.pod("NPI", &[&key[..], &["ingress"]].concat());
            ingress_jumps.push(format!(
                "-A {main} -d {}/32 -m comment --comment \"{who} ingress\" -j {chain}",
                filter.ip
            ));
            pod_chain(&mut out, names, &chain, allowed, "-s", &who);
        }
    }
    main_rules.extend(ingress_jumps);
    out.insert(main, main_rules);
    out
}

/// One pod's chain for one direction: `peer_flag` is `-s` (ingress: the sender) or
/// `-d` (egress: the receiver).
fn pod_chain(
    out: &mut BTreeMap<String, Vec<String>>,
    names: &FilterChains,
    chain: &str,
    allowed: &std::collections::BTreeSet<Allow>,
    peer_flag: &str,
    who: &str,
) {
    let mut rules = Vec::new();
    let mut marks = false;
    for (i, allow) in allowed.iter().enumerate() {
        let ports = ports_matches(allow.ports);
        match &allow.peer {
            Peer::Any => rules.push(format!("-A {chain}{ports} -j RETURN")),
            Peer::Ip(ip) => rules.push(format!("-A {chain} {peer_flag} {ip}/32{ports} -j RETURN")),
            Peer::Block { cidr, except } if except.is_empty() => {
                rules.push(format!("-A {chain} {peer_flag} {cidr}{ports} -j RETURN"))
            }
            Peer::Block { cidr, except } => {
                if !marks {
                    rules.insert(0, format!("-A {chain} -j MARK --set-xmark 0x0/{ALLOWED_MARK}"));
                    marks = true;
                }
                let block = names.pod("NPB", &[chain, &i.to_string()]);
                rules.push(format!("-A {chain} {peer_flag} {cidr}{ports} -j {block}"));
                rules.push(format!(
                    "-A {chain} -m mark --mark {ALLOWED_MARK}/{ALLOWED_MARK} -j RETURN"
                ));
                let mut block_rules: Vec<String> = except
                    .iter()
                    .map(|e| format!("-A {block} {peer_flag} {e} -j RETURN"))
                    .collect();
                block_rules.push(format!("-A {block} -j MARK --set-xmark {ALLOWED_MARK}/{ALLOWED_MARK}"));
                out.insert(block, block_rules);
            }
        }
    }
    rules.push(format!(
        "-A {chain} -m comment --comment \"{who}: not allowed by a network policy\" -j DROP"
    ));
    out.insert(chain.to_string(), rules);
}

/// ` -p tcp --dport 80:90`, or nothing for every port.
fn ports_matches(ports: Ports) -> String {
    match ports {
        Ports::All => String::new(),
        Ports::Protocol(p) => format!(" -p {}", p.as_str()),
        Ports::Range(p, first, last) if first == last => format!(" -p {} --dport {first}", p.as_str()),
        Ports::Range(p, first, last) => format!(" -p {} --dport {first}:{last}", p.as_str()),
    }
}

/// The `iptables-restore --noflush` input that makes the filter table's chains of
/// the filter `wanted`: each wanted chain declared (which flushes it) and filled,
/// the `stale` ones (found before, wanted no more) flushed and deleted, the jump
/// from FORWARD inserted first when `add_jump`. Nothing else is touched.
pub fn restore_input(wanted: &BTreeMap<String, Vec<String>>, stale: &[String], add_jump: Option<String>) -> String {
    let mut input = String::from("*filter\n");
    for chain in wanted.keys().chain(stale) {
        input.push_str(&format!(":{chain} - [0:0]\n"));
    }
    for rules in wanted.values() {
        for rule in rules {
            input.push_str(rule);
            input.push('\n');
        }
    }
    if let Some(jump) = add_jump {
        input.push_str(&format!("-I FORWARD 1 {jump}\n"));
    }
    for chain in stale {
        input.push_str(&format!("-X {chain}\n"));
    }
    input.push_str("COMMIT\n");
    input
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
