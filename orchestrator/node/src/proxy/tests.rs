//! The proxy on real namespaces (root, the CNI plugins, iptables; skipped without
//! them on a developer's machine, failing under CI): two hosts wired together, a
//! pod on each, a Service and its EndpointSlice in a real store, and each host's
//! proxy loop programming its own namespace's iptables (and deleting its stale UDP
//! flows). Everything lives in the hosts' namespaces, which the fixtures' Drop
//! removes, passed or not.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_api::meta::ObjectMeta;
use berth_api::objects::{Node, NodeAddress, NodeSpec, Resource};
use berth_client::kv::{AbortOnDrop, Kv};
use berth_testkit::eventually;
use serde_json::{Value, json};

use super::{Proxier, ProxySettings, iptables, watch};
use crate::network::PodNetwork;
use crate::network::netns;
use crate::network::routes::NodeRoutes;
use crate::network::tests::fixtures::*;

const CLUSTER_IP: &str = "10.96.0.10";

fn node(name: &str, pod_cidr: &str, ip: &str) -> Node {
    let mut node = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.spec.pod_cidr = Some(pod_cidr.into());
    node.status.addresses = Some(vec![NodeAddress {
        type_: "InternalIP".into(),
        address: ip.into(),
    }]);
    node
}

fn proxier(host: &Host, node_name: &str) -> Arc<Proxier> {
    let settings = host.network().settings();
    Arc::new(Proxier::new(ProxySettings {
        node_name: node_name.into(),
        tag: settings.bridge.clone(),
        host_netns: settings.host_netns.clone(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        route_bridge: Some(settings.bridge.clone()),
    }))
}

async fn put_service(kv: &Kv) {
    put_service_with(kv, json!({})).await;
}

/// The NodePort Service `web`, with `extra` fields in its spec.
async fn put_service_with(kv: &Kv, extra: Value) {
    let mut service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "NodePort", "clusterIP": CLUSTER_IP,
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]},
    });
    service["spec"]
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    kv.put("/registry/services/default/web", service.to_string().into_bytes(), 0)
        .await
        .unwrap();
}

/// The Service's one slice, listing `endpoints`: (ip, ready, node).
async fn put_slice(kv: &Kv, endpoints: &[(IpAddr, bool, &str)]) {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready, node)| {
            json!({"addresses": [ip.to_string()], "nodeName": node,
                   "conditions": {"ready": ready, "serving": ready, "terminating": false}})
        })
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "default", "name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    });
    kv.put(
        "/registry/endpointslices/default/web-abcde",
        slice.to_string().into_bytes(),
        0,
    )
    .await
    .unwrap();
}

/// `call`, off the async threads.
fn call_from(from: &Path, to: SocketAddr) -> Result<String, String> {
    tokio::task::block_in_place(|| call(from, to))
}

/// Waits until a call from `from` to `to` answers starting with `reply`.
async fn answers(what: &str, from: &Path, to: SocketAddr, reply: &str) -> String {
    eventually(what, async || call_from(from, to).ok().filter(|a| a.starts_with(reply))).await
}

/// Berth's chains and rules in a host's tables (not the pod network's BERTH-PEERS).
fn proxy_lines(host: &Host) -> Vec<String> {
    let saved = iptables::save(Some(&host.netns)).unwrap();
    saved
        .lines()
        .filter(|l| l.contains("BERTH-") && !l.contains("BERTH-PEERS-"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_reaches_its_endpoints_from_pods_and_hosts_follows_them_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let store = berth_client::testing::store().await;
    let registry = store.registry();
    let (host_a, host_b) = (Host::new("pxa"), Host::new("pxb"));
    wire(&host_a, "192.168.78.1", &host_b, "192.168.78.2");
    registry
        .create(&node("a", "10.244.1.0/24", "192.168.78.1"), None)
        .await
        .unwrap();
    registry
        .create(&node("b", "10.244.2.0/24", "192.168.78.2"), None)
        .await
        .unwrap();
    let routes = |host: &Host, name: &str| NodeRoutes::for_network(name, host.network());
    let _routes_a = AbortOnDrop(tokio::spawn(routes(&host_a, "a").run(store.kv.clone())));
    let _routes_b = AbortOnDrop(tokio::spawn(routes(&host_b, "b").run(store.kv.clone())));
    eventually("each host routes the other's pods", async || {
        let a = routes(&host_a, "a").current().ok()?.len();
        let b = routes(&host_b, "b").current().ok()?.len();
        (a == 1 && b == 1).then_some(())
    })
    .await;
    let pod_a = tokio::task::block_in_place(|| host_a.network().setup(&pod("uid-a", "pa", vec![]))).unwrap();
    let pod_b = tokio::task::block_in_place(|| host_b.network().setup(&pod("uid-b", "pb", vec![]))).unwrap();
    serve(&pod_a.netns, 8080, "from-a");
    serve(&pod_b.netns, 8080, "from-b");

    let (proxy_a, proxy_b) = (proxier(&host_a, "a"), proxier(&host_b, "b"));
    let loop_a = AbortOnDrop(tokio::spawn(watch::run(proxy_a.clone(), store.kv.clone())));
    let loop_b = AbortOnDrop(tokio::spawn(watch::run(proxy_b.clone(), store.kv.clone())));
    put_service(&store.kv).await;
    put_slice(&store.kv, &[(pod_b.ip, true, "b")]).await;

    let service: SocketAddr = (CLUSTER_IP.parse::<IpAddr>().unwrap(), 80).into();
    let answer = answers(
        "a pod on host a reaches host b's pod through the cluster IP",
        &pod_a.netns,
        service,
        "from-b",
    )
    .await;
    assert_eq!(answer, format!("from-b {}", pod_a.ip), "the pod's own address arrives");
    answers("host a reaches it too", &host_a.netns, service, "from-b").await;
    let node_port_b: SocketAddr = "192.168.78.2:30080".parse().unwrap();
    answers("host b's NodePort, from host a", &host_a.netns, node_port_b, "from-b").await;
    let node_port_a: SocketAddr = "192.168.78.1:30080".parse().unwrap();
    answers(
        "host a's NodePort, which sends it on to host b",
        &host_b.netns,
        node_port_a,
        "from-b",
    )
    .await;
    let localhost: SocketAddr = "127.0.0.1:30080".parse().unwrap();
    answers("a NodePort on host a's localhost", &host_a.netns, localhost, "from-b").await;
    let hairpin = answers(
        "pod b reaches itself through its Service",
        &pod_b.netns,
        service,
        "from-b",
    )
    .await;
    assert_eq!(
        hairpin, "from-b 10.244.2.1",
        "masqueraded to the bridge's address, or it could not answer itself"
    );

    // A neighbour on the same bridge: the reply comes back over the bridge, and is
    // un-DNATed only because bridged traffic goes through conntrack (br_netfilter).
    let neighbour = tokio::task::block_in_place(|| host_b.network().setup(&pod("uid-b2", "pb2", vec![]))).unwrap();
    let answer = answers(
        "a pod reaches a neighbour through the Service",
        &neighbour.netns,
        service,
        "from-b",
    )
    .await;
    assert_eq!(answer, format!("from-b {}", neighbour.ip));

    // The endpoint moves: the rules follow.
    put_slice(&store.kv, &[(pod_b.ip, false, "b"), (pod_a.ip, true, "a")]).await;
    answers(
        "host b's pod now reaches host a's through the Service",
        &pod_b.netns,
        service,
        "from-a",
    )
    .await;
    // No endpoint at all: refused at once, not a hang.
    put_slice(&store.kv, &[]).await;
    let refused = eventually("a Service without endpoints refuses", async || {
        call_from(&host_a.netns, service)
            .err()
            .filter(|e| e.contains("refused"))
    })
    .await;
    assert!(refused.contains("Connection refused"), "{refused}");

    drop((loop_a, loop_b));
    for (host, proxy) in [(&host_a, &proxy_a), (&host_b, &proxy_b)] {
        tokio::task::block_in_place(|| proxy.stop()).unwrap();
        assert_eq!(
            proxy_lines(host),
            Vec::<String>::new(),
            "nothing of the proxy's is left"
        );
        assert_eq!(
            host.ip(&["route", "show", "10.96.0.0/12"]).trim(),
            "",
            "the service CIDR's route goes"
        );
        assert!(
            netns::run_in(Some(&host.netns), "iptables-save", &["-t", "nat"])
                .unwrap()
                .contains("BERTH-PEERS-"),
            "the pod network's own chain stays"
        );
    }
    for (host, uid) in [(&host_a, "uid-a"), (&host_b, "uid-b"), (&host_b, "uid-b2")] {
        tokio::task::block_in_place(|| host.network().teardown(uid)).unwrap();
    }
}

/// `externalTrafficPolicy: Local`: a node port reaches only its own node's
/// endpoints, with the client's address kept; a node without one drops what comes
/// from outside, while its own pods and the node itself still reach the endpoints
/// elsewhere (their traffic is not external).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_external_policy_keeps_the_client_address_and_drops_on_nodes_without_endpoints() {
    if !can_run() {
        return;
    }
    let store = berth_client::testing::store().await;
    let registry = store.registry();
    let (host_a, host_b) = (Host::new("pxla"), Host::new("pxlb"));
    wire(&host_a, "192.168.79.1", &host_b, "192.168.79.2");
    registry
        .create(&node("a", "10.244.1.0/24", "192.168.79.1"), None)
        .await
        .unwrap();
    registry
        .create(&node("b", "10.244.2.0/24", "192.168.79.2"), None)
        .await
        .unwrap();
    let routes = |host: &Host, name: &str| NodeRoutes::for_network(name, host.network());
    let _routes_a = AbortOnDrop(tokio::spawn(routes(&host_a, "a").run(store.kv.clone())));
    let _routes_b = AbortOnDrop(tokio::spawn(routes(&host_b, "b").run(store.kv.clone())));
    eventually("each host routes the other's pods", async || {
        let a = routes(&host_a, "a").current().ok()?.len();
        let b = routes(&host_b, "b").current().ok()?.len();
        (a == 1 && b == 1).then_some(())
    })
    .await;
    let pod_a = tokio::task::block_in_place(|| host_a.network().setup(&pod("uid-la", "pla", vec![]))).unwrap();
    let pod_b = tokio::task::block_in_place(|| host_b.network().setup(&pod("uid-lb", "plb", vec![]))).unwrap();
    serve(&pod_b.netns, 8080, "from-b");
    let (proxy_a, proxy_b) = (proxier(&host_a, "a"), proxier(&host_b, "b"));
    let loop_a = AbortOnDrop(tokio::spawn(watch::run(proxy_a.clone(), store.kv.clone())));
    let loop_b = AbortOnDrop(tokio::spawn(watch::run(proxy_b.clone(), store.kv.clone())));
    put_service_with(&store.kv, json!({"externalTrafficPolicy": "Local"})).await;
    put_slice(&store.kv, &[(pod_b.ip, true, "b")]).await;

    let node_port_b: SocketAddr = "192.168.79.2:30080".parse().unwrap();
    let answer = answers("host b's NodePort, from host a", &host_a.netns, node_port_b, "from-b").await;
    assert_eq!(
        answer, "from-b 192.168.79.1",
        "the client's address arrives, not masqueraded"
    );
    let node_port_a: SocketAddr = "192.168.79.1:30080".parse().unwrap();
    answers(
        "host a's NodePort from a pod of host a (cluster traffic)",
        &pod_a.netns,
        node_port_a,
        "from-b",
    )
    .await;
    answers(
        "host a's NodePort from host a itself",
        &host_a.netns,
        node_port_a,
        "from-b",
    )
    .await;
    // From outside host a (host b here), host a has no endpoint to send it to.
    let dropped = call_from(&host_b.netns, node_port_a).unwrap_err();
    assert!(
        dropped.contains("timed out"),
        "dropped, not refused nor answered: {dropped}"
    );

    drop((loop_a, loop_b));
    for (host, proxy) in [(&host_a, &proxy_a), (&host_b, &proxy_b)] {
        tokio::task::block_in_place(|| proxy.stop()).unwrap();
        assert_eq!(proxy_lines(host), Vec::<String>::new());
    }
    for (host, uid) in [(&host_a, "uid-la"), (&host_b, "uid-lb")] {
        tokio::task::block_in_place(|| host.network().teardown(uid)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_proxy_left_goes_at_the_next_ones_first_sync_and_other_rules_stay() {
    if !can_run() {
        return;
    }
    let host = Host::new("pxk");
    let other = "-A OUTPUT -d 10.1.2.3/32 -j ACCEPT";
    let other_rule: Vec<&str> = other.split(' ').collect();
    netns::run_in(Some(&host.netns), "iptables", &other_rule).unwrap();
    let services: Vec<k8s_openapi::api::core::v1::Service> = vec![
        serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": CLUSTER_IP, "ports": [{"port": 80}]}}))
        .unwrap(),
    ];
    let slices: Vec<k8s_openapi::api::discovery::v1::EndpointSlice> = vec![
        serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "web-1",
            "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": [{"addresses": ["10.244.9.9"]}]}))
        .unwrap(),
    ];
    let ports = super::model::service_ports(&services, &slices);
    let killed = proxier(&host, "a");
    tokio::task::block_in_place(|| killed.sync(&ports, false)).unwrap();
    tokio::task::block_in_place(|| killed.sync(&ports, true)).unwrap();
    let before = proxy_lines(&host);
    assert!(before.iter().any(|l| l.contains("10.244.9.9:8080")), "{before:?}");
    assert_eq!(
        before.iter().filter(|l| l.contains("-A PREROUTING")).count(),
        1,
        "a full sync adds no second jump: {before:?}"
    );
    drop(killed);

    let next = proxier(&host, "a");
    tokio::task::block_in_place(|| next.sync(&[], false)).unwrap();
    let after = proxy_lines(&host);
    assert!(
        !after
            .iter()
            .any(|l| l.contains("BERTH-SEP-") || l.contains("BERTH-SVC-")),
        "{after:?}"
    );
    tokio::task::block_in_place(|| next.stop()).unwrap();
    assert_eq!(proxy_lines(&host), Vec::<String>::new());
    let saved = iptables::save(Some(&host.netns)).unwrap();
    assert!(saved.contains(other), "another rule on the host stays:\n{saved}");
}

/// A UDP server inside a namespace answering each datagram with `reply`. The thread
/// ends with the test process.
fn serve_udp(netns_path: &Path, port: u16, reply: &'static str) {
    let socket = netns::in_netns(Some(netns_path), || UdpSocket::bind(("0.0.0.0", port)))
        .expect("setns")
        .expect("bind");
    std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        while let Ok((_, peer)) = socket.recv_from(&mut buffer) {
            let _ = socket.send_to(reply.as_bytes(), peer);
        }
    });
}

/// One question on `client`'s socket (always the same source port: one flow), its
/// answer or None after a second.
fn ask(client: &UdpSocket, to: SocketAddr) -> Option<String> {
    tokio::task::block_in_place(|| {
        client.send_to(b"?", to).ok()?;
        let mut buffer = [0u8; 512];
        let (n, _) = client.recv_from(&mut buffer).ok()?;
        Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
    })
}

/// A UDP Service (cluster IP `DNS_IP`, port 53 to 5353) whose slice lists `endpoints`.
async fn put_udp_service(kv: &Kv, endpoints: &[IpAddr]) {
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "default", "name": "dns"},
        "spec": {"clusterIP": DNS_IP, "ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]},
    });
    kv.put("/registry/services/default/dns", service.to_string().into_bytes(), 0)
        .await
        .unwrap();
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "default", "name": "dns-abcde", "labels": {"kubernetes.io/service-name": "dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": endpoints,
    });
    kv.put(
        "/registry/endpointslices/default/dns-abcde",
        slice.to_string().into_bytes(),
        0,
    )
    .await
    .unwrap();
}

const DNS_IP: &str = "10.96.0.53";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_client_that_keeps_sending_follows_its_services_endpoint_when_it_is_replaced() {
    if !can_run() {
        return;
    }
    if !super::conntrack::available() {
        berth_testkit::skip("the conntrack command (Debian: conntrack)");
        return;
    }
    let store = berth_client::testing::store().await;
    let host = Host::new("pxu");
    host.network().set_pod_cidr(Some("10.244.3.0/24".parse().unwrap()));
    let setup = |uid: &str, name: &str| tokio::task::block_in_place(|| host.network().setup(&pod(uid, name, vec![])));
    let (old, new, client) = (
        setup("uid-o", "old").unwrap(),
        setup("uid-n", "new").unwrap(),
        setup("uid-c", "client").unwrap(),
    );
    serve_udp(&old.netns, 5353, "from-old");
    serve_udp(&new.netns, 5353, "from-new");
    let socket = netns::in_netns(Some(&client.netns), || UdpSocket::bind(("0.0.0.0", 0)))
        .unwrap()
        .unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();

    let proxy = proxier(&host, "a");
    let proxy_loop = AbortOnDrop(tokio::spawn(watch::run(proxy.clone(), store.kv.clone())));
    let service: SocketAddr = (DNS_IP.parse::<IpAddr>().unwrap(), 53).into();
    // The client asks before the Service exists: its flow, not DNATed, must not
    // outlive the rules either.
    assert_eq!(ask(&socket, service), None, "no Service yet");
    put_udp_service(&store.kv, &[old.ip]).await;
    eventually("the client's flow reaches the first endpoint", async || {
        ask(&socket, service).filter(|a| a == "from-old")
    })
    .await;

    // The endpoint is replaced while the old pod still answers: without the flow's
    // deletion, the client would go on reaching it for as long as it keeps asking.
    put_udp_service(&store.kv, &[new.ip]).await;
    eventually("the same flow reaches the new endpoint", async || {
        ask(&socket, service).filter(|a| a == "from-new")
    })
    .await;
    for _ in 0..5 {
        assert_eq!(ask(&socket, service).as_deref(), Some("from-new"), "and stays there");
    }

    drop(proxy_loop);
    tokio::task::block_in_place(|| proxy.stop()).unwrap();
    assert_eq!(proxy_lines(&host), Vec::<String>::new());
    for uid in ["uid-o", "uid-n", "uid-c"] {
        tokio::task::block_in_place(|| host.network().teardown(uid)).unwrap();
    }
}
