use serde_json::json;
use std::sync::Arc;

use crate::{NodeInfo, PodRequest, Strategy, schedule};

fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        is_ready: true,
        allocatable_cpu_millis: 4000,
        allocatable_memory_bytes: 8 << 30,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

fn with_affinity(affinity: serde_json::Value) -> PodRequest {
    PodRequest {
        name: "p".into(),
        namespace: "default".into(),
        affinity: Some(Arc::new(serde_json::from_value(affinity).unwrap())),
        ..Default::default()
    }
}

fn required(terms: serde_json::Value) -> PodRequest {
    with_affinity(
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}),
    )
}

fn nodes() -> Vec<NodeInfo> {
    vec![
        node("a", &[("disk", "ssd"), ("cores", "8")]),
        node("b", &[("disk", "hdd"), ("cores", "2")]),
        node("c", &[("cores", "16")]),
    ]
}

/// Which of the three nodes the pod may go to.
fn allowed(pod: &PodRequest) -> Vec<String> {
    nodes()
        .iter()
        .filter(|n| super::matches(pod, n))
        .map(|n| n.name.clone())
        .collect()
}

#[test]
fn each_operator_selects_as_kubernetes_does() {
    let expression = |e: serde_json::Value| required(json!([{"matchExpressions": [e]}]));
    let cases = [
        (
            json!({"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}),
            vec!["a"],
        ),
        (
            json!({"key": "disk", "operator": "NotIn", "values": ["ssd"]}),
            vec!["b", "c"],
        ),
        (json!({"key": "disk", "operator": "Exists"}), vec!["a", "b"]),
        (json!({"key": "disk", "operator": "DoesNotExist"}), vec!["c"]),
        (
            json!({"key": "cores", "operator": "Gt", "values": ["4"]}),
            vec!["a", "c"],
        ),
        (json!({"key": "cores", "operator": "Lt", "values": ["8"]}), vec!["b"]),
    ];
    for (requirement, expected) in cases {
        assert_eq!(allowed(&expression(requirement.clone())), expected, "{requirement}");
    }
}

#[test]
fn terms_are_ored_and_expressions_anded_and_fields_match_the_name() {
    let pod = required(json!([
        {"matchExpressions": [{"key": "disk", "operator": "Exists"}, {"key": "cores", "operator": "Gt", "values": ["4"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}
    ]));
    assert_eq!(allowed(&pod), ["a", "c"]);
    let empty_term = required(json!([{}]));
    assert!(allowed(&empty_term).is_empty(), "an empty term selects no node");
}

#[test]
fn node_selector_and_required_affinity_must_both_hold_and_say_so() {
    let mut pod = required(json!([{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]));
    pod.node_selector.insert("cores".into(), "2".into());
    assert_eq!(allowed(&pod), ["b"]);
    pod.node_selector.insert("cores".into(), "16".into());
    let err = schedule(&pod, &nodes(), Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    );
}

#[test]
fn preferred_terms_weigh_by_their_weights() {
    let pod = with_affinity(
        json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
            {"weight": 50, "preference": {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["10"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "cores", "operator": "Exists"}]}}
        ]}}),
    );
    let weights: Vec<i64> = nodes().iter().map(|n| super::preferred_weight(&pod, n)).collect();
    assert_eq!(weights, [15, 5, 55]);
    assert_eq!(schedule(&pod, &nodes(), Strategy::Spread), Ok("c".into()));
    let without = PodRequest::default();
    assert_eq!(super::preferred_weight(&without, &nodes()[0]), 0);
}
