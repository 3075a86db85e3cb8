use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::{NodeInfo, PlacedPod, PodRequest, Strategy, schedule};

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Nodes n1 and n2 in zone z1, n3 in z2.
fn nodes() -> Vec<NodeInfo> {
    [("n1", "z1"), ("n2", "z1"), ("n3", "z2")]
        .iter()
        .map(|(name, zone)| NodeInfo {
            name: name.to_string(),
            is_ready: true,
            allocatable_cpu_millis: 4000,
            allocatable_memory_bytes: 8 << 30,
            labels: labels(&[(HOSTNAME, name), (ZONE, zone)]),
            ..Default::default()
        })
        .collect()
}

fn placed(app: &str) -> PlacedPod {
    PlacedPod {
        namespace: "default".into(),
        labels: labels(&[("app", app)]).into(),
        ..Default::default()
    }
}

fn pod(app: &str, affinity: serde_json::Value) -> PodRequest {
    PodRequest {
        name: "p".into(),
        namespace: "default".into(),
        labels: labels(&[("app", app)]).into(),
        affinity: Some(Arc::new(serde_json::from_value(affinity).unwrap())),
        ..Default::default()
    }
}

fn term(app: &str, key: &str) -> serde_json::Value {
    json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
}

fn allowed(pod: &PodRequest, nodes: &[NodeInfo]) -> Vec<String> {
    let state = super::InterPodAffinity::new(pod, nodes);
    nodes
        .iter()
        .filter(|n| state.check(pod, n).is_ok())
        .map(|n| n.name.clone())
        .collect()
}

#[test]
fn required_affinity_follows_the_matching_pods_domain() {
    let mut nodes = nodes();
    nodes[1].place(placed("db"));
    let by_zone = pod(
        "web",
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", ZONE)]}}),
    );
    assert_eq!(allowed(&by_zone, &nodes), ["n1", "n2"]);
    let by_host = pod(
        "web",
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", HOSTNAME)]}}),
    );
    assert_eq!(allowed(&by_host, &nodes), ["n2"]);
    let err = schedule(&by_host, &nodes[..1], Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."
    );
}

#[test]
fn the_first_pod_of_a_group_that_matches_itself_goes_anywhere() {
    let mut nodes = nodes();
    let together = pod(
        "cache",
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", ZONE)]}}),
    );
    assert_eq!(
        allowed(&together, &nodes),
        ["n1", "n2", "n3"],
        "no cache pod anywhere yet"
    );
    let elsewhere = pod(
        "web",
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", ZONE)]}}),
    );
    assert!(
        allowed(&elsewhere, &nodes).is_empty(),
        "a pod that does not match its own term waits"
    );
    nodes[2].place(placed("cache"));
    assert_eq!(allowed(&together, &nodes), ["n3"], "once one runs, the rest follow it");
}

#[test]
fn required_anti_affinity_keeps_pods_apart_both_ways() {
    let mut nodes = nodes();
    let apart = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", HOSTNAME)]}});
    nodes[0].place(PlacedPod {
        affinity: Some(Arc::new(serde_json::from_value(apart.clone()).unwrap())),
        ..placed("web")
    });
    let replica = pod("web", apart);
    assert_eq!(allowed(&replica, &nodes), ["n2", "n3"]);
    // A pod without terms of its own is kept off n1 by the placed pod's.
    let plain = PodRequest {
        affinity: None,
        ..replica.clone()
    };
    assert_eq!(allowed(&plain, &nodes), ["n2", "n3"]);
    let err = schedule(&plain, &nodes[..1], Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
    );
    nodes[1].place(placed("web"));
    nodes[2].place(placed("web"));
    let err = schedule(&replica, &nodes, Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    );
}

#[test]
fn terms_select_pods_by_namespace_names_and_labels() {
    let mut nodes = nodes();
    nodes[0].place(PlacedPod {
        namespace: "other".into(),
        namespace_labels: labels(&[("team", "blue")]).into(),
        ..placed("db")
    });
    let anti = |extra: serde_json::Value| {
        let mut t = term("db", HOSTNAME);
        t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        pod(
            "web",
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
        )
    };
    assert_eq!(allowed(&anti(json!({})), &nodes).len(), 3, "its own namespace only");
    assert_eq!(allowed(&anti(json!({"namespaces": ["other"]})), &nodes), ["n2", "n3"]);
    let by_label = anti(json!({"namespaceSelector": {"matchLabels": {"team": "blue"}}}));
    assert_eq!(allowed(&by_label, &nodes), ["n2", "n3"]);
    let other_team = anti(json!({"namespaceSelector": {"matchLabels": {"team": "red"}}}));
    assert_eq!(allowed(&other_team, &nodes).len(), 3);
    assert_eq!(
        allowed(&anti(json!({"namespaceSelector": {}})), &nodes),
        ["n2", "n3"],
        "{{}}: all"
    );
}

#[test]
fn preferred_terms_score_domains_both_ways() {
    let mut nodes = nodes();
    nodes[2].place(placed("db"));
    let near_db = pod(
        "web",
        json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": term("db", ZONE)}]}}),
    );
    assert_eq!(schedule(&near_db, &nodes, Strategy::Spread), Ok("n3".into()));
    let fits: Vec<&NodeInfo> = nodes.iter().collect();
    assert_eq!(super::scores(&near_db, &fits, &nodes), [0, 0, 100]);
    let away = pod(
        "web",
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": term("db", ZONE)}]}}),
    );
    assert_eq!(super::scores(&away, &fits, &nodes), [100, 100, 0]);
    // The placed pod's preferred anti-affinity keeps web pods away from it too.
    let avoids_web = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 20, "podAffinityTerm": term("web", ZONE)}]}});
    let mut db = nodes[2].pods.remove(0);
    db.affinity = Some(Arc::new(serde_json::from_value(avoids_web).unwrap()));
    nodes[2].place(db);
    let plain = PodRequest {
        affinity: None,
        ..near_db
    };
    assert_eq!(super::scores(&plain, &fits_of(&nodes), &nodes), [100, 100, 0]);
}

fn fits_of(nodes: &[NodeInfo]) -> Vec<&NodeInfo> {
    nodes.iter().collect()
}

#[test]
fn match_and_mismatch_label_keys_narrow_a_term_by_its_owners_labels() {
    let mut nodes = nodes();
    let version = |v: &str| PlacedPod {
        labels: labels(&[("app", "web"), ("version", v)]).into(),
        ..placed("web")
    };
    nodes[0].place(version("1"));
    nodes[1].place(version("2"));
    let apart = |keys: serde_json::Value| {
        let mut t = term("web", HOSTNAME);
        t.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        let mut p = pod(
            "web",
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
        );
        Arc::make_mut(&mut p.labels).insert("version".into(), "2".into());
        p
    };
    assert_eq!(allowed(&apart(json!({})), &nodes), ["n3"]);
    // Apart from its own version only: v1 may share n1.
    assert_eq!(
        allowed(&apart(json!({"matchLabelKeys": ["version"]})), &nodes),
        ["n1", "n3"]
    );
    // Apart from the other versions only: it may join v2 on n2.
    assert_eq!(
        allowed(&apart(json!({"mismatchLabelKeys": ["version"]})), &nodes),
        ["n2", "n3"]
    );
    // A key the owner lacks narrows nothing.
    assert_eq!(allowed(&apart(json!({"matchLabelKeys": ["tier"]})), &nodes), ["n3"]);
}

#[test]
fn a_pod_without_terms_is_weighed_against_the_placed_pods_with_terms_only() {
    let mut nodes = nodes();
    for _ in 0..50 {
        nodes[0].place(placed("web"));
        nodes[2].place(placed("web"));
    }
    // One placed pod on n2 keeps web pods off its node.
    let mut keeper = placed("db");
    keeper.affinity = Some(Arc::new(
        serde_json::from_value(
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("web", HOSTNAME)]}}),
        )
        .unwrap(),
    ));
    nodes[1].place(keeper);
    let counted = |n: &NodeInfo, all: bool| n.pods_for_affinity(all).count();
    assert_eq!(
        nodes.iter().map(|n| n.pods_with_affinity).collect::<Vec<_>>(),
        [0, 1, 0]
    );
    assert_eq!(nodes.iter().map(|n| counted(n, false)).collect::<Vec<_>>(), [0, 1, 0]);
    assert_eq!(nodes.iter().map(|n| counted(n, true)).collect::<Vec<_>>(), [50, 1, 50]);
    let plain = PodRequest {
        labels: labels(&[("app", "web")]).into(),
        ..pod("web", json!({}))
    };
    let plain = PodRequest {
        affinity: None,
        ..plain
    };
    assert_eq!(allowed(&plain, &nodes), ["n1", "n3"]);
    // A pod with terms of its own still counts every placed pod.
    let apart = pod(
        "web",
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", ZONE)]}}),
    );
    assert!(allowed(&apart, &nodes).is_empty(), "web pods are in both zones");
}
