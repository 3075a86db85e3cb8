//! What the packet filter must let through, pure: the cluster's pods, namespaces and
//! NetworkPolicies in, for each pod of this node that some policy isolates, the
//! traffic it accepts (ingress) and sends (egress) out. rules.rs writes these.
//!
//! Kubernetes' semantics: a pod selected by a policy whose `policyTypes` has
//! `Ingress` (`Egress`) is isolated that way, and accepts (sends) only what one of
//! those policies' rules allows; a rule allows its peers on its ports (no peers:
//! every source; no ports: every port); a pod selected by none is open. Peers
//! resolve to the pods' IPs across the cluster: `podSelector` alone in the policy's
//! namespace, `namespaceSelector` alone all pods of the namespaces it selects, both
//! the selected pods of the selected namespaces; `ipBlock` is a CIDR less its
//! exceptions. A named port resolves against the containers of the pod that
//! receives the traffic: this pod for ingress, each destination pod for egress.
//!
//! A namespace labelled [`ISOLATION_LABEL`]`: namespace` isolates its pods'
//! ingress as an implied policy would that allows the namespace's own pods: what its
//! NetworkPolicies allow comes on top. Traffic from the node itself never passes the
//! filter (it leaves by the host's OUTPUT chain), so probes keep working.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use berth_api::cidr::Ipv4Cidr;
use berth_api::kinds::network_policy::{
    EGRESS, INGRESS, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, applies_to,
};
use berth_api::meta::selector_matches;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::proxy::model::Protocol;

pub use berth_api::kinds::network_policy::{ISOLATE_NAMESPACE, ISOLATION_LABEL};

/// A pod as the filter sees it: one with an address of its own on the pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    /// Its containers' named ports: (name, protocol) ─► number.
    pub named_ports: BTreeMap<(String, Protocol), u16>,
}

impl PodView {
    /// The pod, if it has an address of its own (not the host's network) and is
    /// not finished.
    pub fn of(pod: &Pod) -> Option<PodView> {
        let spec = pod.spec.as_ref()?;
        let status = pod.status.as_ref()?;
        if spec.host_network == Some(true) || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let ip: Ipv4Addr = status.pod_ip.as_deref()?.parse().ok()?;
        if status.host_ip.as_deref().and_then(|h| h.parse::<Ipv4Addr>().ok()) == Some(ip) {
            return None;
        }
        let mut named_ports = BTreeMap::new();
        for port in spec.containers.iter().flat_map(|c| c.ports.iter().flatten()) {
            let (Some(name), Some(protocol)) = (&port.name, Protocol::parse(port.protocol.as_deref())) else {
                continue;
            };
            if let Ok(number) = u16::try_from(port.container_port) {
                named_ports.entry((name.clone(), protocol)).or_insert(number);
            }
        }
        Some(PodView {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            node: spec.node_name.clone()?,
            ip,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            named_ports,
        })
    }
}

/// The addresses a rule speaks of: the other end of the traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Any,
    Ip(Ipv4Addr),
    /// A CIDR less its exceptions.
    Block {
        cidr: Ipv4Cidr,
        except: Vec<Ipv4Cidr>,
    },
}

/// The destination ports a rule speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ports {
    All,
    /// Every port of one protocol.
    Protocol(Protocol),
    /// `first..=last` of one protocol.
    Range(Protocol, u16, u16),
}

/// One kind of traffic let through.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allow {
    pub peer: Peer,
    pub ports: Ports,
}

/// The filter of one pod of this node that something isolates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFilter {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    /// None: ingress is open; else only these pass (empty: nothing).
    pub ingress: Option<BTreeSet<Allow>>,
    /// None: egress is open; else only these pass.
    pub egress: Option<BTreeSet<Allow>>,
}

/// The filters of the pods on `node`, sorted by namespace and name; pods nothing
/// isolates are left out.
pub fn pod_filters(node: &str, pods: &[Pod], namespaces: &[Namespace], policies: &[NetworkPolicy]) -> Vec<PodFilter> {
    let views: Vec<PodView> = pods.iter().filter_map(PodView::of).collect();
    let ns_labels: BTreeMap<&str, BTreeMap<String, String>> = namespaces
        .iter()
        .filter_map(|ns| {
            let name = ns.metadata.name.as_deref()?;
            Some((name, ns.metadata.labels.clone().unwrap_or_default()))
        })
        .collect();
    let mut filters = Vec::new();
    for pod in views.iter().filter(|p| p.node == node) {
        let mut ingress: Option<BTreeSet<Allow>> = None;
        let mut egress: Option<BTreeSet<Allow>> = None;
        let isolated = ns_labels
            .get(pod.namespace.as_str())
            .and_then(|labels| labels.get(ISOLATION_LABEL))
            .is_some_and(|v| v == ISOLATE_NAMESPACE);
        if isolated {
            let same = views.iter().filter(|p| p.namespace == pod.namespace);
            ingress.get_or_insert_with(BTreeSet::new).extend(same.map(|p| Allow {
                peer: Peer::Ip(p.ip),
                ports: Ports::All,
            }));
        }
        for policy in policies {
            let Some(spec) = &policy.spec else { continue };
            let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
            let selector = spec.pod_selector.clone().unwrap_or_default();
            if namespace != pod.namespace || !selector_matches(&selector, &pod.labels) {
                continue;
            }
            let scope = Scope {
                namespace,
                pods: &views,
                ns_labels: &ns_labels,
            };
            if applies_to(spec, INGRESS) {
                let allowed = ingress.get_or_insert_with(BTreeSet::new);
                for rule in spec.ingress.iter().flatten() {
                    for peer in scope.peers(rule.from.as_deref()) {
                        for port in port_list(rule.ports.as_deref()) {
                            if let Some(ports) = resolve(port, pod) {
                                allowed.insert(Allow {
                                    peer: peer.clone(),
                                    ports,
                                });
                            }
                        }
                    }
                }
            }
            if applies_to(spec, EGRESS) {
                let allowed = egress.get_or_insert_with(BTreeSet::new);
                for rule in spec.egress.iter().flatten() {
                    for peer in scope.peers(rule.to.as_deref()) {
                        for port in port_list(rule.ports.as_deref()) {
                            allowed.extend(egress_allows(&peer, port, &views));
                        }
                    }
                }
            }
        }
        if ingress.is_some() || egress.is_some() {
            filters.push(PodFilter {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                ip: pod.ip,
                ingress,
                egress,
            });
        }
    }
    filters.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    filters
}

/// What a policy's peers are read against.
struct Scope<'a> {
    namespace: &'a str,
    pods: &'a [PodView],
    ns_labels: &'a BTreeMap<&'a str, BTreeMap<String, String>>,
}

impl Scope<'_> {
    /// The peers of a rule's `from`/`to` (none listed: any address).
    fn peers(&self, peers: Option<&[NetworkPolicyPeer]>) -> Vec<Peer> {
        let peers = peers.unwrap_or_default();
        if peers.is_empty() {
            return vec![Peer::Any];
        }
        let mut out = BTreeSet::new();
        for peer in peers {
            if let Some(block) = &peer.ip_block {
                // An IPv6 block never matches this IPv4-only network's traffic.
                let Ok(cidr) = sloppy_cidr(&block.cidr) else { continue };
                let except = block
                    .except
                    .iter()
                    .flatten()
                    .filter_map(|e| sloppy_cidr(e).ok())
                    .collect();
                out.insert(Peer::Block { cidr, except });
                continue;
            }
            if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
                continue;
            }
            for pod in self.pods {
                let in_namespace = match &peer.namespace_selector {
                    None => pod.namespace == self.namespace,
                    Some(selector) => self
                        .ns_labels
                        .get(pod.namespace.as_str())
                        .is_some_and(|labels| selector_matches(selector, labels)),
                };
                let selected = peer
                    .pod_selector
                    .as_ref()
                    .is_none_or(|selector| selector_matches(selector, &pod.labels));
                if in_namespace && selected {
                    out.insert(Peer::Ip(pod.ip));
                }
            }
        }
        out.into_iter().collect()
    }
}

/// `a.b.c.d/n` with host bits allowed, as Kubernetes reads an ipBlock.
fn sloppy_cidr(text: &str) -> Result<Ipv4Cidr, ()> {
    let (address, len) = text.split_once('/').ok_or(())?;
    Ipv4Cidr::new(address.parse().map_err(drop)?, len.parse().map_err(drop)?).map_err(drop)
}

/// A rule's ports (none listed: one entry meaning every port).
fn port_list(ports: Option<&[NetworkPolicyPort]>) -> Vec<Option<&NetworkPolicyPort>> {
    match ports {
        Some(ports) if !ports.is_empty() => ports.iter().map(Some).collect(),
        _ => vec![None],
    }
}

/// A port entry as it applies to traffic received by `target`; None when it names
/// a port `target` does not have (or a protocol berth does not know).
fn resolve(port: Option<&NetworkPolicyPort>, target: &PodView) -> Option<Ports> {
    let Some(port) = port else { return Some(Ports::All) };
    let protocol = Protocol::parse(port.protocol.as_deref())?;
    match &port.port {
        None => Some(Ports::Protocol(protocol)),
        Some(IntOrString::Int(number)) => {
            let first = u16::try_from(*number).ok()?;
            let last = port.end_port.and_then(|e| u16::try_from(e).ok()).unwrap_or(first);
            Some(Ports::Range(protocol, first, last.max(first)))
        }
        Some(IntOrString::String(name)) => {
            let number = *target.named_ports.get(&(name.clone(), protocol))?;
            Some(Ports::Range(protocol, number, number))
        }
    }
}

/// What an egress rule's peer and port allow: a named port is resolved against
/// each destination pod the peer covers, so it becomes one allowance per pod.
fn egress_allows(peer: &Peer, port: Option<&NetworkPolicyPort>, pods: &[PodView]) -> Vec<Allow> {
    let named = matches!(port.and_then(|p| p.port.as_ref()), Some(IntOrString::String(_)));
    if !named {
        // A numbered port (or none) reads the same whatever the destination.
        return resolve(port, &no_named_ports())
            .map(|ports| Allow {
                peer: peer.clone(),
                ports,
            })
            .into_iter()
            .collect();
    }
    pods.iter()
        .filter(|pod| covers(peer, pod.ip))
        .filter_map(|pod| {
            Some(Allow {
                peer: Peer::Ip(pod.ip),
                ports: resolve(port, pod)?,
            })
        })
        .collect()
}

/// A pod with no named ports, for resolving the ports that name none.
fn no_named_ports() -> PodView {
    PodView {
        namespace: String::new(),
        name: String::new(),
        node: String::new(),
        ip: Ipv4Addr::UNSPECIFIED,
        labels: BTreeMap::new(),
        named_ports: BTreeMap::new(),
    }
}

/// Whether `peer` covers the address.
pub fn covers(peer: &Peer, ip: Ipv4Addr) -> bool {
    match peer {
        Peer::Any => true,
        Peer::Ip(own) => *own == ip,
        Peer::Block { cidr, except } => cidr.contains(ip) && !except.iter().any(|e| e.contains(ip)),
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
