//! The answers, as a table: name and type asked → code and records.

use std::net::IpAddr;

use super::*;
use crate::catalog::{PortEntry, SliceEntry};
use crate::wire::{NXDOMAIN, TYPE_A, TYPE_AAAA, TYPE_NS};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn port(name: &str, port: u16, protocol: &str) -> PortEntry {
    PortEntry {
        name: name.into(),
        port,
        protocol: protocol.into(),
    }
}

fn service(namespace: &str, name: &str, cluster_ip: Option<&str>) -> ServiceEntry {
    ServiceEntry {
        namespace: namespace.into(),
        name: name.into(),
        cluster_ips: cluster_ip.map(ip).into_iter().collect(),
        headless: cluster_ip.is_none(),
        external_name: None,
        ports: vec![port("http", 80, "TCP"), port("dns", 53, "UDP")],
        publish_not_ready: false,
    }
}

fn endpoint(address: &str, hostname: Option<&str>, ready: bool) -> EndpointEntry {
    EndpointEntry {
        addresses: vec![ip(address)],
        hostname: hostname.map(Into::into),
        ready,
    }
}

/// shop/web: ClusterIP 10.96.0.20 with two endpoints; shop/db: headless, db-0 and
/// db-1 ready, one not ready; shop/mail: ExternalName.
fn contents() -> Contents {
    let mut contents = Contents::default();
    let mut mail = service("shop", "mail", None);
    mail.headless = false;
    mail.external_name = Some("smtp.example.com".into());
    for s in [
        service("shop", "web", Some("10.96.0.20")),
        service("shop", "db", None),
        mail,
    ] {
        contents.services.insert((s.namespace.clone(), s.name.clone()), s);
    }
    let slices = [
        (
            "web-1",
            SliceEntry {
                namespace: "shop".into(),
                service: "web".into(),
                ports: vec![port("http", 8080, "TCP")],
                endpoints: vec![endpoint("10.244.1.5", None, true), endpoint("10.244.2.5", None, true)],
            },
        ),
        (
            "db-1",
            SliceEntry {
                namespace: "shop".into(),
                service: "db".into(),
                ports: vec![port("pg", 5432, "TCP")],
                endpoints: vec![
                    endpoint("10.244.1.7", Some("db-0"), true),
                    endpoint("10.244.2.7", Some("db-1"), true),
                    endpoint("10.244.3.7", Some("db-2"), false),
                    endpoint("10.244.3.8", None, true),
                ],
            },
        ),
    ];
    for (name, slice) in slices {
        contents.slices.insert(("shop".into(), name.into()), slice);
    }
    contents
}

fn zone() -> ZoneConfig {
    ZoneConfig::new("cluster.local")
}

/// The answer's records in a short form: "A 1.2.3.4", "SRV 5432 db-0....", "CNAME x".
fn short(reply: &Reply) -> Vec<String> {
    let mut out: Vec<String> = reply
        .answers
        .iter()
        .map(|r| match &r.data {
            RecordData::A(ip) => format!("A {ip}"),
            RecordData::Aaaa(ip) => format!("AAAA {ip}"),
            RecordData::Cname(t) => format!("CNAME {t}"),
            RecordData::Srv { port, target, .. } => format!("SRV {port} {target}"),
            RecordData::Soa { .. } => "SOA".into(),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_table_of_names() {
    let contents = contents();
    let cases: &[(&str, u16, u8, &[&str])] = &[
        ("web.shop.svc.cluster.local", TYPE_A, NOERROR, &["A 10.96.0.20"]),
        // Case and a trailing dot do not matter.
        ("WEB.Shop.SVC.Cluster.Local.", TYPE_A, NOERROR, &["A 10.96.0.20"]),
        // Headless: the ready endpoints, not the one that is not ready.
        (
            "db.shop.svc.cluster.local",
            TYPE_A,
            NOERROR,
            &["A 10.244.1.7", "A 10.244.2.7", "A 10.244.3.8"],
        ),
        // The pods' own names under a headless service, by hostname or address.
        ("db-0.db.shop.svc.cluster.local", TYPE_A, NOERROR, &["A 10.244.1.7"]),
        (
            "10-244-3-8.db.shop.svc.cluster.local",
            TYPE_A,
            NOERROR,
            &["A 10.244.3.8"],
        ),
        ("db-2.db.shop.svc.cluster.local", TYPE_A, NXDOMAIN, &[]),
        // SRV for a named port.
        (
            "_http._tcp.web.shop.svc.cluster.local",
            TYPE_SRV,
            NOERROR,
            &["SRV 80 web.shop.svc.cluster.local"],
        ),
        (
            "_pg._tcp.db.shop.svc.cluster.local",
            TYPE_SRV,
            NOERROR,
            &[
                "SRV 5432 10-244-3-8.db.shop.svc.cluster.local",
                "SRV 5432 db-0.db.shop.svc.cluster.local",
                "SRV 5432 db-1.db.shop.svc.cluster.local",
            ],
        ),
        (
            "_dns._udp.web.shop.svc.cluster.local",
            TYPE_SRV,
            NOERROR,
            &["SRV 53 web.shop.svc.cluster.local"],
        ),
        ("_dns._tcp.web.shop.svc.cluster.local", TYPE_SRV, NXDOMAIN, &[]),
        ("_nope._tcp.web.shop.svc.cluster.local", TYPE_SRV, NXDOMAIN, &[]),
        // SRV at the service's own name: every named port.
        (
            "web.shop.svc.cluster.local",
            TYPE_SRV,
            NOERROR,
            &["SRV 53 web.shop.svc.cluster.local", "SRV 80 web.shop.svc.cluster.local"],
        ),
        (
            "mail.shop.svc.cluster.local",
            TYPE_A,
            NOERROR,
            &["CNAME smtp.example.com"],
        ),
        // NODATA: the name exists, without records of that type.
        ("web.shop.svc.cluster.local", TYPE_AAAA, NOERROR, &[]),
        ("shop.svc.cluster.local", TYPE_A, NOERROR, &[]),
        ("svc.cluster.local", TYPE_A, NOERROR, &[]),
        ("cluster.local", TYPE_NS, NOERROR, &[]),
        ("cluster.local", TYPE_SOA, NOERROR, &["SOA"]),
        // NXDOMAIN: unknown names under the domain, such as the client's search
        // expansions of a name that is already whole.
        ("nope.shop.svc.cluster.local", TYPE_A, NXDOMAIN, &[]),
        ("web.elsewhere.svc.cluster.local", TYPE_A, NXDOMAIN, &[]),
        ("elsewhere.svc.cluster.local", TYPE_A, NXDOMAIN, &[]),
        (
            "web.shop.svc.cluster.local.shop.svc.cluster.local",
            TYPE_A,
            NXDOMAIN,
            &[],
        ),
        ("example.com.svc.cluster.local", TYPE_A, NXDOMAIN, &[]),
        ("a.b.c.d.e.f.cluster.local", TYPE_A, NXDOMAIN, &[]),
        // Pods by address (CoreDNS's "pods insecure").
        ("10-244-1-9.shop.pod.cluster.local", TYPE_A, NOERROR, &["A 10.244.1.9"]),
        ("not-an-ip.shop.pod.cluster.local", TYPE_A, NXDOMAIN, &[]),
    ];
    for (name, qtype, rcode, records) in cases {
        let reply = answer(&zone(), &contents, name, *qtype).unwrap_or_else(|| panic!("{name} is the cluster's"));
        assert_eq!(reply.rcode, *rcode, "{name} type {qtype}: {reply:?}");
        assert_eq!(short(&reply), *records, "{name} type {qtype}");
        assert!(reply.authoritative, "{name}");
        if records.is_empty() {
            assert!(
                matches!(
                    reply.authority[..],
                    [Record {
                        data: RecordData::Soa { .. },
                        ..
                    }]
                ),
                "{name}: a negative answer carries the SOA: {reply:?}"
            );
        }
    }
}

#[test]
fn names_outside_the_domain_are_not_answered_here() {
    for name in [
        "example.com",
        "cluster.local.example.com",
        "xcluster.local",
        "local",
        "",
    ] {
        assert_eq!(answer(&zone(), &contents(), name, TYPE_A), None, "{name:?}");
    }
}

#[test]
fn srv_answers_carry_their_targets_addresses_and_keep_the_asked_case() {
    let reply = answer(&zone(), &contents(), "_PG._TCP.db.shop.svc.cluster.local", TYPE_SRV).unwrap();
    assert_eq!(reply.answers[0].name, "_PG._TCP.db.shop.svc.cluster.local");
    let mut additional: Vec<(String, RecordData)> = reply
        .additional
        .iter()
        .map(|r| (r.name.clone(), r.data.clone()))
        .collect();
    additional.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        additional[1],
        (
            "db-0.db.shop.svc.cluster.local".to_string(),
            RecordData::address(ip("10.244.1.7"))
        )
    );
    assert_eq!(additional.len(), 3);
}

#[test]
fn publish_not_ready_addresses_names_every_endpoint() {
    let mut contents = contents();
    contents
        .services
        .get_mut(&("shop".into(), "db".into()))
        .unwrap()
        .publish_not_ready = true;
    let reply = answer(&zone(), &contents, "db-2.db.shop.svc.cluster.local", TYPE_A).unwrap();
    assert_eq!(short(&reply), ["A 10.244.3.7"]);
}

#[test]
fn a_headless_service_without_ready_endpoints_exists_without_addresses() {
    let mut contents = contents();
    contents.slices.remove(&("shop".into(), "db-1".into()));
    let reply = answer(&zone(), &contents, "db.shop.svc.cluster.local", TYPE_A).unwrap();
    assert_eq!((reply.rcode, reply.answers.len()), (NOERROR, 0));
}

#[test]
fn another_domain_is_honoured() {
    let zone = ZoneConfig::new("Corp.Example.");
    let reply = answer(&zone, &contents(), "web.shop.svc.corp.example", TYPE_A).unwrap();
    assert_eq!(short(&reply), ["A 10.96.0.20"]);
    assert_eq!(answer(&zone, &contents(), "web.shop.svc.cluster.local", TYPE_A), None);
}
