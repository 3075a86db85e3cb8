//! Admission end to end, through the real `kubectl` against a cluster of real
//! processes (three servers, two agents on the process runtime): a Deployment past
//! its namespace's pod quota stops at the limit, its ReplicaSet carries
//! `ReplicaFailure`/`FailedCreate` with the quota's message and the usage shows in
//! `kubectl get` and `describe resourcequota`; a LimitRange gives a pod its default
//! requests; a privileged pod and a hostPath pod are refused in a `baseline`
//! namespace (berth's default) with the rule named.

mod common;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

fn deployment(marker: &str) -> String {
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
        command: [sleep, '{marker}']
"
    )
}

const QUOTA: &str = "apiVersion: v1
kind: ResourceQuota
metadata:
  name: pod-count
spec:
  hard:
    pods: \"2\"
";

const LIMITS: &str = "apiVersion: v1
kind: LimitRange
metadata:
  name: defaults
spec:
  limits:
  - type: Container
    defaultRequest: {cpu: 100m, memory: 32Mi}
";

fn pod(name: &str, marker: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: [sleep, '{marker}']
{extra}"
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn quotas_limit_ranges_and_pod_security_hold_for_kubectl_and_the_controllers() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();

    // A Deployment past its quota stops at the limit and says why.
    let quota = cluster.write_manifest("quota.yaml", QUOTA);
    cluster.kubectl_ok(&["apply", "-f", quota.to_str().unwrap()]);
    eventually_blocking("the quota's status", || {
        let quota = json(&cluster.kubectl_ok(&["get", "resourcequota", "pod-count", "-o", "json"]));
        (quota["status"]["used"]["pods"] == "0").then_some(())
    });
    let web = cluster.write_manifest("web.yaml", &deployment(&marker));
    cluster.kubectl_ok(&["apply", "-f", web.to_str().unwrap()]);
    let failure = eventually_blocking("the ReplicaSet's ReplicaFailure condition", || {
        let sets = json(&cluster.kubectl_ok(&["get", "replicasets", "-l", "app=web", "-o", "json"]));
        let set = sets["items"].as_array()?.first()?.clone();
        let condition = set["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure")?
            .clone();
        Some(condition)
    });
    assert_eq!(failure["status"], "True");
    assert_eq!(failure["reason"], "FailedCreate");
    let message = failure["message"].as_str().unwrap();
    assert!(
        message.starts_with("pods \"web-")
            && message.ends_with(
                "\" is forbidden: exceeded quota: pod-count, requested: pods=1, used: pods=2, limited: pods=2"
            ),
        "{message}"
    );
    let pods = json(&cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
    assert_eq!(
        pods["items"].as_array().unwrap().len(),
        2,
        "the Deployment stops at the quota"
    );
    let table = cluster.kubectl_ok(&["get", "resourcequota", "pod-count"]);
    assert!(table.contains("pods: 2/2"), "{table}");
    let described = cluster.kubectl_ok(&["describe", "resourcequota", "pod-count"]);
    let row: Vec<&str> = described
        .lines()
        .find(|l| l.trim_start().starts_with("pods "))
        .unwrap_or_else(|| panic!("{described}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["pods", "2", "2"], "{described}");
    let events = cluster.kubectl_ok(&["get", "events", "--field-selector", "reason=FailedCreate"]);
    assert!(events.contains("exceeded quota: pod-count"), "{events}");
    cluster.kubectl_ok(&["delete", "deployment", "web"]);
    cluster.kubectl_ok(&["delete", "resourcequota", "pod-count"]);

    // A LimitRange gives a pod the requests it left out.
    let limits = cluster.write_manifest("limits.yaml", LIMITS);
    cluster.kubectl_ok(&["apply", "-f", limits.to_str().unwrap()]);
    let plain = cluster.write_manifest("plain.yaml", &pod("plain", &marker, ""));
    cluster.kubectl_ok(&["apply", "-f", plain.to_str().unwrap()]);
    let created = json(&cluster.kubectl_ok(&["get", "pod", "plain", "-o", "json"]));
    assert_eq!(
        created["spec"]["containers"][0]["resources"]["requests"],
        serde_json::json!({"cpu": "100m", "memory": "32Mi"})
    );
    assert_eq!(created["status"]["qosClass"], "Burstable");

    // Baseline (berth's default level) refuses a privileged pod and a hostPath pod,
    // naming the rule.
    let privileged = cluster.write_manifest(
        "privileged.yaml",
        &pod("root", &marker, "    securityContext: {privileged: true}\n"),
    );
    let refused = cluster.kubectl_fails(&["apply", "-f", privileged.to_str().unwrap()]);
    assert!(
        refused.contains(
            "pods \"root\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"main\" \
             must not set securityContext.privileged=true)"
        ),
        "{refused}"
    );
    let host_path = cluster.write_manifest(
        "host-path.yaml",
        &pod(
            "host",
            &marker,
            "    volumeMounts: [{name: data, mountPath: /data}]\n  volumes:\n  - name: data\n    hostPath: {path: /tmp}\n",
        ),
    );
    let refused = cluster.kubectl_fails(&["apply", "-f", host_path.to_str().unwrap()]);
    assert!(
        refused.contains(
            "pods \"host\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\")"
        ),
        "{refused}"
    );
    // A namespace labelled privileged takes it.
    cluster.kubectl_ok(&["create", "namespace", "ops"]);
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        "ops",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    cluster.kubectl_ok(&["apply", "-n", "ops", "-f", host_path.to_str().unwrap()]);
}
