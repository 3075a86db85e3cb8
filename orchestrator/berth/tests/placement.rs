//! End to end: the placement rules users write, on a cluster of three replicas and
//! two agents (node-0, node-1), each labelled with its `kubernetes.io/hostname`.

mod common;

use std::collections::BTreeMap;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

/// A Deployment of `replicas` sleepers labelled app=`app`, without requests, with
/// `affinity` (YAML, indented for the pod spec) if any.
fn deployment(app: &str, replicas: u32, marker: &str, affinity: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {app}
  template:
    metadata:
      labels:
        app: {app}
    spec:
      terminationGracePeriodSeconds: 1
{affinity}      containers:
      - name: main
        command: [\"sleep\", \"{marker}\"]
"
    )
}

/// The pods of app=`app`: how many each node holds, and the unbound ones.
fn placed(cluster: &TestCluster, app: &str) -> (BTreeMap<String, usize>, Vec<Value>) {
    let mut by_node = BTreeMap::new();
    let mut unbound = Vec::new();
    for pod in cluster.pods() {
        if pod["metadata"]["labels"]["app"] != app || !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        match pod["spec"]["nodeName"].as_str() {
            Some(node) => *by_node.entry(node.to_string()).or_default() += 1,
            None => unbound.push(pod),
        }
    }
    (by_node, unbound)
}

#[test]
fn replicas_spread_and_required_anti_affinity_leaves_the_extra_replica_pending_with_the_reason() {
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let (_, node) = cluster.get("/api/v1/nodes/node-0");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "node-0", "{node}");
    let marker = cluster.marker.clone();

    // Without requests, four replicas still spread two and two (the non-zero
    // request defaults and the default topology spread).
    let spread = cluster.write_manifest("spread.yaml", &deployment("spread", 4, &marker, ""));
    let applied = stdout(&cluster.berth(&["apply", "-f", spread.to_str().unwrap()]));
    assert!(applied.contains("deployment.apps/spread created"), "{applied}");
    let by_node = eventually_blocking("4 spread pods bound", || {
        let (by_node, unbound) = placed(&cluster, "spread");
        (by_node.values().sum::<usize>() == 4 && unbound.is_empty()).then_some(by_node)
    });
    assert_eq!(by_node, BTreeMap::from([("node-0".into(), 2), ("node-1".into(), 2)]));

    // One replica per host: the third has nowhere to go and says why.
    let affinity = "      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels:
                app: apart
            topologyKey: kubernetes.io/hostname
";
    let apart = cluster.write_manifest("apart.yaml", &deployment("apart", 3, &marker, affinity));
    let applied = stdout(&cluster.berth(&["apply", "-f", apart.to_str().unwrap()]));
    assert!(applied.contains("deployment.apps/apart created"), "{applied}");
    // The message is awaited rather than asserted at first sight: a node whose
    // heartbeat is late for a moment on a loaded machine is counted "not ready".
    let expected = "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.";
    let by_node = eventually_blocking(
        &format!("2 apart pods bound, the third Pending with {expected:?}"),
        || {
            let (by_node, unbound) = placed(&cluster, "apart");
            let [pending] = unbound.as_slice() else { return None };
            let explained = pending["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "PodScheduled" && c["status"] == "False" && c["message"] == expected);
            (explained && by_node.values().sum::<usize>() == 2).then_some(by_node)
        },
    );
    assert_eq!(by_node, BTreeMap::from([("node-0".into(), 1), ("node-1".into(), 1)]));
}
