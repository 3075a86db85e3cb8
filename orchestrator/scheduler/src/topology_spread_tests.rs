use std::collections::BTreeMap;

use serde_json::json;

use crate::{NodeInfo, PlacedPod, PodRequest, Strategy, schedule};

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn node(name: &str, zone: &str, web_pods: usize) -> NodeInfo {
    NodeInfo {
        name: name.to_string(),
        is_ready: true,
        allocatable_cpu_millis: 4000,
        allocatable_memory_bytes: 8 << 30,
        labels: labels(&[(HOSTNAME, name), (ZONE, zone)]),
        pods: vec![web(); web_pods],
        ..Default::default()
    }
}

fn web() -> PlacedPod {
    PlacedPod {
        namespace: "default".into(),
        labels: labels(&[("app", "web"), ("version", "1")]).into(),
        ..Default::default()
    }
}

fn pod(constraints: serde_json::Value) -> PodRequest {
    PodRequest {
        name: "p".into(),
        namespace: "default".into(),
        labels: labels(&[("app", "web"), ("version", "2")]).into(),
        topology_spread_constraints: serde_json::from_value(constraints).unwrap(),
        ..Default::default()
    }
}

fn constraint(key: &str, max_skew: i32, when: &str) -> serde_json::Value {
    json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
           "labelSelector": {"matchLabels": {"app": "web"}}})
}

fn allowed(pod: &PodRequest, nodes: &[NodeInfo]) -> Vec<String> {
    let state = super::TopologySpread::new(pod, nodes);
    nodes
        .iter()
        .filter(|n| state.check(pod, n).is_ok())
        .map(|n| n.name.clone())
        .collect()
}

#[test]
fn do_not_schedule_keeps_the_skew_within_max_skew() {
    let nodes = [node("a", "z1", 2), node("b", "z1", 1), node("c", "z2", 1)];
    let one = pod(json!([constraint(HOSTNAME, 1, "DoNotSchedule")]));
    assert_eq!(allowed(&one, &nodes), ["b", "c"]);
    let two = pod(json!([constraint(HOSTNAME, 2, "DoNotSchedule")]));
    assert_eq!(allowed(&two, &nodes), ["a", "b", "c"]);
    // By zone: z1 holds 3, z2 holds 1.
    let zones = pod(json!([constraint(ZONE, 1, "DoNotSchedule")]));
    assert_eq!(allowed(&zones, &nodes), ["c"]);
    assert_eq!(allowed(&zones, &nodes[..2]), ["a", "b"], "one zone alone has no skew");
}

#[test]
fn a_node_without_the_key_or_beyond_the_skew_is_explained() {
    let mut bare = node("bare", "z1", 0);
    bare.labels.remove(ZONE);
    let nodes = [node("a", "z1", 3), node("b", "z2", 1), bare];
    let zones = pod(json!([constraint(ZONE, 1, "DoNotSchedule")]));
    let mut b_down = nodes.to_vec();
    b_down[1].is_ready = false;
    let err = schedule(&zones, &b_down, Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/3 nodes are available: 1 node(s) didn't match pod topology spread constraints, \
         1 node(s) didn't match pod topology spread constraints (missing required label), 1 node(s) were not ready."
    );
}

#[test]
fn only_pods_the_selector_and_match_label_keys_pick_count() {
    let nodes = [node("a", "z1", 2), node("b", "z2", 0)];
    let mut c = constraint(HOSTNAME, 1, "DoNotSchedule");
    c["matchLabelKeys"] = json!(["version"]);
    // Only version=2 pods count: none yet, so a is as good as b.
    assert_eq!(allowed(&pod(json!([c])), &nodes), ["a", "b"]);
    let mut none = constraint(HOSTNAME, 1, "DoNotSchedule");
    none.as_object_mut().unwrap().remove("labelSelector");
    assert_eq!(
        allowed(&pod(json!([none])), &nodes),
        ["a", "b"],
        "no selector: nothing counts"
    );
    let mut elsewhere = nodes.to_vec();
    elsewhere[0].pods.iter_mut().for_each(|p| p.namespace = "other".into());
    let one = pod(json!([constraint(HOSTNAME, 1, "DoNotSchedule")]));
    assert_eq!(allowed(&one, &elsewhere), ["a", "b"], "other namespaces do not count");
}

#[test]
fn min_domains_counts_missing_domains_as_empty() {
    let nodes = [node("a", "z1", 1), node("b", "z2", 1)];
    let mut c = constraint(ZONE, 1, "DoNotSchedule");
    assert_eq!(allowed(&pod(json!([c.clone()])), &nodes), ["a", "b"]);
    c["minDomains"] = json!(3);
    assert!(
        allowed(&pod(json!([c])), &nodes).is_empty(),
        "a third zone would hold 0"
    );
}

#[test]
fn inclusion_policies_choose_the_nodes_that_count() {
    let mut tainted = node("t", "z2", 0);
    tainted.taints.push(berth_api::objects::Taint {
        key: "dedicated".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    });
    let mut other_pool = node("o", "z3", 0);
    other_pool.labels.insert("pool".into(), "batch".into());
    let mut nodes = vec![node("a", "z1", 1), tainted, other_pool];
    for n in &mut nodes[..2] {
        n.labels.insert("pool".into(), "web".into());
    }
    let mut c = constraint(ZONE, 1, "DoNotSchedule");
    let mut p = pod(json!([c.clone()]));
    p.node_selector.insert("pool".into(), "web".into());
    // Honor node affinity (default), ignore taints (default): z1 holds 1, z2 holds 0.
    let state = super::TopologySpread::new(&p, &nodes);
    assert!(state.check(&p, &nodes[0]).is_err());
    c["nodeTaintsPolicy"] = json!("Honor");
    p.topology_spread_constraints = serde_json::from_value(json!([c.clone()])).unwrap();
    let state = super::TopologySpread::new(&p, &nodes);
    assert!(state.check(&p, &nodes[0]).is_ok(), "z1 is the only domain counted");
    c["nodeAffinityPolicy"] = json!("Ignore");
    p.topology_spread_constraints = serde_json::from_value(json!([c])).unwrap();
    let state = super::TopologySpread::new(&p, &nodes);
    assert!(
        state.check(&p, &nodes[0]).is_err(),
        "z3, of the other pool, counts, empty"
    );
}

#[test]
fn schedule_anyway_prefers_the_emptier_domain_and_replaces_the_default_spread() {
    let nodes = [node("a", "z1", 3), node("b", "z2", 1)];
    let soft = pod(json!([constraint(ZONE, 1, "ScheduleAnyway")]));
    let fits: Vec<&NodeInfo> = nodes.iter().collect();
    let scores = super::scores(&soft, &fits, &nodes).unwrap();
    assert!(scores[1] > scores[0], "{scores:?}");
    assert_eq!(schedule(&soft, &nodes, Strategy::Spread), Ok("b".into()));
    assert_eq!(
        schedule(&soft, &nodes, Strategy::BinPack),
        Ok("b".into()),
        "bin-pack too"
    );
    let hard_only = pod(json!([constraint(ZONE, 5, "DoNotSchedule")]));
    assert_eq!(super::scores(&hard_only, &fits, &nodes), None);
    // With a constraint of its own the default spread is off: nothing tells a from
    // b then but the name.
    let mut defaulted = hard_only.clone();
    defaulted.spread_selector = Some(berth_api::meta::match_labels(labels(&[("app", "web")])));
    assert_eq!(schedule(&defaulted, &nodes, Strategy::Spread), Ok("a".into()));
    let mut unlabelled = nodes.to_vec();
    unlabelled[0].labels.remove(ZONE);
    let fits: Vec<&NodeInfo> = unlabelled.iter().collect();
    assert_eq!(super::scores(&soft, &fits, &unlabelled), Some(vec![0, 100]));
}
