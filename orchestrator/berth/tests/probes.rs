//! Health probes end to end, through the real `kubectl` against a cluster of real
//! processes (three servers, two agents on the process runtime, whose exec probes run
//! on the host): a readiness probe that starts failing makes the pod NotReady and
//! back, a failing liveness probe restarts its container with the kubelet's events,
//! and a probe Kubernetes would refuse is refused.

mod common;

use std::path::Path;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

/// A pod whose container sleeps for the cluster's marker, with `probes` (YAML lines
/// at the container's indentation).
fn probed_pod(name: &str, marker: &str, probes: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1
    command: [sleep]
    args: [\"{marker}\"]
{probes}"
    )
}

/// An exec probe that passes while `file` exists, every second.
fn file_probe(kind: &str, file: &Path, failure_threshold: u32) -> String {
    format!(
        "    {kind}:
      exec:
        command: [test, -f, \"{}\"]
      periodSeconds: 1
      failureThreshold: {failure_threshold}
",
        file.display()
    )
}

fn pod_json(cluster: &TestCluster, name: &str) -> Value {
    serde_json::from_str(&cluster.kubectl_ok(&["get", "pod", name, "-o", "json"])).unwrap()
}

/// The pod's container `ready` and its Ready condition, once it runs.
fn readiness(cluster: &TestCluster, name: &str) -> Option<(bool, String)> {
    let pod = pod_json(cluster, name);
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    let ready = pod["status"]["containerStatuses"][0]["ready"].as_bool()?;
    let condition = pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["status"]
        .as_str()?
        .to_string();
    Some((ready, condition))
}

#[test]
fn readiness_and_liveness_probes_drive_ready_and_restarts() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let files = tempfile::tempdir().unwrap();
    let ready_file = files.path().join("ready");
    let alive_file = files.path().join("alive");

    // Refused as Kubernetes refuses it.
    let bad = cluster.write_manifest(
        "bad.yaml",
        &probed_pod(
            "bad",
            &marker,
            &format!(
                "{}      successThreshold: 2\n",
                file_probe("livenessProbe", &alive_file, 1)
            ),
        ),
    );
    let refused = cluster.kubectl_fails(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        refused.contains("spec.containers[0].livenessProbe.successThreshold") && refused.contains("must be 1"),
        "{refused}"
    );

    // Readiness: not ready until the file exists, ready while it does, and not
    // ready again once it is gone; the container keeps running throughout.
    let ready = cluster.write_manifest(
        "ready.yaml",
        &probed_pod("ready", &marker, &file_probe("readinessProbe", &ready_file, 1)),
    );
    cluster.kubectl_ok(&["apply", "-f", ready.to_str().unwrap()]);
    eventually_blocking("the pod running, not ready", || {
        (readiness(&cluster, "ready")? == (false, "False".into())).then_some(())
    });
    let table = cluster.kubectl_ok(&["get", "pod", "ready", "--no-headers"]);
    assert!(table.contains(" 0/1 ") && table.contains("Running"), "{table}");
    std::fs::write(&ready_file, "").unwrap();
    eventually_blocking("the pod ready", || {
        (readiness(&cluster, "ready")? == (true, "True".into())).then_some(())
    });
    let pod = pod_json(&cluster, "ready");
    let containers_ready = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ContainersReady")
        .cloned();
    assert_eq!(
        containers_ready.map(|c| c["status"].clone()),
        Some("True".into()),
        "{pod}"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["readinessProbe"]["timeoutSeconds"], 1,
        "defaulted"
    );
    std::fs::remove_file(&ready_file).unwrap();
    eventually_blocking("the pod not ready again", || {
        (readiness(&cluster, "ready")? == (false, "False".into())).then_some(())
    });
    let pod = pod_json(&cluster, "ready");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0, "{pod}");
    assert!(
        pod["status"]["containerStatuses"][0]["state"]["running"].is_object(),
        "{pod}"
    );

    // Liveness: failing, the container is killed and restarted, again and again,
    // with the kubelet's events.
    let lively = cluster.write_manifest(
        "lively.yaml",
        &probed_pod("lively", &marker, &file_probe("livenessProbe", &alive_file, 2)),
    );
    cluster.kubectl_ok(&["apply", "-f", lively.to_str().unwrap()]);
    eventually_blocking("two restarts", || {
        let pod = pod_json(&cluster, "lively");
        (pod["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 2).then_some(())
    });
    let events: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "events", "-o", "json"])).unwrap();
    let of_lively: Vec<(String, String, String)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "lively")
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap_or_default().to_string();
            (text("type"), text("reason"), text("message"))
        })
        .collect();
    assert!(
        of_lively.iter().any(|(type_, reason, message)| type_ == "Warning"
            && reason == "Unhealthy"
            && message.starts_with("Liveness probe failed")),
        "{of_lively:#?}"
    );
    assert!(
        of_lively.iter().any(|(type_, reason, message)| type_ == "Normal"
            && reason == "Killing"
            && message == "Container main failed liveness probe, will be restarted"),
        "{of_lively:#?}"
    );
    let described = cluster.kubectl_ok(&["describe", "pod", "lively"]);
    assert!(described.contains("Liveness:"), "{described}");

    // Once the probe passes, the restarts stop.
    std::fs::write(&alive_file, "").unwrap();
    let settled = eventually_blocking("a run that lasts", || {
        let pod = pod_json(&cluster, "lively");
        let status = &pod["status"]["containerStatuses"][0];
        (status["state"]["running"].is_object() && status["ready"] == true).then(|| status["restartCount"].clone())
    });
    std::thread::sleep(std::time::Duration::from_secs(4));
    let pod = pod_json(&cluster, "lively");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], settled, "{pod}");

    cluster.kubectl_ok(&["delete", "pod", "ready", "lively"]);
}
