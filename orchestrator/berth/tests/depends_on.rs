//! Start order across workloads end to end, through the real `kubectl` against a
//! cluster of real processes (three servers, two agents on the process runtime): a
//! Deployment annotated `berth.io/depends-on: db` has its pods held Pending
//! (`SchedulingGated`, a condition and an Event saying what they wait for) while the
//! `db` Service is missing and while it has no ready endpoint, and released once
//! `db`'s pod is ready; a malformed annotation is refused by name, and a pod's gates
//! can only be removed.

mod common;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

fn deployment(name: &str, marker: &str, annotations: &str, readiness: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{{annotations}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: [sleep, '{marker}']
{readiness}"
    )
}

fn pods_of(cluster: &TestCluster, app: &str) -> Vec<Value> {
    let list: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"])).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn dependency_condition(pod: &Value) -> Option<Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "berth.io/DependenciesReady")
        .cloned()
}

/// Waits until both `web` pods are held with `message` and returns their names.
fn held_with(cluster: &TestCluster, message: &str) -> Vec<String> {
    eventually_blocking(&format!("web's pods held: {message}"), || {
        let pods = pods_of(cluster, "web");
        let held = pods.len() == 2
            && pods.iter().all(|p| {
                p["spec"]["nodeName"].is_null()
                    && p["spec"]["schedulingGates"][0]["name"] == "berth.io/depends-on"
                    && dependency_condition(p).is_some_and(|c| c["status"] == "False" && c["message"] == message)
            });
        held.then(|| {
            pods.iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        })
    })
}

#[test]
fn a_deployment_waits_for_the_services_it_depends_on() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let files = tempfile::tempdir().unwrap();
    let ready_file = files.path().join("db-ready");

    // A malformed annotation is refused, naming it.
    let bad = cluster.write_manifest(
        "bad.yaml",
        &deployment("bad", &marker, "berth.io/depends-on: 'db;cache'", ""),
    );
    let refused = cluster.kubectl_fails(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        refused.contains("metadata.annotations[berth.io/depends-on]") && refused.contains("\"db;cache\""),
        "{refused}"
    );

    let web = cluster.write_manifest("web.yaml", &deployment("web", &marker, "berth.io/depends-on: db", ""));
    cluster.kubectl_ok(&["apply", "-f", web.to_str().unwrap()]);
    let names = held_with(&cluster, "waiting for dependencies: Service default/db not found");
    let table = cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "--no-headers"]);
    assert_eq!(table.matches("SchedulingGated").count(), 2, "{table}");
    eventually_blocking("the WaitingForDependencies event", || {
        let selector = format!("involvedObject.name={}", names[0]);
        let events = cluster.kubectl_ok(&["get", "events", "--field-selector", &selector]);
        (events.contains("WaitingForDependencies") && events.contains("Service default/db not found")).then_some(())
    });

    // A pod's gates can be removed, never added.
    let added = cluster.kubectl_fails(&[
        "patch",
        "pod",
        &names[0],
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/schedulingGates/-","value":{"name":"example.com/more"}}]"#,
    ]);
    assert!(
        added.contains("only deletion is allowed, but found new scheduling gate 'example.com/more'"),
        "{added}"
    );

    // The Service and its pods, not yet ready: still held, for the new reason.
    let readiness = format!(
        "        readinessProbe:
          exec: {{command: [test, -f, '{}']}}
          periodSeconds: 1
",
        ready_file.display()
    );
    let db = cluster.write_manifest("db.yaml", &deployment("db", &marker, "", &readiness));
    cluster.kubectl_ok(&["apply", "-f", db.to_str().unwrap()]);
    cluster.kubectl_ok(&["create", "service", "clusterip", "db", "--tcp=5432:5432"]);
    // `kubectl create service` selects app=db, the Deployment's pods.
    eventually_blocking("db's pods running, not ready", || {
        let pods = pods_of(&cluster, "db");
        (pods.len() == 2 && pods.iter().all(|p| p["status"]["phase"] == "Running")).then_some(())
    });
    held_with(
        &cluster,
        "waiting for dependencies: Service default/db has no ready endpoints",
    );

    // db ready: web's pods are released and run.
    std::fs::write(&ready_file, "").unwrap();
    eventually_blocking("web's pods released and running", || {
        let pods = pods_of(&cluster, "web");
        let running = pods.len() == 2
            && pods.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && p["spec"]["schedulingGates"].is_null()
                    && dependency_condition(p).is_some_and(|c| c["status"] == "True")
            });
        running.then_some(())
    });
    let events = cluster.kubectl_ok(&["get", "events"]);
    assert!(
        events.contains("DependenciesReady") && events.contains("Services with ready endpoints: db"),
        "{events}"
    );
    // The same pods were released, not replaced.
    let mut now: Vec<String> = pods_of(&cluster, "web")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    now.sort();
    let mut before = names;
    before.sort();
    assert_eq!(now, before);
}
