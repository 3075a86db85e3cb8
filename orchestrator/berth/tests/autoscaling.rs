//! Metrics and autoscaling without an add-on, against a cluster of real processes
//! (three servers, two agents, the process runtime with real cgroups):
//! `kubectl top` shows the CPU a burning pod uses, and a HorizontalPodAutoscaler
//! made by `kubectl autoscale` scales the burning Deployment up to its maximum,
//! then, once the burners stop (a file on the host they look for), back down to
//! its minimum after a short scale-down stabilization window.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Far longer than any step takes on an idle machine: a hang, not a timing.
const PATIENCE: Duration = Duration::from_secs(180);

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A Deployment whose pods burn CPU (at most 200m each: their limit) until `stop`
/// exists, then sleep; each requests 100m.
fn burner(marker: &str, stop: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: burn
spec:
  replicas: 1
  selector:
    matchLabels: {{app: burn}}
  template:
    metadata:
      labels: {{app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:1
        command: [sh, -c, 'while [ ! -e {stop} ]; do :; done; exec sleep {marker}']
        resources:
          requests: {{cpu: 100m, memory: 16Mi}}
          limits: {{cpu: 200m}}
"
    )
}

/// Stops the burners when dropped (before the cluster, which kills only sleeping
/// workloads), should the test fail while they burn.
struct StopBurning(std::path::PathBuf);

impl Drop for StopBurning {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
        // Time for each burner to notice and become a `sleep` the cluster kills.
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Millicores of a `kubectl top` CPU cell (`123m`, `1`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(millis) => millis.parse().unwrap(),
        None => cell.parse::<u64>().unwrap() * 1000,
    }
}

/// GET, which must answer 200.
fn get_json(cluster: &TestCluster, path: &str) -> Value {
    let (status, body) = cluster.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn spec_replicas(cluster: &TestCluster) -> i64 {
    let deployment = get_json(cluster, "/apis/apps/v1/namespaces/default/deployments/burn");
    deployment["spec"]["replicas"].as_i64().unwrap_or(-1)
}

#[test]
fn top_shows_the_load_and_an_autoscaler_follows_it() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::new("3s");
    for server in &mut cluster.servers.replicas {
        server.args.push("--horizontal-pod-autoscaler-sync-period=2s".into());
    }
    cluster.start_all();
    wait_for_nodes(&mut cluster);
    let stop = cluster.servers.dir().join("stop-burning");
    let _stop_burning = StopBurning(stop.clone());
    let path = cluster.write_manifest("burn.yaml", &burner(&cluster.marker, stop.to_str().unwrap()));
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);

    // kubectl top pods: the burner's CPU, near its 200m limit once sampled.
    let (pod, cpu) = wait_for("kubectl top to show the burning pod", || {
        let out = cluster.kubectl_output(&["top", "pods", "-n", "default", "--no-headers"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.starts_with("burn-"))?;
        let cells: Vec<&str> = line.split_whitespace().collect();
        let cpu = millicores(cells[1]);
        (cpu >= 100).then(|| (cells[0].to_string(), cpu))
    });
    assert!(cpu <= 260, "the pod's 200m limit holds it: {cpu}m");
    let containers = cluster.kubectl_ok(&["top", "pods", "-A", "--containers"]);
    let header: Vec<&str> = containers.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]);
    assert!(
        containers.lines().any(|l| l.contains(&pod) && l.contains(" main ")),
        "{containers}"
    );
    let nodes = cluster.kubectl_ok(&["top", "nodes"]);
    for node in ["node-0", "node-1"] {
        assert!(nodes.lines().any(|l| l.starts_with(node)), "{nodes}");
    }
    let metrics = get_json(
        &cluster,
        &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{pod}"),
    );
    assert_eq!(metrics["kind"], "PodMetrics");
    assert!(metrics["window"].as_str().unwrap().ends_with('s'), "{metrics}");
    assert!(
        metrics["containers"][0]["usage"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki")
    );

    // An autoscaler as kubectl makes one, with a short scale-down window (v2).
    let autoscaled = Instant::now();
    cluster.kubectl_ok(&[
        "autoscale",
        "deployment",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    cluster.kubectl_ok(&[
        "patch",
        "hpa",
        "burn",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":5}}}}"#,
    ]);
    let v1 = get_json(
        &cluster,
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/burn",
    );
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50, "{v1}");

    // Metrics berth does not read are refused by name (a v2 body, as protobuf).
    let refused = cluster.write_manifest(
        "pods-metric.yaml",
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: by-requests}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  maxReplicas: 3
  metrics:
  - type: Pods
    pods:
      metric: {name: requests_per_second}
      target: {type: AverageValue, averageValue: \"10\"}
",
    );
    let error = cluster.kubectl_fails(&["create", "-f", refused.to_str().unwrap()]);
    assert!(
        error.contains("spec.metrics[0].type: Unsupported value: \"Pods\""),
        "{error}"
    );

    // Each pod uses about 200% of its request against a 50% target: up to max.
    wait_for("the autoscaler to scale up to 3", || {
        (spec_replicas(&cluster) == 3).then_some(())
    });
    let scale_up = autoscaled.elapsed();
    let hpa: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "hpa", "burn", "-o", "json"])).unwrap();
    let status = &hpa["status"];
    assert!(status["lastScaleTime"].is_string(), "{status}");
    let utilization = status["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
        .as_i64()
        .unwrap_or(0);
    assert!(utilization > 55, "{status}");
    let table = cluster.kubectl_ok(&["get", "hpa"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    );
    assert!(table.contains("Deployment/burn") && table.contains("/50%"), "{table}");
    let events = cluster.kubectl_ok(&["get", "events", "--field-selector", "reason=SuccessfulRescale"]);
    assert!(
        events.contains("reason: cpu resource utilization (percentage of request) above target"),
        "{events}"
    );

    // The load stops: after the 5 s window, down to the minimum.
    std::fs::write(&stop, "").unwrap();
    let stopped = Instant::now();
    wait_for("the autoscaler to scale down to 1", || {
        (spec_replicas(&cluster) == 1).then_some(())
    });
    eprintln!(
        "autoscaler (sync period 2 s): 1 -> 3 replicas {scale_up:?} after kubectl autoscale; \
         3 -> 1 {:?} after the load stopped (5 s scale-down window)",
        stopped.elapsed()
    );
    let events = cluster.kubectl_ok(&["get", "events", "--field-selector", "reason=SuccessfulRescale"]);
    assert!(
        events.contains("New size: 1; reason: All metrics below target"),
        "{events}"
    );
}
