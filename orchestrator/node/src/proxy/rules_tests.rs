use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;
use crate::proxy::model::service_ports;

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// An endpoint: (ip, ready, serving, terminating, node).
type Ep<'a> = (&'a str, Option<bool>, Option<bool>, Option<bool>, &'a str);

fn slice(name: &str, service: &str, ports: Value, endpoints: &[Ep]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready, serving, terminating, node)| {
            json!({
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "nodeName": node,
            })
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn ready(ip: &str) -> Ep<'_> {
    (ip, Some(true), Some(true), Some(false), "node-b")
}

fn node() -> ProxyNode {
    ProxyNode {
        name: "node-a".into(),
        chains: ChainNames::new("berth0"),
        pod_bridge: Some("berth0".into()),
    }
}

fn rules(services: &[Service], slices: &[EndpointSlice]) -> Ruleset {
    ruleset(&service_ports(services, slices), &node(), &BTreeMap::new(), true, &[])
}

fn web(extra: Value) -> Service {
    let mut spec = json!({"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    service("web", spec)
}

fn http_port() -> Value {
    json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
}

/// The rules of one chain, without `-A <chain> `.
fn chain_rules(ruleset: &Ruleset, chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    ruleset
        .text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(String::from))
        .collect()
}

/// The rules of one chain of the nat table.
fn nat_rules(ruleset: &Ruleset, chain: &str) -> Vec<String> {
    let nat = &ruleset.text[ruleset.text.find("*nat").unwrap()..];
    let prefix = format!("-A {chain} ");
    nat.lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(String::from))
        .collect()
}

fn names() -> ChainNames {
    ChainNames::new("berth0")
}

fn svc_chain(display: &str) -> String {
    names().service_port("SVC", display, "tcp")
}

fn sep_chain(display: &str, address: &str) -> String {
    names().endpoint(display, "tcp", address)
}

#[test]
fn a_cluster_ip_with_one_endpoint_is_the_whole_kube_proxy_path() {
    let ruleset = rules(
        &[web(json!({}))],
        &[slice("web-1", "web", http_port(), &[ready("10.244.1.5")])],
    );
    let svc = svc_chain("default/web:http");
    let sep = sep_chain("default/web:http", "10.244.1.5:8080");
    let expected = format!(
        "*filter
:BERTH-SVCS-berth0 - [0:0]
:BERTH-NP-berth0 - [0:0]
:BERTH-FWD-berth0 - [0:0]
-A BERTH-NP-berth0 ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A BERTH-FWD-berth0 -m comment --comment \"berth forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A BERTH-FWD-berth0 -m comment --comment \"berth forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:BERTH-SVCS-berth0 - [0:0]
:BERTH-NP-berth0 - [0:0]
:BERTH-POST-berth0 - [0:0]
:{svc} - [0:0]
:{sep} - [0:0]
-A BERTH-SVCS-berth0 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment \"default/web:http cluster IP\" -j {svc}
-A BERTH-SVCS-berth0 -m comment --comment \"berth service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j BERTH-NP-berth0
-A BERTH-POST-berth0 -m mark ! --mark 0x4000/0x4000 -j RETURN
-A BERTH-POST-berth0 -j MARK --xor-mark 0x4000
-A BERTH-POST-berth0 -m comment --comment \"berth service traffic requiring SNAT\" -j MASQUERADE --random-fully
-A {svc} -m comment --comment \"default/web:http -> 10.244.1.5:8080\" -j {sep}
-A {sep} -m comment --comment \"default/web:http\" -s 10.244.1.5/32 -j MARK --or-mark 0x4000
-A {sep} -m comment --comment \"default/web:http\" -p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080
COMMIT
"
    );
    assert_eq!(ruleset.text, expected);
    assert!(
        ruleset.chains.contains_key(&(Table::Nat, sep))
            && ruleset.chains.contains_key(&(Table::Filter, names().forward()))
    );
}

#[test]
fn endpoints_share_the_traffic_evenly_at_random() {
    let ruleset = rules(
        &[web(json!({}))],
        &[
            slice("web-1", "web", http_port(), &[ready("10.244.1.5"), ready("10.244.2.5")]),
            // A second slice of the same Service; an address listed twice counts once.
            slice("web-2", "web", http_port(), &[ready("10.244.3.5"), ready("10.244.1.5")]),
        ],
    );
    let display = "default/web:http";
    let balancing = chain_rules(&ruleset, &svc_chain(display));
    let expected: Vec<String> = [
        ("10.244.1.5:8080", Some("0.3333333333")),
        ("10.244.2.5:8080", Some("0.5000000000")),
        ("10.244.3.5:8080", None),
    ]
    .iter()
    .map(|(address, probability)| {
        let statistic = probability
            .map(|p| format!(" -m statistic --mode random --probability {p}"))
            .unwrap_or_default();
        format!(
            "-m comment --comment \"{display} -> {address}\"{statistic} -j {}",
            sep_chain(display, address)
        )
    })
    .collect();
    assert_eq!(balancing, expected);
}

#[test]
fn a_service_without_endpoints_rejects_at_once_instead_of_hanging() {
    let np = web(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
    let not_ready = ("10.244.1.5", Some(false), Some(false), Some(false), "node-b");
    let ruleset = rules(&[np], &[slice("web-1", "web", http_port(), &[not_ready])]);
    assert_eq!(
        chain_rules(&ruleset, "BERTH-SVCS-berth0")[..1],
        [
            "-d 10.96.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment \"default/web:http has no endpoints\" -j REJECT --reject-with icmp-port-unreachable"
        ]
    );
    assert_eq!(
        chain_rules(&ruleset, "BERTH-NP-berth0")[1..],
        [
            "-m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30080 -m comment --comment \"default/web:http has no endpoints\" -j REJECT --reject-with icmp-port-unreachable"
        ]
    );
    assert!(
        !ruleset.text.contains("BERTH-SVC-") && !ruleset.text.contains("BERTH-SEP-"),
        "no nat rules for it:\n{}",
        ruleset.text
    );
}

#[test]
fn terminating_endpoints_that_still_serve_are_used_only_while_none_is_ready() {
    let display = "default/web:http";
    let terminating = ("10.244.1.5", Some(false), Some(true), Some(true), "node-b");
    let gone = ("10.244.2.5", Some(false), Some(false), Some(true), "node-b");
    let ruleset = rules(
        &[web(json!({}))],
        &[slice("web-1", "web", http_port(), &[terminating, gone])],
    );
    assert_eq!(
        chain_rules(&ruleset, &svc_chain(display)),
        [format!(
            "-m comment --comment \"{display} -> 10.244.1.5:8080\" -j {}",
            sep_chain(display, "10.244.1.5:8080")
        )]
    );
    let with_ready = rules(
        &[web(json!({}))],
        &[slice("web-1", "web", http_port(), &[terminating, ready("10.244.3.5")])],
    );
    let balancing = chain_rules(&with_ready, &svc_chain(display));
    assert_eq!(balancing.len(), 1);
    assert!(balancing[0].contains("10.244.3.5:8080"), "{balancing:?}");
    // Conditions left unset: ready, serving, not terminating (the API's meaning).
    let unset = rules(
        &[web(json!({}))],
        &[slice(
            "web-1",
            "web",
            http_port(),
            &[("10.244.4.5", None, None, None, "node-b")],
        )],
    );
    assert!(chain_rules(&unset, &svc_chain(display))[0].contains("10.244.4.5:8080"));
}

#[test]
fn client_ip_affinity_sends_a_client_back_to_its_endpoint_until_the_timeout() {
    let display = "default/web:http";
    let affinity =
        web(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
    let ruleset = rules(
        &[affinity],
        &[slice(
            "web-1",
            "web",
            http_port(),
            &[ready("10.244.1.5"), ready("10.244.2.5")],
        )],
    );
    let sep1 = sep_chain(display, "10.244.1.5:8080");
    let balancing = chain_rules(&ruleset, &svc_chain(display));
    assert_eq!(
        balancing[0],
        format!(
            "-m comment --comment \"{display} -> 10.244.1.5:8080\" -m recent --name {sep1} --rcheck --seconds 60 --reap -j {sep1}"
        )
    );
    assert_eq!(
        balancing.len(),
        4,
        "two affinity checks, then the balancing: {balancing:?}"
    );
    assert_eq!(
        chain_rules(&ruleset, &sep1)[1],
        format!(
            "-m comment --comment \"{display}\" -p tcp -m recent --name {sep1} --set --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.5:8080"
        )
    );
    let default_timeout = rules(
        &[web(json!({"sessionAffinity": "ClientIP"}))],
        &[slice("web-1", "web", http_port(), &[ready("10.244.1.5")])],
    );
    assert!(default_timeout.text.contains("--seconds 10800 --reap"));
}

#[test]
fn each_port_of_a_multi_port_service_goes_to_the_slice_port_of_its_name() {
    let multi = web(json!({"ports": [
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    ]}));
    let ports = json!([
        {"name": "http", "port": 8080, "protocol": "TCP"},
        {"name": "dns", "port": 5353, "protocol": "UDP"},
    ]);
    let ruleset = rules(&[multi], &[slice("web-1", "web", ports, &[ready("10.244.1.5")])]);
    let services = chain_rules(&ruleset, "BERTH-SVCS-berth0");
    let dns_svc = names().service_port("SVC", "default/web:dns", "udp");
    assert!(
        services.contains(&format!(
            "-d 10.96.0.10/32 -p udp -m udp --dport 53 -m comment --comment \"default/web:dns cluster IP\" -j {dns_svc}"
        )),
        "{services:?}"
    );
    let dns_sep = names().endpoint("default/web:dns", "udp", "10.244.1.5:5353");
    assert!(chain_rules(&ruleset, &dns_sep)[1].ends_with("-p udp -m udp -j DNAT --to-destination 10.244.1.5:5353"));
    assert!(ruleset.text.contains("--to-destination 10.244.1.5:8080"));
}

#[test]
fn a_node_port_is_masqueraded_and_balanced_over_every_endpoint() {
    let display = "default/web:http";
    let np = web(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
    let ruleset = rules(&[np], &[slice("web-1", "web", http_port(), &[ready("10.244.1.5")])]);
    let ext = names().service_port("EXT", display, "tcp");
    assert_eq!(
        nat_rules(&ruleset, "BERTH-NP-berth0"),
        [format!(
            "-p tcp -m tcp --dport 30080 -m comment --comment \"{display}\" -j {ext}"
        )]
    );
    assert_eq!(
        chain_rules(&ruleset, &ext),
        [
            format!(
                "-m comment --comment \"masquerade traffic for {display} external destinations\" -j MARK --or-mark 0x4000"
            ),
            format!("-j {}", svc_chain(display)),
        ]
    );
}

#[test]
fn local_policies_keep_traffic_on_this_nodes_endpoints() {
    let display = "default/web:http";
    let here = ("10.244.0.5", Some(true), Some(true), Some(false), "node-a");
    let spec = json!({"type": "NodePort", "internalTrafficPolicy": "Local", "externalTrafficPolicy": "Local",
                      "ports": [{"name": "http", "port": 80, "nodePort": 30080}]});
    let ruleset = rules(
        &[web(spec.clone())],
        &[slice("web-1", "web", http_port(), &[here, ready("10.244.1.5")])],
    );
    let svl = names().service_port("SVL", display, "tcp");
    assert_eq!(chain_rules(&ruleset, &svl).len(), 1);
    assert!(chain_rules(&ruleset, &svl)[0].contains("10.244.0.5:8080"));
    assert!(chain_rules(&ruleset, "BERTH-SVCS-berth0")[0].ends_with(&format!("-j {svl}")));
    let ext_chain = names().service_port("EXT", display, "tcp");
    let ext = chain_rules(&ruleset, &ext_chain);
    let svc = svc_chain(display);
    assert_eq!(
        ext,
        [
            format!("-m comment --comment \"pod traffic for {display} external destinations\" -i berth0 -j {svc}"),
            format!(
                "-m comment --comment \"masquerade LOCAL traffic for {display} external destinations\" \
                 -m addrtype --src-type LOCAL -j MARK --or-mark 0x4000"
            ),
            format!(
                "-m comment --comment \"route LOCAL traffic for {display} external destinations\" \
                 -m addrtype --src-type LOCAL -j {svc}"
            ),
            format!("-j {svl}"),
        ]
    );
    assert_eq!(
        nat_rules(&ruleset, "BERTH-NP-berth0"),
        [format!(
            "-p tcp -m tcp --dport 30080 -m comment --comment \"{display}\" -j {ext_chain}"
        )]
    );
    assert_eq!(
        chain_rules(&ruleset, "BERTH-NP-berth0").len(),
        1 + 1,
        "only the localnet rule in filter"
    );

    // Endpoints elsewhere only: the cluster IP drops on this node (Local internal
    // policy); the node port still goes through EXT, where this node's pods and the
    // node itself reach the endpoints elsewhere, and the rest falls through to the
    // filter's DROP.
    let elsewhere = rules(
        &[web(spec)],
        &[slice("web-1", "web", http_port(), &[ready("10.244.1.5")])],
    );
    assert!(chain_rules(&elsewhere, "BERTH-SVCS-berth0")[0].ends_with("has no local endpoints\" -j DROP"));
    let ext = chain_rules(&elsewhere, &ext_chain);
    assert_eq!(ext.len(), 3, "{ext:?}");
    assert!(
        ext.iter()
            .all(|rule| rule.ends_with(&format!("-j {svc}")) || rule.contains("-j MARK"))
    );
    assert_eq!(
        chain_rules(&elsewhere, "BERTH-NP-berth0")[1..],
        [
            format!(
                "-m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30080 -m comment --comment \"{display} has no \
                 local endpoints\" -j DROP"
            ),
            format!("-p tcp -m tcp --dport 30080 -m comment --comment \"{display}\" -j {ext_chain}"),
        ]
    );
    assert!(!elsewhere.text.contains("BERTH-SVL-"), "{}", elsewhere.text);
}

#[test]
fn external_ips_go_through_ext_and_are_refused_in_filter_without_endpoints() {
    let display = "default/web:http";
    let spec = json!({"externalIPs": ["192.0.2.10"], "externalTrafficPolicy": "Cluster"});
    let ruleset = rules(
        &[web(spec.clone())],
        &[slice("web-1", "web", http_port(), &[ready("10.244.1.5")])],
    );
    let ext = names().service_port("EXT", display, "tcp");
    assert!(
        chain_rules(&ruleset, "BERTH-SVCS-berth0").contains(&format!(
            "-d 192.0.2.10/32 -p tcp -m tcp --dport 80 -m comment --comment \"{display} external IP\" -j {ext}"
        )),
        "{}",
        ruleset.text
    );
    assert_eq!(chain_rules(&ruleset, &ext)[1], format!("-j {}", svc_chain(display)));
    let none = rules(&[web(spec)], &[]);
    assert!(!none.text.contains("BERTH-EXT-"), "{}", none.text);
    assert_eq!(
        chain_rules(&none, "BERTH-NP-berth0")[1..],
        [format!(
            "-d 192.0.2.10/32 -p tcp -m tcp --dport 80 -m comment --comment \"{display} has no endpoints\" \
             -j REJECT --reject-with icmp-port-unreachable"
        )]
    );
}

#[test]
fn headless_and_external_name_services_get_no_rules() {
    let headless = service("db", json!({"clusterIP": "None", "ports": [{"port": 5432}]}));
    let external = service("ext", json!({"type": "ExternalName", "externalName": "example.com"}));
    let ruleset = rules(
        &[headless, external],
        &[slice("db-1", "db", json!([{"port": 5432}]), &[ready("10.244.1.5")])],
    );
    assert!(!ruleset.text.contains("10.244.1.5"), "{}", ruleset.text);
}

#[test]
fn chains_no_longer_needed_are_deleted_and_missing_jumps_added() {
    let old = (Table::Nat, names().service_port("SVC", "default/gone", "tcp"));
    let previous = BTreeMap::from([
        (old.clone(), String::new()),
        ((Table::Nat, names().services()), String::new()),
    ]);
    let missing: Vec<Jump> = jumps(&names())
        .into_iter()
        .filter(|j| j.from == "POSTROUTING" || j.from == "FORWARD")
        .collect();
    let ruleset = ruleset(&[], &node(), &previous, false, &missing);
    let text = &ruleset.text;
    assert!(
        text.contains(&format!(":{} - [0:0]\n", old.1)),
        "flushed first:\n{text}"
    );
    assert!(text.contains(&format!("-X {}\nCOMMIT", old.1)), "then deleted:\n{text}");
    assert!(!text.contains("-X BERTH-SVCS"), "{text}");
    assert!(!ruleset.chains.contains_key(&old));
    assert!(text.contains("-I POSTROUTING 1 -m comment --comment \"berth postrouting rules\" -j BERTH-POST-berth0\n"));
    assert!(text.contains("-I FORWARD 1 -m conntrack --ctstate NEW -j BERTH-SVCS-berth0\n"));
    assert!(text.contains("-A FORWARD -j BERTH-FWD-berth0\n"));
    assert!(!text.contains("PREROUTING"));
}

#[test]
fn a_change_rewrites_only_the_chains_it_touches_and_a_full_sync_all() {
    let other = service(
        "db",
        json!({"clusterIP": "10.96.0.11", "ports": [{"name": "sql", "port": 5432}]}),
    );
    let db_slice = slice(
        "db-1",
        "db",
        json!([{"name": "sql", "port": 5432}]),
        &[ready("10.244.1.7")],
    );
    let before = service_ports(
        &[web(json!({})), other.clone()],
        &[
            slice("web-1", "web", http_port(), &[ready("10.244.1.5")]),
            db_slice.clone(),
        ],
    );
    let first = ruleset(&before, &node(), &BTreeMap::new(), true, &[]);
    let after = service_ports(
        &[web(json!({})), other],
        &[slice("web-1", "web", http_port(), &[ready("10.244.2.5")]), db_slice],
    );
    let change = ruleset(&after, &node(), &first.chains, false, &[]);
    let declared: Vec<&str> = change.text.lines().filter_map(|l| l.strip_prefix(':')).collect();
    let web_svc = svc_chain("default/web:http");
    let old_sep = sep_chain("default/web:http", "10.244.1.5:8080");
    let new_sep = sep_chain("default/web:http", "10.244.2.5:8080");
    assert_eq!(
        declared,
        [
            format!("{web_svc} - [0:0]"),
            format!("{new_sep} - [0:0]"),
            format!("{old_sep} - [0:0]")
        ],
        "the web Service's chains and nothing of db's (the entry chains did not change):\n{}",
        change.text
    );
    assert!(change.text.contains(&format!("-X {old_sep}\n")));
    assert_eq!(
        change.chains,
        ruleset(&after, &node(), &BTreeMap::new(), true, &[]).chains,
        "what it leaves is what a full sync leaves"
    );
    let nothing = ruleset(&after, &node(), &change.chains, false, &[]);
    assert_eq!(nothing.text, "*filter\nCOMMIT\n*nat\nCOMMIT\n");
    let full = ruleset(&after, &node(), &change.chains, true, &[]);
    assert!(full.text.contains(&svc_chain("default/db:sql")));
}
