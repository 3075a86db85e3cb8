//! Configuration as environment end to end, through the real `kubectl` against a
//! cluster of real processes (three servers, two agents on the process runtime): a
//! pod's environment gets a ConfigMap's key, a Secret's key, every key of a ConfigMap
//! with a prefix, fields of the pod and a resource of its container; a pod naming a
//! ConfigMap that does not exist waits with `CreateContainerConfigError` and starts
//! once it is created. The Secret's value shows in no log and no Event.

mod common;

use std::path::Path;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

/// A pod whose container writes its environment to `<dir>/<name>.env`, then sleeps
/// for the cluster's marker; `env` is YAML at the container's indentation.
fn pod_writing_env(name: &str, dir: &Path, marker: &str, env: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    tier: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1
    command: [sh, -c, 'env > {dir}/{name}.env.tmp && mv {dir}/{name}.env.tmp {dir}/{name}.env && exec sleep {marker}']
    resources:
      limits:
        memory: 64Mi
{env}",
        dir = dir.display()
    )
}

/// The environment the pod's container wrote, once it has.
fn written_env(dir: &Path, name: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.env"))).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

fn pod_json(cluster: &TestCluster, name: &str) -> Value {
    serde_json::from_str(&cluster.kubectl_ok(&["get", "pod", name, "-o", "json"])).unwrap()
}

#[test]
fn pods_get_configuration_and_secrets_as_environment() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let files = tempfile::tempdir().unwrap();
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=color=blue",
    ]);
    cluster.kubectl_ok(&["create", "secret", "generic", "db", "--from-literal=password=hunter2"]);

    let configured = pod_writing_env(
        "configured",
        files.path(),
        &marker,
        "    envFrom:
    - configMapRef:
        name: settings
      prefix: CFG_
    env:
    - name: MODE
      valueFrom:
        configMapKeyRef: {name: settings, key: mode}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: db, key: password}
    - name: TIER
      valueFrom:
        fieldRef: {fieldPath: \"metadata.labels['tier']\"}
    - name: NODE
      valueFrom:
        fieldRef: {fieldPath: spec.nodeName}
    - name: MEMORY_MI
      valueFrom:
        resourceFieldRef: {resource: limits.memory, divisor: 1Mi}
    - name: UNSET
      valueFrom:
        configMapKeyRef: {name: settings, key: absent, optional: true}
    - name: ADDRESS
      value: \"$(MODE)-$(TIER):$$(MODE):$(NOPE)\"
",
    );
    let path = cluster.write_manifest("configured.yaml", &configured);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let env = eventually_blocking("the configured pod's environment", || {
        written_env(files.path(), "configured")
    });
    let node = pod_json(&cluster, "configured")["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    for line in [
        "MODE=fast".to_string(),
        "PASSWORD=hunter2".into(),
        "CFG_mode=fast".into(),
        "CFG_color=blue".into(),
        "TIER=web".into(),
        format!("NODE={node}"),
        "MEMORY_MI=64".into(),
        // $(VAR) references to earlier variables expand; $$ escapes; unknown stay.
        "ADDRESS=fast-web:$(MODE):$(NOPE)".into(),
    ] {
        assert!(env.contains(&line), "{line} in {env:#?}");
    }
    assert!(!env.iter().any(|l| l.starts_with("UNSET=")), "{env:#?}");

    // A ConfigMap that is not there yet holds the pod, saying why.
    let blocked = pod_writing_env(
        "blocked",
        files.path(),
        &marker,
        "    env:
    - name: LATE
      valueFrom:
        configMapKeyRef: {name: late, key: value}
",
    );
    let path = cluster.write_manifest("blocked.yaml", &blocked);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let waiting = eventually_blocking("the blocked pod's reason", || {
        let pod = pod_json(&cluster, "blocked");
        let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        (waiting["reason"] == "CreateContainerConfigError").then_some(waiting)
    });
    assert_eq!(waiting["message"], "configmap \"late\" not found", "{waiting}");
    let events = eventually_blocking("the Failed event", || {
        let events = cluster.kubectl_ok(&["get", "events", "--field-selector=involvedObject.name=blocked"]);
        events.contains("Error: configmap \"late\" not found").then_some(events)
    });
    assert!(events.contains("Failed"), "{events}");
    assert!(written_env(files.path(), "blocked").is_none());

    // With the ConfigMap but not the key: the kubelet's other message.
    cluster.kubectl_ok(&["create", "configmap", "late", "--from-literal=other=x"]);
    eventually_blocking("the missing key's message", || {
        let pod = pod_json(&cluster, "blocked");
        let message = &pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"];
        (message == "couldn't find key value in ConfigMap default/late").then_some(())
    });
    cluster.kubectl_ok(&["delete", "configmap", "late"]);
    cluster.kubectl_ok(&["create", "configmap", "late", "--from-literal=value=now"]);
    let env = eventually_blocking("the released pod's environment", || {
        written_env(files.path(), "blocked")
    });
    assert!(env.contains(&"LATE=now".to_string()), "{env:#?}");
    eventually_blocking("the released pod running, not restarted", || {
        let pod = pod_json(&cluster, "blocked");
        let status = &pod["status"]["containerStatuses"][0];
        (pod["status"]["phase"] == "Running" && status["restartCount"] == 0).then_some(())
    });

    // The Secret's value is in the environment only.
    let all_events = cluster.kubectl_ok(&["get", "events", "-o", "json"]);
    assert!(!all_events.contains("hunter2"), "{all_events}");
    for j in 0..2 {
        let log = std::fs::read_to_string(cluster.servers.dir().join(format!("node-{j}.log"))).unwrap_or_default();
        assert!(!log.contains("hunter2"), "node-{j}'s log shows the secret");
    }
}
