use std::collections::BTreeSet;

use super::*;
use crate::proxy::chains::ChainNames;
use crate::proxy::model::Protocol;

fn filter(ingress: Option<Vec<Allow>>, egress: Option<Vec<Allow>>) -> PodFilter {
    PodFilter {
        namespace: "shop".into(),
        name: "web".into(),
        ip: "10.0.0.2".parse().unwrap(),
        ingress: ingress.map(BTreeSet::from_iter),
        egress: egress.map(BTreeSet::from_iter),
    }
}

#[test]
fn names_fit_iptables_and_are_apart_from_the_proxys() {
    let names = FilterChains::new("fifteen-chars-x");
    let pod = names.pod("NPI", &["shop", "web", "10.0.0.2", "ingress"]);
    for chain in [names.main(), pod.clone(), names.pod("NPB", &[&pod, "0"])] {
        assert!(chain.len() <= 28, "{chain}");
        assert!(names.is_own(&chain), "{chain}");
        assert!(!ChainNames::new("fifteen-chars-x").is_own(&chain), "{chain}");
    }
    assert!(!FilterChains::new("berth1").is_own(&pod) && !names.is_own("BERTH-NP-fifteen-chars-x"));
}

#[test]
fn deny_all_drops_what_is_new_and_lets_replies_through() {
    let names = FilterChains::new("berth0");
    let chains = chains(&[filter(Some(vec![]), None)], &names);
    let pod = names.pod("NPI", &["shop", "web", "10.0.0.2", "ingress"]);
    assert_eq!(
        chains,
        BTreeMap::from([
            (
                "BERTH-NETPOL-berth0".to_string(),
                vec![
                    "-A BERTH-NETPOL-berth0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN".to_string(),
                    format!("-A BERTH-NETPOL-berth0 -d 10.0.0.2/32 -m comment --comment \"shop/web ingress\" -j {pod}"),
                ]
            ),
            (
                pod.clone(),
                vec![format!(
                    "-A {pod} -m comment --comment \"shop/web: not allowed by a network policy\" -j DROP"
                )]
            ),
        ])
    );
    // No filter: only the replies' rule, which lets everything else on.
    assert_eq!(chains_of_nothing(&names), 1);
}

fn chains_of_nothing(names: &FilterChains) -> usize {
    let chains = chains(&[], names);
    assert_eq!(chains.len(), 1);
    chains[&names.main()].len()
}

#[test]
fn allowances_become_returns_by_address_and_port_and_blocks_skip_their_exceptions() {
    let names = FilterChains::new("berth0");
    let block = Peer::Block {
        cidr: "10.0.0.0/16".parse().unwrap(),
        except: vec!["10.0.1.0/24".parse().unwrap(), "10.0.2.0/24".parse().unwrap()],
    };
    let ingress = vec![
        Allow {
            peer: Peer::Ip("10.0.1.2".parse().unwrap()),
            ports: Ports::Range(Protocol::Tcp, 80, 80),
        },
        Allow {
            peer: Peer::Any,
            ports: Ports::Range(Protocol::Udp, 9000, 9010),
        },
        Allow {
            peer: Peer::Block {
                cidr: "192.168.0.0/24".parse().unwrap(),
                except: vec![],
            },
            ports: Ports::Protocol(Protocol::Sctp),
        },
        Allow {
            peer: block,
            ports: Ports::All,
        },
    ];
    let egress = vec![Allow {
        peer: Peer::Ip("10.0.1.3".parse().unwrap()),
        ports: Ports::All,
    }];
    let chains = chains(&[filter(Some(ingress), Some(egress))], &names);
    let npi = names.pod("NPI", &["shop", "web", "10.0.0.2", "ingress"]);
    let npe = names.pod("NPE", &["shop", "web", "10.0.0.2", "egress"]);
    // In the allowances' order: every source, addresses, blocks by CIDR.
    let npb = names.pod("NPB", &[&npi, "2"]);
    // Egress is checked before ingress: a packet between two pods of the node
    // passes the sender's egress and the receiver's ingress.
    assert_eq!(
        chains[&names.main()][1..],
        [
            format!("-A BERTH-NETPOL-berth0 -s 10.0.0.2/32 -m comment --comment \"shop/web egress\" -j {npe}"),
            format!("-A BERTH-NETPOL-berth0 -d 10.0.0.2/32 -m comment --comment \"shop/web ingress\" -j {npi}"),
        ]
    );
    assert_eq!(
        chains[&npi],
        [
            format!("-A {npi} -j MARK --set-xmark 0x0/0x10000"),
            format!("-A {npi} -p udp --dport 9000:9010 -j RETURN"),
            format!("-A {npi} -s 10.0.1.2/32 -p tcp --dport 80 -j RETURN"),
            format!("-A {npi} -s 10.0.0.0/16 -j {npb}"),
            format!("-A {npi} -m mark --mark 0x10000/0x10000 -j RETURN"),
            format!("-A {npi} -s 192.168.0.0/24 -p sctp -j RETURN"),
            format!("-A {npi} -m comment --comment \"shop/web: not allowed by a network policy\" -j DROP"),
        ]
    );
    assert_eq!(
        chains[&npb],
        [
            format!("-A {npb} -s 10.0.1.0/24 -j RETURN"),
            format!("-A {npb} -s 10.0.2.0/24 -j RETURN"),
            format!("-A {npb} -j MARK --set-xmark 0x10000/0x10000"),
        ]
    );
    assert_eq!(chains[&npe][0], format!("-A {npe} -d 10.0.1.3/32 -j RETURN"));
}

#[test]
fn the_restore_input_declares_fills_jumps_and_deletes_the_stale() {
    let names = FilterChains::new("berth0");
    let wanted = chains(&[], &names);
    let input = restore_input(&wanted, &["BERTH-NPI-OLD".to_string()], Some(names.jump_spec()));
    assert_eq!(
        input,
        "*filter
:BERTH-NETPOL-berth0 - [0:0]
:BERTH-NPI-OLD - [0:0]
-A BERTH-NETPOL-berth0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-I FORWARD 1 -m comment --comment \"berth network policies\" -j BERTH-NETPOL-berth0
-X BERTH-NPI-OLD
COMMIT
"
    );
}
