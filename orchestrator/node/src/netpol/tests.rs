//! The filter on a real namespace host (root, the CNI plugins, iptables; skipped
//! without them on a developer's machine, failing under CI): two pods on the host's
//! bridge, so their traffic is bridged and crosses FORWARD through br_netfilter.
//! The filter lets through what it is given and nothing else (an address on a port,
//! a CIDR less an exception, egress as ingress), a second filter of the same tag (a
//! restarted agent) takes over the first's chains, and a stopped one leaves nothing.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::Filter;
use super::model::{Allow, Peer, PodFilter, Ports};
use crate::network::PodNetwork;
use crate::network::netns;
use crate::network::tests::fixtures::*;
use crate::proxy::host;
use crate::proxy::model::Protocol;

fn filter_of(name: &str, ip: Ipv4Addr, ingress: Option<Vec<Allow>>, egress: Option<Vec<Allow>>) -> PodFilter {
    PodFilter {
        namespace: "default".into(),
        name: name.into(),
        ip,
        ingress: ingress.map(BTreeSet::from_iter),
        egress: egress.map(BTreeSet::from_iter),
    }
}

fn saved_filter_lines(host: &Host) -> Vec<String> {
    let saved = netns::run_in(Some(&host.netns), "iptables-save", &["-t", "filter"]).expect("iptables-save");
    saved
        .lines()
        .filter(|l| {
            ["BERTH-NETPOL-", "BERTH-NPI-", "BERTH-NPE-", "BERTH-NPB-"]
                .iter()
                .any(|c| l.contains(c))
        })
        .map(String::from)
        .collect()
}

#[test]
fn the_filter_lets_through_what_it_is_given_and_leaves_nothing_behind() {
    if !can_run() {
        return;
    }
    let host = Host::new("netpol");
    let network = host.network();
    network.set_pod_cidr(Some("10.244.9.0/24".parse().unwrap()));
    let a = network.setup(&pod("uid-a", "a", vec![])).expect("pod a's network");
    let b = network.setup(&pod("uid-b", "b", vec![])).expect("pod b's network");
    let (IpAddr::V4(a_ip), IpAddr::V4(b_ip)) = (a.ip, b.ip) else {
        panic!("IPv4 addresses: {a:?} {b:?}")
    };
    host::set_sysctls(Some(&host.netns)).expect("br_netfilter's setting");
    serve(&b.netns, 8080, "from-b");
    let to_b = SocketAddr::new(b.ip, 8080);
    assert!(call(&a.netns, to_b).is_ok(), "open before any filter");

    let tag = network.settings().bridge.clone();
    let filter = Filter::new(&tag, Some(host.netns.clone()));
    let b_accepts = |allow: Vec<Allow>| vec![filter_of("b", b_ip, Some(allow), None)];
    filter.sync(&b_accepts(vec![]), false).expect("deny-all");
    assert!(call(&a.netns, to_b).is_err(), "deny-all lets a in");
    assert!(
        call(&host.netns, to_b).is_ok(),
        "the node itself (probes) is not filtered"
    );
    // Someone removes the jump into the filter: the next full sync puts it back.
    let delete = format!("iptables -D FORWARD {}", filter.chains().jump_spec());
    netns::run_in(Some(&host.netns), "sh", &["-c", &delete]).expect("the jump removed");
    assert!(call(&a.netns, to_b).is_ok(), "no jump, no filter");
    filter.sync(&b_accepts(vec![]), true).unwrap();
    assert!(call(&a.netns, to_b).is_err(), "the full sync puts the jump back");

    let from_a = |port: u16| Allow {
        peer: Peer::Ip(a_ip),
        ports: Ports::Range(Protocol::Tcp, port, port),
    };
    filter.sync(&b_accepts(vec![from_a(8081)]), false).unwrap();
    assert!(call(&a.netns, to_b).is_err(), "another port lets a in");
    filter.sync(&b_accepts(vec![from_a(8080)]), false).unwrap();
    assert!(call(&a.netns, to_b).is_ok(), "a on 8080 is allowed");

    let block = |except: Ipv4Addr| Allow {
        peer: Peer::Block {
            cidr: "10.244.9.0/24".parse().unwrap(),
            except: vec![format!("{except}/32").parse().unwrap()],
        },
        ports: Ports::All,
    };
    filter.sync(&b_accepts(vec![block(a_ip)]), false).unwrap();
    assert!(call(&a.netns, to_b).is_err(), "a's exception lets it in");
    filter
        .sync(&b_accepts(vec![block(Ipv4Addr::new(10, 244, 9, 200))]), false)
        .unwrap();
    assert!(
        call(&a.netns, to_b).is_ok(),
        "the block lets a in, save another address"
    );

    // Egress: a may send nothing; b is open again.
    filter.sync(&[filter_of("a", a_ip, None, Some(vec![]))], false).unwrap();
    assert!(call(&a.netns, to_b).is_err(), "a's egress is shut");

    // A restarted agent's filter takes the chains over: a's go, one jump stays.
    let restarted = Filter::new(&tag, Some(host.netns.clone()));
    restarted.sync(&b_accepts(vec![]), false).unwrap();
    assert!(call(&a.netns, to_b).is_err(), "the new filter shuts b");
    let lines = saved_filter_lines(&host);
    assert!(!lines.iter().any(|l| l.contains("BERTH-NPE-")), "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("-A FORWARD ")).count(),
        1,
        "{lines:#?}"
    );

    restarted.stop().expect("the cleanup");
    assert_eq!(saved_filter_lines(&host), Vec::<String>::new());
    assert!(call(&a.netns, to_b).is_ok(), "open once the filter is gone");
}
