//! Start order inside a pod, end to end through the real `kubectl` against a cluster
//! of real processes (the process runtime runs the containers' commands on the host,
//! so each container appends to a file the test reads): init containers run in order
//! before the app, a sidecar starts in its place and keeps running beside the app, a
//! postStart hook holds back the container after its own, and a failing init
//! container keeps the app from starting, retried or, under `restartPolicy: Never`,
//! failing the pod.

mod common;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

fn pod_json(cluster: &TestCluster, name: &str) -> Value {
    serde_json::from_str(&cluster.kubectl_ok(&["get", "pod", name, "-o", "json"])).unwrap()
}

/// The READY and STATUS columns of `kubectl get pod`.
fn columns(cluster: &TestCluster, name: &str) -> (String, String) {
    let row = cluster.kubectl_ok(&["get", "pod", name, "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    (cells[1].to_string(), cells[2].to_string())
}

fn condition(pod: &Value, type_: &str) -> Value {
    let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let found = conditions.into_iter().find(|c| c["type"] == type_);
    found.map(|c| c["status"].clone()).unwrap_or_default()
}

#[test]
fn init_containers_sidecars_and_post_start_hooks_start_in_order() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let files = tempfile::tempdir().unwrap();
    let order = files.path().join("order");
    let order = order.display();
    let append = |word: &str| format!("echo {word} >> {order}");

    // Refused as Kubernetes refuses it: a probe on an init container that is not a
    // sidecar.
    let probed = cluster.write_manifest(
        "probed.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  initContainers:
  - name: setup
    image: busybox:1
    command: [\"true\"]
    readinessProbe:
      exec:
        command: [\"true\"]
  containers:
  - name: main
    image: busybox:1
    command: [sleep, \"{marker}\"]
"
        ),
    );
    let refused = cluster.kubectl_fails(&["apply", "-f", probed.to_str().unwrap()]);
    assert!(
        refused.contains("spec.initContainers[0].readinessProbe")
            && refused.contains("may not be set for init containers without restartPolicy=Always"),
        "{refused}"
    );

    // The sidecar is through once its startup probe found its line; the hook sleeps
    // first, so a container started before it finished would write before it.
    let ordered = cluster.write_manifest(
        "ordered.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: ordered
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: one
    image: busybox:1
    command: [sh, -c, \"{one}\"]
  - name: proxy
    image: busybox:1
    restartPolicy: Always
    command: [sh, -c, \"{proxy}; exec sleep {marker}\"]
    startupProbe:
      exec:
        command: [grep, -q, proxy, \"{order}\"]
      periodSeconds: 1
  - name: two
    image: busybox:1
    command: [sh, -c, \"{two}\"]
  containers:
  - name: main
    image: busybox:1
    command: [sleep, \"{marker}\"]
    lifecycle:
      postStart:
        exec:
          command: [sh, -c, \"sleep 1; {hook}\"]
  - name: after
    image: busybox:1
    command: [sh, -c, \"{after}; exec sleep {marker}\"]
",
            one = append("one"),
            proxy = append("proxy"),
            two = append("two"),
            hook = append("hook"),
            after = append("after"),
        ),
    );
    cluster.kubectl_ok(&["apply", "-f", ordered.to_str().unwrap()]);
    eventually_blocking("the pod running with its sidecar", || {
        (columns(&cluster, "ordered") == ("3/3".into(), "Running".into())).then_some(())
    });
    let written = std::fs::read_to_string(files.path().join("order")).unwrap();
    assert_eq!(written, "one\nproxy\ntwo\nhook\nafter\n");
    let pod = pod_json(&cluster, "ordered");
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let states: Vec<(String, String)> = inits
        .iter()
        .map(|s| {
            let state = s["state"]
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            (s["name"].as_str().unwrap_or_default().to_string(), state)
        })
        .collect();
    assert_eq!(
        states,
        [
            ("one".to_string(), "terminated".to_string()),
            ("proxy".into(), "running".into()),
            ("two".into(), "terminated".into())
        ],
        "{pod}"
    );
    assert_eq!(inits[0]["state"]["terminated"]["reason"], "Completed", "{pod}");
    assert_eq!(inits[1]["started"], true, "{pod}");
    assert_eq!(condition(&pod, "Initialized"), "True", "{pod}");

    // A failing init container: retried with the back-off, the app never starts.
    let tries = files.path().join("tries");
    let failing = |name: &str, policy: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: fail
    image: busybox:1
    command: [sh, -c, \"echo {name} >> {tries}; exit 3\"]
  containers:
  - name: main
    image: busybox:1
    command: [sh, -c, \"echo {name}-main >> {tries}; exec sleep {marker}\"]
",
            tries = tries.display()
        )
    };
    let blocked = cluster.write_manifest("blocked.yaml", &failing("blocked", "Always"));
    cluster.kubectl_ok(&["apply", "-f", blocked.to_str().unwrap()]);
    eventually_blocking("the init container retried", || {
        let pod = pod_json(&cluster, "blocked");
        (pod["status"]["initContainerStatuses"][0]["restartCount"].as_i64()? >= 2).then_some(())
    });
    let status = eventually_blocking("kubectl showing the failure", || {
        let (_, status) = columns(&cluster, "blocked");
        ["Init:Error", "Init:CrashLoopBackOff"]
            .contains(&status.as_str())
            .then_some(status)
    });
    let pod = pod_json(&cluster, "blocked");
    assert_eq!(pod["status"]["phase"], "Pending", "{status}: {pod}");
    assert_eq!(condition(&pod, "Initialized"), "False", "{pod}");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing",
        "{pod}"
    );

    // Under restartPolicy Never the first failure fails the pod.
    let never = cluster.write_manifest("never.yaml", &failing("never", "Never"));
    cluster.kubectl_ok(&["apply", "-f", never.to_str().unwrap()]);
    eventually_blocking("the pod failed", || {
        (columns(&cluster, "never").1 == "Init:Error").then_some(())
    });
    assert_eq!(pod_json(&cluster, "never")["status"]["phase"], "Failed");
    let written = std::fs::read_to_string(&tries).unwrap();
    assert!(!written.contains("main"), "an app container ran: {written}");
    assert_eq!(written.lines().filter(|l| *l == "never").count(), 1, "{written}");

    cluster.kubectl_ok(&["delete", "pod", "ordered", "blocked", "never"]);
}
