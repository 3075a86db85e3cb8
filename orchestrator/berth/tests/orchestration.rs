//! End to end on real processes: three `berth server` replicas and two `berth agent`s
//! on loopback, driven through the `berth` CLI and the REST API, with workloads that
//! are real child processes. The clusters here run with TLS and authentication
//! everywhere, as `berth up`'s do: the store's port and peer links, the API servers
//! (RBAC; the tests are the admin) and the agents' API.

mod common;

use std::time::{Duration, Instant};

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

fn deployment(marker: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleeper
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: sleeper
  template:
    metadata:
      labels:
        app: sleeper
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        command: [\"sleep\", \"{marker}\"]
        resources:
          requests:
            cpu: 200m
            memory: 64Mi
"
    )
}

/// Running pods of the deployment, by node.
fn running_by_node(cluster: &TestCluster) -> std::collections::BTreeMap<String, usize> {
    let mut by_node = std::collections::BTreeMap::new();
    for pod in cluster.pods() {
        if pod["metadata"]["labels"]["app"] == "sleeper" && pod["status"]["phase"] == "Running" {
            *by_node
                .entry(pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string())
                .or_insert(0) += 1;
        }
    }
    by_node
}

fn sleeper_pods(cluster: &TestCluster) -> usize {
    cluster
        .pods()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "sleeper")
        .count()
}

#[test]
fn deploy_spread_survive_node_and_leader_failures_scale_and_delete() {
    let mut cluster = TestCluster::start_secure();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let manifest = cluster.write_manifest("sleeper.yaml", &deployment(&marker, 4));
    let applied = stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    assert!(applied.contains("deployment.apps/sleeper created"), "{applied}");

    // Four processes run, spread over both nodes, and the pods say Running.
    eventually_blocking("4 running pods on 2 nodes", || {
        let by_node = running_by_node(&cluster);
        (by_node.values().sum::<usize>() == 4 && by_node.len() == 2).then_some(())
    });
    assert_eq!(
        running_by_node(&cluster).values().copied().collect::<Vec<_>>(),
        vec![2, 2]
    );
    eventually_blocking("4 workload processes", || {
        (workload_pids(&marker).len() == 4).then_some(())
    });
    let table = stdout(&cluster.berth(&["get", "pods", "-o", "wide"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.matches("Running").count(), 4, "{table}");

    // kill -9 an agent: after the grace period its pods are replaced on the other node.
    cluster.agents[0].kill();
    eventually_blocking("4 running pods, all on node-1", || {
        (running_by_node(&cluster).get("node-1") == Some(&4) && sleeper_pods(&cluster) == 4).then_some(())
    });
    let (_, node) = cluster.get("/api/v1/nodes/node-0");
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap();
    assert_eq!(ready["status"], "False", "{node}");
    // The dead agent's processes are still there (nothing could stop them); when it
    // comes back it stops them and does not bring the evicted pods back.
    assert_eq!(workload_pids(&marker).len(), 6);
    cluster.agents[0].start().unwrap();
    eventually_blocking("the returning node to stop its evicted workloads", || {
        (workload_pids(&marker).len() == 4).then_some(())
    });
    wait_for_nodes(&mut cluster);
    assert_eq!(running_by_node(&cluster).get("node-1"), Some(&4));

    // kill -9 the leading server: a new leader takes over, the API answers through
    // the other replicas throughout, and there are still exactly 4 pods.
    let leader = cluster.leader();
    cluster.servers.kill(leader);
    let others = cluster.running_api_ports();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for port in &others {
            let (status, list) = cluster.get_from(*port, "/api/v1/namespaces/default/pods");
            assert_eq!(status, 200, "the API through the other replicas: {list}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let new_leader = eventually_blocking("a new leader record", || {
        let l = cluster.leader();
        (l != leader).then_some(l)
    });
    assert_ne!(new_leader, leader);
    // Controllers resume on the new leader: scaling works, and converges exactly.
    assert!(stdout(&cluster.berth(&["scale", "deployment/sleeper", "--replicas", "6"])).contains("scaled"));
    eventually_blocking("6 running pods", || {
        (running_by_node(&cluster).values().sum::<usize>() == 6 && sleeper_pods(&cluster) == 6).then_some(())
    });
    eventually_blocking("6 workload processes", || {
        (workload_pids(&marker).len() == 6).then_some(())
    });
    stdout(&cluster.berth(&["scale", "deployment", "sleeper", "--replicas=2"]));
    eventually_blocking("2 pods and 2 processes", || {
        (sleeper_pods(&cluster) == 2 && workload_pids(&marker).len() == 2).then_some(())
    });

    // Deleting the deployment removes its ReplicaSets, pods and processes.
    let deleted = stdout(&cluster.berth(&["delete", "deployment", "sleeper"]));
    assert!(deleted.contains("deleted"), "{deleted}");
    eventually_blocking("every workload process to be gone", || {
        (workload_pids(&marker).is_empty() && sleeper_pods(&cluster) == 0).then_some(())
    });
    let (_, sets) = cluster.get("/apis/apps/v1/namespaces/default/replicasets");
    assert_eq!(sets["items"].as_array().map(Vec::len), Some(0), "{sets}");
}

#[test]
fn crashing_containers_back_off_and_oversized_pods_stay_pending_with_a_reason() {
    let mut cluster = TestCluster::start_secure();
    wait_for_nodes(&mut cluster);
    let manifest = cluster.write_manifest(
        "pods.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: main
    command: [\"sh\", \"-c\", \"echo crashing; exit 3\"]
---
apiVersion: v1
kind: Pod
metadata:
  name: huge
spec:
  containers:
  - name: main
    command: [\"sleep\", \"1000\"]
    resources:
      requests:
        memory: 100Gi
",
    );
    stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    let crasher = eventually_blocking("the crasher to restart 3 times", || {
        let (_, pod) = cluster.get("/api/v1/namespaces/default/pods/crasher");
        (pod["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 3).then_some(pod)
    });
    let status = &crasher["status"]["containerStatuses"][0];
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3, "{status}");
    // The current instance's log: one just started may not have written yet.
    eventually_blocking("the crasher's log", || {
        stdout(&cluster.berth(&["logs", "crasher"]))
            .contains("crashing")
            .then_some(())
    });
    // The agent told the story: the container started, exited, and backs off.
    let backoff = eventually_blocking("a BackOff event about the crasher", || {
        let (_, events) = cluster.get("/api/v1/namespaces/default/events?fieldSelector=reason%3DBackOff");
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["involvedObject"]["name"] == "crasher")
            .cloned()
    });
    assert_eq!(backoff["type"], "Warning");
    assert_eq!(backoff["source"]["component"], "kubelet");
    assert!(backoff["count"].as_i64().unwrap() >= 1);
    assert_eq!(backoff["involvedObject"]["uid"], crasher["metadata"]["uid"]);

    let huge = eventually_blocking("the huge pod to be explained", || {
        let (_, pod) = cluster.get("/api/v1/namespaces/default/pods/huge");
        let condition = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (condition["status"] == "False").then_some((pod, condition))
    });
    assert_eq!(huge.0["status"]["phase"], "Pending");
    assert_eq!(huge.0["spec"]["nodeName"], Value::Null);
    let message = huge.1["message"].as_str().unwrap();
    assert!(message.starts_with("0/2 nodes are available"), "{message}");
    assert!(message.contains("2 Insufficient memory"), "{message}");
    let described = stdout(&cluster.berth(&["describe", "pod", "huge"]));
    assert!(described.contains("Insufficient memory"), "{described}");
}

#[test]
fn bad_input_is_refused_by_name_and_a_replica_without_quorum_says_unavailable() {
    let mut cluster = TestCluster::start_secure();
    wait_for_nodes(&mut cluster);
    let bad = cluster.write_manifest(
        "bad.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: Bad_Name
spec:
  replicas: 1
  selector:
    matchLabels: {app: a}
  template:
    metadata:
      labels: {app: b}
    spec:
      containers:
      - name: main
        command: [\"true\"]
        resources:
          requests:
            memory: 12Mb
",
    );
    let out = cluster.berth(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in ["metadata.name", "spec.selector", "resources.requests.memory"] {
        assert!(err.contains(field), "the error names {field}: {err}");
    }
    let (status, list) = cluster.get("/apis/apps/v1/namespaces/default/deployments");
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    let out = cluster.berth(&["get", "deployment", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A replica that cannot reach a quorum says so instead of answering stale data.
    let mut cluster = cluster;
    cluster.servers.kill(1);
    cluster.servers.kill(2);
    let (status, body) = cluster.get_from(cluster.api_ports[0], "/api/v1/namespaces/default/pods");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "ServiceUnavailable", "{body}");
    assert!(
        body["message"].as_str().unwrap_or_default().contains("unavailable"),
        "{body}"
    );
    let out = cluster.berth(&["get", "pods"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ServiceUnavailable"), "{err}");
}
