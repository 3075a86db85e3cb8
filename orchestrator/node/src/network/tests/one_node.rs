//! One node: pods get distinct addresses from the node's block, the host and the
//! pods reach each other, a hostPort reaches its pod, and teardown leaves nothing of
//! a pod behind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::fixtures::*;
use crate::network::{NetworkError, PodNetwork, netns};
use berth_api::cidr::Ipv4Cidr;

#[test]
fn pods_on_one_node_get_their_own_addresses_reach_each_other_and_leave_nothing_behind() {
    if !can_run() {
        return;
    }
    let host = Host::new("one");
    let network = host.network();
    assert!(
        matches!(network.setup(&pod("uid-a", "a", vec![])), Err(NetworkError::NoPodCidr)),
        "no pod network before the node has a pod CIDR"
    );
    assert!(network.list().is_empty(), "a refused setup leaves nothing");
    let block: Ipv4Cidr = "10.244.7.0/24".parse().unwrap();
    network.set_pod_cidr(Some(block));

    let a = network.setup(&pod("uid-a", "a", vec![])).expect("pod a's network");
    let b = network
        .setup(&pod("uid-b", "b", vec![tcp_port(18080, 8080)]))
        .expect("pod b's network");
    let (IpAddr::V4(a_ip), IpAddr::V4(b_ip)) = (a.ip, b.ip) else {
        panic!("IPv4 addresses: {a:?} {b:?}")
    };
    assert_ne!(a_ip, b_ip);
    assert!(
        block.contains(a_ip) && block.contains(b_ip),
        "{a_ip} and {b_ip} in {block}"
    );
    assert_ne!(Some(a_ip), block.host(1), "the first address is the bridge's");
    assert_eq!(network.list(), ["uid-a", "uid-b"]);
    assert!(netns::is_netns(&a.netns), "the status names a namespace runc can join");
    let again = network.setup(&pod("uid-a", "a", vec![])).expect("setup again");
    assert_eq!(again, a, "setting up a pod again answers what it has");
    assert_eq!(host.leases().len(), 2, "one lease per pod");

    let on_a = serve(&a.netns, 8080, "from-a");
    let on_b = serve(&b.netns, 8080, "from-b");
    assert_eq!(on_a.port(), 8080);
    let a_addr = SocketAddr::new(a.ip, 8080);
    let b_addr = SocketAddr::new(b.ip, on_b.port());
    let bridge_ip = block.host(1).unwrap().to_string();
    assert_eq!(
        call(&host.netns, a_addr).unwrap(),
        format!("from-a {bridge_ip}"),
        "host → pod"
    );
    assert_eq!(
        call(&a.netns, b_addr).unwrap(),
        format!("from-b {a_ip}"),
        "pod → pod, unNATed"
    );
    assert_eq!(
        call(&b.netns, a_addr).unwrap(),
        format!("from-a {b_ip}"),
        "pod → pod, back"
    );
    let host_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 18080));
    assert!(
        call(&host.netns, host_port).unwrap().starts_with("from-b "),
        "the hostPort reaches pod b"
    );
    assert!(
        !host.pod_chains().is_empty(),
        "portmap and masquerade chains exist while the pods run"
    );
    assert_eq!(host.veths().len(), 2);

    network.teardown("uid-b").expect("pod b's teardown");
    assert!(call(&host.netns, host_port).is_err(), "the hostPort goes with its pod");
    network.teardown("uid-a").expect("pod a's teardown");
    network.teardown("uid-a").expect("a second teardown is Ok");
    network.teardown("never-seen").expect("a pod never set up is Ok");
    assert!(network.list().is_empty());
    assert!(host.netns_files().is_empty(), "no namespace file is left");
    assert!(!netns::is_netns(&a.netns));
    assert_eq!(host.veths(), Vec::<String>::new(), "no veth is left");
    assert_eq!(host.leases(), Vec::<String>::new(), "no address stays reserved");
    assert_eq!(
        host.pod_chains(),
        Vec::<String>::new(),
        "no per-pod iptables chain is left"
    );
}

#[test]
fn a_failed_plugin_is_reported_by_name_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let host = Host::new("fail");
    let network = host.network();
    // A /30 holds one pod (the network, the gateway and the broadcast take the rest).
    network.set_pod_cidr(Some("10.244.9.0/30".parse().unwrap()));
    network.setup(&pod("uid-1", "one", vec![])).expect("the one address");
    let error = network.setup(&pod("uid-2", "two", vec![])).unwrap_err();
    let NetworkError::Plugin {
        plugin, command, pod, ..
    } = &error
    else {
        panic!("a plugin error: {error}")
    };
    assert_eq!(
        (plugin.as_str(), *command, pod.as_str()),
        ("bridge", "ADD", "default/two")
    );
    assert!(error.to_string().contains("no IP addresses available"), "{error}");
    assert_eq!(network.list(), ["uid-1"], "the failed pod left nothing");
    assert_eq!(host.veths().len(), 1);
}

#[test]
fn a_restarted_agent_finds_its_pods_networks_and_tears_them_down() {
    if !can_run() {
        return;
    }
    let mut host = Host::new("restart");
    let block = Some("10.244.8.0/24".parse().unwrap());
    host.network().set_pod_cidr(block);
    let before = host
        .network()
        .setup(&pod("uid-r", "r", vec![tcp_port(18081, 80)]))
        .expect("the pod's network");

    // The agent restarts: a new CniNetwork over the same state dir and host.
    let settings = host.network().settings().clone();
    host.network = Some(crate::network::CniNetwork::new(settings));
    let network = host.network();
    assert_eq!(network.list(), ["uid-r"], "the pod is found on disk");
    network.set_pod_cidr(block);
    let after = network
        .setup(&pod("uid-r", "r", vec![tcp_port(18081, 80)]))
        .expect("setup again");
    assert_eq!(after, before, "the same namespace and address");
    assert!(
        host.pod_chains().iter().any(|c| c.starts_with("CNI-DN-")),
        "portmap's per-pod chain: {:?}",
        host.pod_chains()
    );
    network.teardown("uid-r").expect("teardown after the restart");
    assert!(network.list().is_empty());
    assert_eq!(host.leases(), Vec::<String>::new());
    assert_eq!(
        host.pod_chains(),
        Vec::<String>::new(),
        "portmap's chain goes: DEL got the recorded mappings"
    );
    assert_eq!(host.veths(), Vec::<String>::new());
}

#[test]
fn agents_sharing_one_host_reach_each_others_pods_without_nat() {
    use crate::network::routes::NodeRoutes;
    use crate::network::{CniNetwork, CniSettings};
    if !can_run() {
        return;
    }
    // Two agents on one host (as `berth up` runs them): one namespace, two bridges.
    let host = Host::new("shared");
    let mut settings = CniSettings::new(host.state.path().join("network-2"));
    settings.bridge = "berth1".into();
    settings.host_netns = Some(host.netns.clone());
    let second = CniNetwork::new(settings);
    let (one, two): (Ipv4Cidr, Ipv4Cidr) = ("10.244.1.0/24".parse().unwrap(), "10.244.2.0/24".parse().unwrap());
    host.network().set_pod_cidr(Some(one));
    second.set_pod_cidr(Some(two));
    let p1 = host.network().setup(&pod("uid-1", "p1", vec![])).unwrap();
    let p2 = second.setup(&pod("uid-2", "p2", vec![])).unwrap();
    // Their Nodes share the host's address: no routes, only the exemptions.
    let no_routes = Default::default();
    NodeRoutes::for_network("n1", host.network())
        .apply(&no_routes, Some(one), &[two])
        .unwrap();
    NodeRoutes::for_network("n2", &second)
        .apply(&no_routes, Some(two), &[one])
        .unwrap();
    serve(&p2.netns, 8080, "from-2");
    serve(&p1.netns, 8080, "from-1");
    assert_eq!(
        call(&p1.netns, SocketAddr::new(p2.ip, 8080)).unwrap(),
        format!("from-2 {}", p1.ip)
    );
    assert_eq!(
        call(&p2.netns, SocketAddr::new(p1.ip, 8080)).unwrap(),
        format!("from-1 {}", p2.ip)
    );
    second.teardown("uid-2").unwrap();
    assert!(second.list().is_empty());
}

#[test]
fn a_node_given_another_pod_cidr_replaces_the_idle_bridge_left_from_the_old_one() {
    if !can_run() {
        return;
    }
    let host = Host::new("recidr");
    let network = host.network();
    network.set_pod_cidr(Some("10.244.11.0/24".parse().unwrap()));
    network
        .setup(&pod("uid-old", "old", vec![]))
        .expect("a pod on the old block");
    network.teardown("uid-old").expect("its teardown");
    assert!(
        host.ip(&["-4", "addr", "show", "dev", "berth0"])
            .contains("10.244.11.1/24"),
        "the bridge stays with the old gateway, as the plugin leaves it"
    );

    // The node comes back with another block (a new cluster, a new data dir).
    let block: Ipv4Cidr = "10.244.12.0/24".parse().unwrap();
    network.set_pod_cidr(Some(block));
    let new = network
        .setup(&pod("uid-new", "new", vec![]))
        .expect("a pod on the new block, not \"already has an IP address different from\"");
    let IpAddr::V4(ip) = new.ip else { panic!("{new:?}") };
    assert!(block.contains(ip), "{ip} in {block}");
    let shown = host.ip(&["-4", "addr", "show", "dev", "berth0"]);
    assert!(
        shown.contains("10.244.12.1/24") && !shown.contains("10.244.11.1"),
        "{shown}"
    );

    // A bridge with pods on it is not taken from under them.
    network.set_pod_cidr(Some("10.244.13.0/24".parse().unwrap()));
    assert!(network.setup(&pod("uid-third", "third", vec![])).is_err());
    assert!(
        host.ip(&["-4", "addr", "show", "dev", "berth0"])
            .contains("10.244.12.1/24"),
        "the running pod's bridge keeps its address"
    );
    network.teardown("uid-new").expect("teardown");
}
