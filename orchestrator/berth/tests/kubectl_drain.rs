//! `kubectl drain` against a cluster of real processes (three servers, two agents):
//! the default spread puts a 3-replica Deployment on both nodes, a
//! PodDisruptionBudget keeps two of its pods ready, and draining the node with
//! most of them moves its pods to the other node without ever leaving fewer than
//! two ready, kubectl retrying the evictions the budget refuses.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

fn manifests(marker: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:1
        command: [sleep]
        args: [\"{marker}\"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 2
  selector:
    matchLabels: {{app: web}}
"
    )
}

/// The ready pods of app=web not being deleted, by node.
fn ready_by_node(port: u16) -> Option<BTreeMap<String, usize>> {
    let (status, list) = http_get(port, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
    if status != 200 {
        return None;
    }
    let mut by_node = BTreeMap::new();
    for pod in list["items"].as_array()? {
        let ready = pod["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if ready && pod["metadata"]["deletionTimestamp"].is_null() {
            let node = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
            *by_node.entry(node).or_default() += 1;
        }
    }
    Some(by_node)
}

/// Watches the ready pods until dropped, keeping the fewest it saw.
struct Watcher {
    stop: Arc<AtomicBool>,
    fewest: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(port: u16) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let fewest = Arc::new(AtomicUsize::new(usize::MAX));
        let (s, f) = (stop.clone(), fewest.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(ready) = ready_by_node(port) {
                    f.fetch_min(ready.values().sum(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Watcher {
            stop,
            fewest,
            thread: Some(thread),
        }
    }

    /// Stops watching; the fewest ready pods seen.
    fn fewest(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.fewest.load(Ordering::Relaxed)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn budget(cluster: &TestCluster) -> Value {
    let (status, pdb) = cluster.get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web");
    assert_eq!(status, 200, "{pdb}");
    pdb
}

#[test]
fn drain_moves_pods_without_breaking_the_budget() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let path = cluster.write_manifest("web.yaml", &manifests(&cluster.marker));
    let applied = cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(applied.contains("poddisruptionbudget.policy/web created"), "{applied}");
    let port = cluster.running_api_ports()[0];

    // Spread by default: three replicas without requests use both nodes.
    let placed = eventually_blocking("three ready pods", || {
        ready_by_node(port).filter(|ready| ready.values().sum::<usize>() == 3)
    });
    assert_eq!(placed.len(), 2, "the replicas are spread: {placed:?}");
    eventually_blocking("the budget allows one disruption", || {
        let status = &budget(&cluster)["status"];
        (status["disruptionsAllowed"] == 1 && status["currentHealthy"] == 3).then_some(())
    });
    let table = cluster.kubectl_ok(&["get", "pdb"]);
    let columns: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "2", "N/A", "1"], "{table}");

    // Drain the node with two of them: the second eviction must wait until the
    // first pod's replacement is ready on the other node.
    let (busy, _) = placed.iter().max_by_key(|(_, n)| **n).unwrap();
    let busy = busy.clone();
    let watcher = Watcher::start(port);
    let drained = cluster.kubectl_output(&[
        "drain",
        &busy,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=180s",
    ]);
    let fewest = watcher.fewest();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&drained.stdout),
        String::from_utf8_lossy(&drained.stderr)
    );
    assert!(drained.status.success(), "kubectl drain failed:\n{said}");
    assert!(said.contains(&format!("node/{busy} cordoned")), "{said}");
    assert!(said.contains(&format!("node/{busy} drained")), "{said}");
    assert!(
        said.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "the budget held the second eviction back:\n{said}"
    );
    assert!(fewest >= 2, "only {fewest} pods were ready during the drain:\n{said}");

    // Everything runs on the other node now; the drained one takes no new pods.
    let moved = eventually_blocking("three ready pods on the other node", || {
        ready_by_node(port).filter(|ready| ready.values().sum::<usize>() == 3)
    });
    assert!(!moved.contains_key(&busy), "{moved:?}");
    let nodes = cluster.kubectl_ok(&["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with(&busy) && l.contains("SchedulingDisabled")),
        "{nodes}"
    );
    cluster.kubectl_ok(&["uncordon", &busy]);
    let (_, node) = cluster.get(&format!("/api/v1/nodes/{busy}"));
    assert_ne!(node["spec"]["unschedulable"], true, "{node}");
}
