//! Priority, preemption and NoExecute taints against a cluster of real processes
//! (three servers, two agents of 2 CPUs each), through the real `kubectl`: two pods
//! of a low PriorityClass fill both nodes' CPU, a pod of a high class that fits
//! nowhere evicts one of them and runs in its place; then `kubectl taint node ...
//! k=v:NoExecute` evicts a pod that does not tolerate the taint while one that does
//! stays.

mod common;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

fn manifests(marker: &str) -> String {
    let pod = |name: &str, class: &str, cpu: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  priorityClassName: {class}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1
    command: [sleep]
    args: [\"{marker}\"]
    resources:
      requests: {{cpu: {cpu}}}
"
        )
    };
    format!(
        "apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: low
value: 10
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high
value: 1000
description: what must run
---
{}---
{}",
        pod("low-0", "low", "1500m"),
        pod("low-1", "low", "1500m")
    )
}

/// A pod pinned to `node`, tolerating `k=v:NoExecute` or not.
fn pinned(marker: &str, name: &str, node: &str, tolerant: bool) -> String {
    let tolerations = if tolerant {
        "  tolerations:\n  - {key: k, operator: Equal, value: v, effect: NoExecute}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
{tolerations}  containers:
  - name: main
    image: busybox:1
    command: [sleep]
    args: [\"{marker}\"]
"
    )
}

/// The pod as stored, or None when it is gone.
fn pod(cluster: &TestCluster, name: &str) -> Option<Value> {
    let (status, pod) = cluster.get(&format!("/api/v1/namespaces/default/pods/{name}"));
    (status == 200).then_some(pod)
}

fn is_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null()
}

/// The reasons of the events about the pod `name`.
fn event_reasons(cluster: &TestCluster, name: &str) -> Vec<String> {
    let (_, events) = cluster.get("/api/v1/namespaces/default/events");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_high_priority_pod_preempts_and_no_execute_taints_evict() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let path = cluster.write_manifest("low.yaml", &manifests(&cluster.marker));
    let applied = cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(
        applied.contains("priorityclass.scheduling.k8s.io/high created"),
        "{applied}"
    );
    let classes = cluster.kubectl_ok(&["get", "pc"]);
    let header: Vec<&str> = classes.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        "{classes}"
    );
    for class in ["high", "low", "system-cluster-critical", "system-node-critical"] {
        assert!(classes.lines().any(|l| l.starts_with(class)), "{class}: {classes}");
    }

    // 1500m of each node's 2 CPUs taken by a low pod.
    let low_nodes = eventually_blocking("both low pods running", || {
        let nodes: Vec<String> = ["low-0", "low-1"]
            .iter()
            .map(|name| pod(&cluster, name).filter(is_running))
            .map(|p| p.map(|p| p["spec"]["nodeName"].as_str().unwrap_or_default().to_string()))
            .collect::<Option<_>>()?;
        Some(nodes)
    });
    assert_ne!(low_nodes[0], low_nodes[1], "{low_nodes:?}");
    let low = pod(&cluster, "low-0").unwrap();
    assert_eq!(low["spec"]["priority"], 10, "{low}");

    // A pod of the high class asking for a whole CPU fits nowhere: one low pod goes.
    let urgent = cluster.write_manifest(
        "urgent.yaml",
        &manifests(&cluster.marker)
            .split("---\n")
            .nth(2)
            .unwrap()
            .replace("low-0", "urgent")
            .replace("priorityClassName: low", "priorityClassName: high")
            .replace("1500m", "1000m"),
    );
    cluster.kubectl_ok(&["apply", "-f", urgent.to_str().unwrap()]);
    let placed = eventually_blocking("the urgent pod running", || pod(&cluster, "urgent").filter(is_running));
    assert_eq!(placed["spec"]["priority"], 1000, "{placed}");
    let described = cluster.kubectl_ok(&["describe", "pod", "urgent"]);
    for (field, value) in [("Priority:", "1000"), ("Priority Class Name:", "high")] {
        let found = described.lines().find(|l| l.starts_with(field));
        assert!(
            found.is_some_and(|l| l.ends_with(value)),
            "{field} {value}: {described}"
        );
    }
    let class = cluster.kubectl_ok(&["describe", "pc", "high"]);
    assert!(
        class.lines().any(|l| l.starts_with("Value:") && l.ends_with("1000")),
        "{class}"
    );
    assert!(
        class
            .lines()
            .any(|l| l.starts_with("Description:") && l.ends_with("what must run")),
        "{class}"
    );
    let node = placed["spec"]["nodeName"].as_str().unwrap().to_string();
    // The victim may still be finishing its deletion once its room is free.
    let survivors: Vec<&str> = ["low-0", "low-1"]
        .into_iter()
        .filter(|name| pod(&cluster, name).is_some_and(|p| p["metadata"]["deletionTimestamp"].is_null()))
        .collect();
    assert_eq!(survivors.len(), 1, "exactly one victim: {survivors:?}");
    let victim = if survivors[0] == "low-0" { "low-1" } else { "low-0" };
    assert_eq!(
        low_nodes[usize::from(victim == "low-1")],
        node,
        "the victim was on the urgent pod's node"
    );
    eventually_blocking("the victim's Preempted event", || {
        event_reasons(&cluster, victim)
            .contains(&"Preempted".to_string())
            .then_some(())
    });
    assert!(pod(&cluster, survivors[0]).is_some_and(|p| is_running(&p)));

    // A NoExecute taint on the other node: its low pod and the plain pod go, the
    // tolerant pod stays.
    let other = if node == "node-0" { "node-1" } else { "node-0" };
    for (name, tolerant) in [("plain", false), ("tolerant", true)] {
        let path = cluster.write_manifest(&format!("{name}.yaml"), &pinned(&cluster.marker, name, other, tolerant));
        cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }
    eventually_blocking("both pinned pods running", || {
        (pod(&cluster, "plain").is_some_and(|p| is_running(&p))
            && pod(&cluster, "tolerant").is_some_and(|p| is_running(&p)))
        .then_some(())
    });
    let tainted = cluster.kubectl_ok(&["taint", "node", other, "k=v:NoExecute"]);
    assert!(tainted.contains(&format!("node/{other} tainted")), "{tainted}");
    eventually_blocking("the untolerating pods gone", || {
        (pod(&cluster, "plain").is_none() && pod(&cluster, survivors[0]).is_none()).then_some(())
    });
    eventually_blocking("the plain pod's TaintManagerEviction event", || {
        event_reasons(&cluster, "plain")
            .contains(&"TaintManagerEviction".to_string())
            .then_some(())
    });
    let tolerant = pod(&cluster, "tolerant").expect("the tolerant pod stays");
    assert!(is_running(&tolerant), "{tolerant}");
}
