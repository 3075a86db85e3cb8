use serde_json::{Value, json};

use super::*;

fn pod(namespace: &str, name: &str, node: &str, ip: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080},
            {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "192.168.1.1"}
    }))
    .unwrap()
}

fn namespace(name: &str, labels: Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

fn policy(namespace: &str, spec: Value) -> NetworkPolicy {
    let mut policy: NetworkPolicy =
        serde_json::from_value(json!({"metadata": {"namespace": namespace, "name": "p"}, "spec": spec})).unwrap();
    berth_api::kinds::network_policy::default_policy(&mut policy);
    policy
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn allow(peer: &str, ports: Ports) -> Allow {
    let peer = match peer {
        "any" => Peer::Any,
        ip => Peer::Ip(ip.parse().unwrap()),
    };
    Allow { peer, ports }
}

fn tcp(first: u16, last: u16) -> Ports {
    Ports::Range(Protocol::Tcp, first, last)
}

/// web (10.0.0.2, node a) and client (10.0.1.2, node b) in `shop`; other
/// (10.0.0.3, node a) and tool (10.0.1.3, node b) in `ops`, labelled team=ops.
fn cluster() -> (Vec<Pod>, Vec<Namespace>) {
    let mut finished = pod("shop", "done", "b", "10.0.1.9", json!({"role": "client"}));
    finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut host = pod("shop", "host", "b", "192.168.1.2", json!({"role": "client"}));
    host.spec.as_mut().unwrap().host_network = Some(true);
    (
        vec![
            pod("shop", "web", "a", "10.0.0.2", json!({"app": "web"})),
            pod("shop", "client", "b", "10.0.1.2", json!({"role": "client"})),
            pod("ops", "other", "a", "10.0.0.3", json!({"role": "client"})),
            pod("ops", "tool", "b", "10.0.1.3", json!({"app": "tool"})),
            finished,
            host,
        ],
        vec![
            namespace("shop", json!({"kubernetes.io/metadata.name": "shop"})),
            namespace("ops", json!({"team": "ops"})),
        ],
    )
}

fn ingress_of(filters: &[PodFilter], name: &str) -> Option<Vec<Allow>> {
    let filter = filters.iter().find(|f| f.name == name)?;
    filter.ingress.as_ref().map(|a| a.iter().cloned().collect())
}

#[test]
fn pods_no_policy_selects_are_open_and_deny_all_closes_the_selected() {
    let (pods, namespaces) = cluster();
    assert_eq!(pod_filters("a", &pods, &namespaces, &[]), []);
    let deny = policy("shop", json!({"podSelector": {}}));
    let filters = pod_filters("a", &pods, &namespaces, std::slice::from_ref(&deny));
    // Only this node's pods of the policy's namespace: `other` (ops) stays open.
    assert_eq!(
        filters,
        [PodFilter {
            namespace: "shop".into(),
            name: "web".into(),
            ip: ip("10.0.0.2"),
            ingress: Some(BTreeSet::new()),
            egress: None,
        }]
    );
    // Node b's shop pod is filtered by node b; the finished and host-network pods are not.
    let on_b = pod_filters("b", &pods, &namespaces, &[deny]);
    assert_eq!(on_b.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["client"]);
}

#[test]
fn selectors_resolve_to_pod_ips_across_nodes_and_namespaces() {
    let (pods, namespaces) = cluster();
    let from = |peers: Value| {
        let p = policy(
            "shop",
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": peers}]}),
        );
        ingress_of(&pod_filters("a", &pods, &namespaces, &[p]), "web").unwrap()
    };
    let role_client = json!({"matchLabels": {"role": "client"}});
    // A pod selector alone: the policy's namespace only (not ops' client, not the
    // finished or host-network pods that carry the label too).
    assert_eq!(
        from(json!([{"podSelector": role_client}])),
        [allow("10.0.1.2", Ports::All)]
    );
    // A namespace selector alone: every pod of the selected namespaces.
    assert_eq!(
        from(json!([{"namespaceSelector": {"matchLabels": {"team": "ops"}}}])),
        [allow("10.0.0.3", Ports::All), allow("10.0.1.3", Ports::All)]
    );
    // Both in one peer: the selected pods of the selected namespaces.
    assert_eq!(
        from(json!([{"namespaceSelector": {}, "podSelector": role_client}])),
        [allow("10.0.0.3", Ports::All), allow("10.0.1.2", Ports::All)]
    );
    // A rule without peers allows every source.
    assert_eq!(from(json!([])), [allow("any", Ports::All)]);
}

#[test]
fn ports_numbers_ranges_protocols_and_named_ports() {
    let (pods, namespaces) = cluster();
    let p = policy(
        "shop",
        json!({"podSelector": {}, "ingress": [{"ports": [
            {"port": 80}, {"port": 9000, "endPort": 9010}, {"protocol": "UDP"},
            {"port": "http"}, {"port": "dns", "protocol": "UDP"}, {"port": "dns"}, {"port": "nothing"}]}]}),
    );
    let ingress = ingress_of(&pod_filters("a", &pods, &namespaces, &[p]), "web").unwrap();
    // `dns` over TCP and `nothing` name no port of the pod: they allow nothing.
    assert_eq!(
        ingress,
        [
            allow("any", Ports::Protocol(Protocol::Udp)),
            allow("any", tcp(80, 80)),
            allow("any", tcp(8080, 8080)),
            allow("any", tcp(9000, 9010)),
            allow("any", Ports::Range(Protocol::Udp, 5353, 5353)),
        ]
    );
}

#[test]
fn egress_resolves_named_ports_per_destination_and_keeps_block_exceptions() {
    let (mut pods, namespaces) = cluster();
    // The tool serves `http` on another port than the others.
    let tool = pods
        .iter_mut()
        .find(|p| p.metadata.name.as_deref() == Some("tool"))
        .unwrap();
    tool.spec.as_mut().unwrap().containers[0].ports.as_mut().unwrap()[0].container_port = 9090;
    let p = policy(
        "shop",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "egress": [
            {"to": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}], "ports": [{"port": "http"}]},
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}], "ports": [{"port": 53, "protocol": "UDP"}]}]}),
    );
    assert_eq!(
        p.spec.as_ref().unwrap().policy_types.as_deref().unwrap(),
        ["Ingress", "Egress"]
    );
    let filters = pod_filters("a", &pods, &namespaces, &[p]);
    let web = filters.iter().find(|f| f.name == "web").unwrap();
    let block = Peer::Block {
        cidr: "10.0.0.0/16".parse().unwrap(),
        except: vec!["10.0.1.0/24".parse().unwrap()],
    };
    assert_eq!(
        web.egress.iter().flatten().cloned().collect::<Vec<_>>(),
        [
            allow("10.0.0.3", tcp(8080, 8080)),
            allow("10.0.1.3", tcp(9090, 9090)),
            Allow {
                peer: block.clone(),
                ports: Ports::Range(Protocol::Udp, 53, 53)
            },
        ]
    );
    // No ingress rules but `Ingress` among the types: nothing gets in.
    assert_eq!(web.ingress, Some(BTreeSet::new()));
    assert!(covers(&block, ip("10.0.0.3")) && !covers(&block, ip("10.0.1.3")) && !covers(&block, ip("10.1.0.1")));
}

#[test]
fn an_egress_only_policy_leaves_ingress_open() {
    let (pods, namespaces) = cluster();
    let p = policy("shop", json!({"podSelector": {}, "policyTypes": ["Egress"]}));
    let filters = pod_filters("a", &pods, &namespaces, &[p]);
    assert_eq!(filters.len(), 1);
    assert_eq!(
        (&filters[0].ingress, &filters[0].egress),
        (&None, &Some(BTreeSet::new()))
    );
}

#[test]
fn isolated_namespaces_admit_their_own_pods_and_what_their_policies_allow() {
    let (pods, mut namespaces) = cluster();
    namespaces[0] = namespace("shop", json!({ISOLATION_LABEL: ISOLATE_NAMESPACE}));
    let filters = pod_filters("a", &pods, &namespaces, &[]);
    // shop's web admits shop's pods (on any node); ops' pod stays open.
    assert_eq!(
        ingress_of(&filters, "web").unwrap(),
        [allow("10.0.0.2", Ports::All), allow("10.0.1.2", Ports::All)]
    );
    assert_eq!(filters.len(), 1);
    let from_ops = policy(
        "shop",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}],
               "ports": [{"port": 80}]}]}),
    );
    let filters = pod_filters("a", &pods, &namespaces, &[from_ops]);
    assert_eq!(
        ingress_of(&filters, "web").unwrap(),
        [
            allow("10.0.0.2", Ports::All),
            allow("10.0.0.3", tcp(80, 80)),
            allow("10.0.1.2", Ports::All),
            allow("10.0.1.3", tcp(80, 80)),
        ]
    );
    // Opting out (`none`) or removing the label opens the namespace again.
    namespaces[0] = namespace("shop", json!({ISOLATION_LABEL: "none"}));
    assert_eq!(pod_filters("a", &pods, &namespaces, &[]), []);
}
