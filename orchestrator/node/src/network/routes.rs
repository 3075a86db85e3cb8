//! Routes between nodes: every agent keeps, in its node's routing table, one route
//! per other node, `<that node's podCIDR> via <its InternalIP>`, so a pod reaches a
//! pod on another node by its IP (the "host-gateway" model: the nodes share a link,
//! as flannel's host-gw backend assumes). The same watch of the Nodes tells the agent
//! its own pod CIDR, which the bridge's addresses come from. Traffic to those blocks
//! keeps the pod's source address (no_masquerade.rs).
//!
//! ```text
//!  reflector over the Nodes ─► desired routes (pure) ─┐
//!  `ip route show proto 66` ─► current routes ────────┴─► diff (pure) ─► ip route replace / del
//! ```
//!
//! Berth's routes carry their own protocol number (66, unnamed in iproute2's
//! rt_protos), so the agent changes only what it made and finds it again after a
//! restart; a route someone removes is put back at the next pass (on every Node
//! change, and every [`RESYNC`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::cidr::Ipv4Cidr;
use berth_api::kinds::node::NODE;
use berth_api::kinds::node::node_internal_ip;
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, NodeSpec};
use berth_client::api_source::Source;
use berth_client::kv::{Event, Record};
use berth_client::reflector::Sink;
use berth_client::registry::decode;
use tokio::sync::watch;

use super::cni_network::PodCidr;
use super::{netns, no_masquerade};

/// The `proto` of berth's routes.
pub const ROUTE_PROTOCOL: &str = "66";
/// How often the routes are checked even when no Node changed.
pub const RESYNC: Duration = Duration::from_secs(30);

/// The other nodes' blocks: every other node's pod CIDR that does not overlap this
/// node's own. Pods here reach them without NAT ([`no_masquerade`]).
pub fn peer_blocks<'a>(nodes: impl IntoIterator<Item = &'a Node>, me: &str) -> BTreeMap<Ipv4Cidr, &'a Node> {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let own = own_pod_cidr(nodes.iter().copied(), me);
    nodes
        .into_iter()
        .filter(|node| node.metadata.name() != me && !node.metadata.is_deleting())
        .filter_map(|node| Some((node.spec.pod_cidr.as_deref()?.parse().ok()?, node)))
        .filter(|(cidr, _)| !own.is_some_and(|own| own.overlaps(cidr)))
        .collect()
}

/// The routes the node should have: each peer block via its node's InternalIP.
/// Skipped: nodes without one, and nodes at this node's own address or a loopback
/// one (agents sharing one host, as `berth up` runs them, share its network
/// namespace: their bridges are all local, there is no other host to route to).
pub fn desired_routes<'a>(nodes: impl IntoIterator<Item = &'a Node>, me: &str) -> BTreeMap<Ipv4Cidr, Ipv4Addr> {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let own_ip: Option<Ipv4Addr> = nodes
        .iter()
        .find(|node| node.metadata.name() == me)
        .and_then(|node| node_internal_ip(node).parse().ok());
    peer_blocks(nodes, me)
        .into_iter()
        .filter_map(|(cidr, node)| Some((cidr, node_internal_ip(node).parse::<Ipv4Addr>().ok()?)))
        .filter(|(_, via)| !via.is_loopback() && Some(*via) != own_ip)
        .collect()
}

/// This node's pod CIDR, from its Node.
pub fn own_pod_cidr<'a>(nodes: impl IntoIterator<Item = &'a Node>, me: &str) -> Option<Ipv4Cidr> {
    nodes
        .into_iter()
        .find(|node| node.metadata.name() == me)?
        .spec
        .pod_cidr
        .as_deref()?
        .parse()
        .ok()
}

/// What to change to go from `current` to `desired`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RouteChanges {
    /// Routes to add or to point elsewhere (`ip route replace`).
    pub replace: Vec<(Ipv4Cidr, Ipv4Addr)>,
    /// Routes of ours that no node needs any more.
    pub remove: Vec<Ipv4Cidr>,
}

impl RouteChanges {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.remove.is_empty()
    }
}

/// The changes, pure.
pub fn diff(desired: &BTreeMap<Ipv4Cidr, Ipv4Addr>, current: &BTreeMap<Ipv4Cidr, Ipv4Addr>) -> RouteChanges {
    RouteChanges {
        replace: desired
            .iter()
            .filter(|(cidr, via)| current.get(cidr) != Some(via))
            .map(|(cidr, via)| (*cidr, *via))
            .collect(),
        remove: current
            .keys()
            .filter(|cidr| !desired.contains_key(cidr))
            .copied()
            .collect(),
    }
}

/// Reads `ip -j route show proto 66`'s answer: destination and gateway of each route.
pub fn parse_routes(json: &str) -> BTreeMap<Ipv4Cidr, Ipv4Addr> {
    let routes: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    routes
        .iter()
        .filter_map(|route| {
            let dst = route["dst"].as_str()?;
            // A /32 is printed without its length.
            let cidr = if dst.contains('/') {
                dst.parse().ok()?
            } else {
                Ipv4Cidr::new(dst.parse().ok()?, 32).ok()?
            };
            Some((cidr, route["gateway"].as_str()?.parse().ok()?))
        })
        .collect()
}

/// The routes of this node, kept by [`NodeRoutes::run`].
#[derive(Debug, Clone)]
pub struct NodeRoutes {
    pub node_name: String,
    /// The node's network namespace when the agent is not in it (tests).
    pub host_netns: Option<PathBuf>,
    /// Where the node's own pod CIDR goes (the pod network's).
    pub pod_cidr: Option<PodCidr>,
    /// The pods' bridge (names the masquerade exemption's chain).
    pub bridge: String,
}

impl NodeRoutes {
    /// The routes of the node whose pods `network` connects (its host namespace, its
    /// bridge, and the pod CIDR it takes from the Node).
    pub fn for_network(node_name: &str, network: &super::CniNetwork) -> NodeRoutes {
        NodeRoutes {
            node_name: node_name.to_string(),
            host_netns: network.settings().host_netns.clone(),
            pod_cidr: Some(network.pod_cidr()),
            bridge: network.settings().bridge.clone(),
        }
    }

    /// The routes berth keeps in the node's table now.
    pub fn current(&self) -> std::io::Result<BTreeMap<Ipv4Cidr, Ipv4Addr>> {
        let out = netns::run_in(
            self.host_netns.as_deref(),
            "ip",
            &["-4", "-j", "route", "show", "proto", ROUTE_PROTOCOL],
        )?;
        Ok(parse_routes(&out))
    }

    /// Makes the node's table hold `desired` (berth's routes only), and traffic from
    /// `own` to the `peers` skip the pods' masquerade ([`no_masquerade`]); blocking.
    /// A route that cannot be set does not hold the others back: the first error is
    /// returned once everything else was tried.
    pub fn apply(
        &self,
        desired: &BTreeMap<Ipv4Cidr, Ipv4Addr>,
        own: Option<Ipv4Cidr>,
        peers: &[Ipv4Cidr],
    ) -> std::io::Result<RouteChanges> {
        let changes = diff(desired, &self.current()?);
        let host = self.host_netns.as_deref();
        let mut first_error = None;
        for (cidr, via) in &changes.replace {
            let (cidr, via) = (cidr.to_string(), via.to_string());
            let args = ["route", "replace", &cidr, "via", &via, "proto", ROUTE_PROTOCOL];
            if let Err(e) = netns::run_in(host, "ip", &args) {
                first_error.get_or_insert(e);
            }
        }
        for cidr in &changes.remove {
            let cidr = cidr.to_string();
            if let Err(e) = netns::run_in(host, "ip", &["route", "del", &cidr, "proto", ROUTE_PROTOCOL]) {
                first_error.get_or_insert(e);
            }
        }
        let chain = no_masquerade::chain_name(&self.bridge);
        if let Err(e) = no_masquerade::sync(host, &chain, own, peers.iter().copied()) {
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(changes),
        }
    }

    /// Watches the Nodes and keeps the routes (and the node's pod CIDR) current,
    /// forever; the agent aborts it when it stops.
    pub async fn run(self, source: impl Into<Source>) {
        let (changed_tx, mut changed) = watch::channel(());
        let nodes = Arc::new(Nodes {
            nodes: Mutex::default(),
            changed: changed_tx,
        });
        let reflector = tokio::spawn(source.into().reflect(&NODE, None, nodes.clone()));
        let _stop_reflector = berth_client::kv::AbortOnDrop(reflector);
        // Nothing is known before the first list: removing routes then would cut
        // pods off for no reason.
        if changed.changed().await.is_err() {
            return;
        }
        let this = Arc::new(self);
        loop {
            let snapshot: Vec<Node> = nodes.nodes.lock().expect("nodes lock").values().cloned().collect();
            let own = own_pod_cidr(&snapshot, &this.node_name);
            if let Some(pod_cidr) = &this.pod_cidr {
                pod_cidr.send_if_modified(|current| {
                    let changed = *current != own;
                    *current = own;
                    changed
                });
            }
            let desired = desired_routes(&snapshot, &this.node_name);
            let peers: Vec<Ipv4Cidr> = peer_blocks(&snapshot, &this.node_name).into_keys().collect();
            let routes = this.clone();
            match tokio::task::spawn_blocking(move || routes.apply(&desired, own, &peers)).await {
                Ok(Ok(changes)) if !changes.is_empty() => {
                    tracing::info!(node = %this.node_name, ?changes, "routes to other nodes' pods changed");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(node = %this.node_name, error = %e, "cannot set the routes to other nodes' pods")
                }
                Err(e) => tracing::warn!(error = %e, "the route update failed"),
            }
            tokio::select! {
                changed = changed.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RESYNC) => {}
            }
        }
    }
}

/// The Nodes, as the reflector last saw them.
struct Nodes {
    nodes: Mutex<BTreeMap<String, Node>>,
    changed: watch::Sender<()>,
}

impl Nodes {
    fn put(nodes: &mut BTreeMap<String, Node>, record: &Record) {
        match decode::<NodeSpec>(record) {
            Ok(node) => {
                nodes.insert(record.key.clone(), node);
            }
            Err(e) => tracing::warn!(error = %e, "skipping a node that does not decode"),
        }
    }
}

impl Sink for Nodes {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut nodes = self.nodes.lock().expect("nodes lock");
        nodes.clear();
        for record in &records {
            Self::put(&mut nodes, record);
        }
        self.changed.send_replace(());
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut nodes = self.nodes.lock().expect("nodes lock");
        for event in &events {
            match event {
                Event::Put(record) => Self::put(&mut nodes, record),
                Event::Delete { prev, .. } => {
                    nodes.remove(&prev.key);
                }
            }
        }
        self.changed.send_replace(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::meta::ObjectMeta;
    use berth_api::objects::{NodeAddress, Resource};

    fn node(name: &str, pod_cidr: Option<&str>, ip: &str) -> Node {
        let mut node = Resource::new(
            ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            NodeSpec::default(),
        );
        node.spec.pod_cidr = pod_cidr.map(String::from);
        node.status.addresses = Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            address: ip.into(),
        }]);
        node
    }

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn each_other_node_with_a_block_and_an_address_is_routed_to() {
        let nodes = [
            node("me", Some("10.244.0.0/24"), "192.168.1.1"),
            node("b", Some("10.244.1.0/24"), "192.168.1.2"),
            node("no-cidr", None, "192.168.1.3"),
            node("no-ip", Some("10.244.3.0/24"), "not-an-ip"),
            node("clash", Some("10.244.0.0/25"), "192.168.1.5"),
            node("same-host", Some("10.244.6.0/24"), "192.168.1.1"),
            node("loopback", Some("10.244.7.0/24"), "127.0.0.1"),
        ];
        assert_eq!(own_pod_cidr(&nodes, "me"), Some(cidr("10.244.0.0/24")));
        assert_eq!(
            desired_routes(&nodes, "me"),
            BTreeMap::from([(cidr("10.244.1.0/24"), ip("192.168.1.2"))])
        );
        let peers: Vec<Ipv4Cidr> = peer_blocks(&nodes, "me").into_keys().collect();
        assert_eq!(
            peers,
            [
                cidr("10.244.1.0/24"),
                cidr("10.244.3.0/24"),
                cidr("10.244.6.0/24"),
                cidr("10.244.7.0/24")
            ],
            "pods on the same host are peers too, routed or not"
        );
    }

    #[test]
    fn the_diff_adds_repoints_and_removes_only_what_differs() {
        let desired = BTreeMap::from([
            (cidr("10.244.1.0/24"), ip("192.168.1.2")),
            (cidr("10.244.2.0/24"), ip("192.168.1.9")),
            (cidr("10.244.4.0/24"), ip("192.168.1.4")),
        ]);
        let current = BTreeMap::from([
            (cidr("10.244.1.0/24"), ip("192.168.1.2")),
            (cidr("10.244.2.0/24"), ip("192.168.1.3")),
            (cidr("10.244.3.0/24"), ip("192.168.1.3")),
        ]);
        assert_eq!(
            diff(&desired, &current),
            RouteChanges {
                replace: vec![
                    (cidr("10.244.2.0/24"), ip("192.168.1.9")),
                    (cidr("10.244.4.0/24"), ip("192.168.1.4"))
                ],
                remove: vec![cidr("10.244.3.0/24")],
            }
        );
        assert!(diff(&desired, &desired).is_empty());
    }

    #[test]
    fn ip_json_routes_are_read_with_their_gateways() {
        let json = r#"[{"dst":"10.244.1.0/24","gateway":"192.168.1.2","dev":"eth0","protocol":"66","flags":[]},
                       {"dst":"10.9.9.9","gateway":"192.168.1.7","dev":"eth0","protocol":"66","flags":[]},
                       {"dst":"10.244.5.0/24","dev":"berth0","protocol":"66","flags":[]}]"#;
        assert_eq!(
            parse_routes(json),
            BTreeMap::from([
                (cidr("10.244.1.0/24"), ip("192.168.1.2")),
                (cidr("10.9.9.9/32"), ip("192.168.1.7")),
            ])
        );
        assert!(parse_routes("").is_empty());
    }
}
