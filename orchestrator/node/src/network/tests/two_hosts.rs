//! Two nodes on one machine: two namespaces as hosts, wired by a veth pair, each with
//! its own bridge and pod CIDR. Each host's routes loop reads the Nodes from a real
//! store, learns its own block and routes the other's; a pod on host A then reaches
//! a pod on host B by its IP, and sees it by its own. A Node that goes takes its
//! route with it.

use std::net::SocketAddr;

use super::fixtures::*;
use crate::network::PodNetwork;
use crate::network::routes::NodeRoutes;
use berth_api::cidr::Ipv4Cidr;
use berth_api::meta::ObjectMeta;
use berth_api::objects::{Node, NodeAddress, NodeSpec, Resource};
use berth_client::kv::AbortOnDrop;
use berth_testkit::eventually;

fn node(name: &str, pod_cidr: &str, ip: &str) -> Node {
    let mut node = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.spec.pod_cidr = Some(pod_cidr.into());
    node.spec.pod_cidrs = Some(vec![pod_cidr.into()]);
    node.status.addresses = Some(vec![NodeAddress {
        type_: "InternalIP".into(),
        address: ip.into(),
    }]);
    node
}

fn routes_of(host: &Host, name: &str) -> NodeRoutes {
    NodeRoutes::for_network(name, host.network())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_on_one_host_reaches_a_pod_on_another_by_its_ip() {
    if !can_run() {
        return;
    }
    let store = berth_client::testing::store().await;
    let registry = store.registry();
    let (host_a, host_b) = (Host::new("a"), Host::new("b"));
    wire(&host_a, "192.168.77.1", &host_b, "192.168.77.2");
    registry
        .create(&node("a", "10.244.1.0/24", "192.168.77.1"), None)
        .await
        .unwrap();
    registry
        .create(&node("b", "10.244.2.0/24", "192.168.77.2"), None)
        .await
        .unwrap();
    let _routes_a = AbortOnDrop(tokio::spawn(routes_of(&host_a, "a").run(store.kv.clone())));
    let _routes_b = AbortOnDrop(tokio::spawn(routes_of(&host_b, "b").run(store.kv.clone())));

    let block_b: Ipv4Cidr = "10.244.2.0/24".parse().unwrap();
    let routes_a = routes_of(&host_a, "a");
    eventually("host a routes host b's pods through b", async || {
        let routes = routes_a.current().ok()?;
        (routes.get(&block_b) == Some(&"192.168.77.2".parse().unwrap())).then_some(())
    })
    .await;
    eventually("host b routes host a's pods", async || {
        (routes_of(&host_b, "b").current().ok()?.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        *host_a.network().pod_cidr().borrow(),
        Some("10.244.1.0/24".parse().unwrap()),
        "the agent learns its block from its Node"
    );

    let on_a = tokio::task::block_in_place(|| host_a.network().setup(&pod("uid-a", "pa", vec![]))).unwrap();
    let on_b = tokio::task::block_in_place(|| host_b.network().setup(&pod("uid-b", "pb", vec![tcp_port(18082, 8080)])))
        .unwrap();
    assert!(block_b.contains(match on_b.ip {
        std::net::IpAddr::V4(ip) => ip,
        other => panic!("{other}"),
    }));
    serve(&on_b.netns, 8080, "from-b");
    serve(&on_a.netns, 8080, "from-a");
    let answer = tokio::task::block_in_place(|| call(&on_a.netns, SocketAddr::new(on_b.ip, 8080))).unwrap();
    assert_eq!(
        answer,
        format!("from-b {}", on_a.ip),
        "a → b by pod IP, without NAT; host a's nat table:\n{}",
        host_a.nat_table()
    );
    let answer = tokio::task::block_in_place(|| call(&on_b.netns, SocketAddr::new(on_a.ip, 8080))).unwrap();
    assert_eq!(answer, format!("from-a {}", on_b.ip), "b → a");
    let from_outside = tokio::task::block_in_place(|| call(&host_a.netns, "192.168.77.2:18082".parse().unwrap()));
    assert!(
        from_outside.unwrap().starts_with("from-b "),
        "host b's hostPort reaches its pod from another host"
    );

    // Node b leaves: host a drops its route (and its pods can no longer reach b's).
    registry.delete::<NodeSpec>("", "b", None, None).await.unwrap();
    eventually("host a drops the route to a node that is gone", async || {
        routes_a.current().ok()?.is_empty().then_some(())
    })
    .await;
    assert!(tokio::task::block_in_place(|| call(&on_a.netns, SocketAddr::new(on_b.ip, 8080))).is_err());

    for (host, uid) in [(&host_a, "uid-a"), (&host_b, "uid-b")] {
        tokio::task::block_in_place(|| host.network().teardown(uid)).unwrap();
        assert!(host.netns_files().is_empty(), "no namespace file is left");
        assert_eq!(host.veths(), Vec::<String>::new(), "no veth is left");
        assert_eq!(host.leases(), Vec::<String>::new(), "no address stays reserved");
        assert_eq!(host.pod_chains(), Vec::<String>::new(), "no per-pod chain is left");
    }
}
