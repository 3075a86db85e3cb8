//! kubectl's rollout commands and `kubectl wait` against a real cluster (three
//! `berth server`s, two `berth agent`s, workloads that are real processes): apply,
//! `set image` twice, `rollout history`, `rollout undo --to-revision=1`,
//! `rollout pause|resume`, `rollout status` and `wait --for=condition=Available`
//! (Recreate); and a RollingUpdate one pod at a time, `rollout undo`, `rollout
//! restart`.
//!
//! kubectl computes undo, pause and resume itself (it reads the ReplicaSets and
//! patches the Deployment), so this is what proves the server's side of them. The
//! test is skipped, saying so, when kubectl is not installed.

mod common;

use berth_testkit::eventually_blocking;
use common::{TestCluster, have_kubectl, wait_for_nodes, workload_pids};

fn manifest(marker: &str) -> String {
    rolling_manifest(marker, "type: Recreate")
}

fn rolling_manifest(marker: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: first release
spec:
  replicas: {replicas}
  strategy:
    {strategy}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: img:1
        command: [\"sleep\", \"{marker}\"]
        resources:
          requests:
            cpu: 100m
",
        replicas = if strategy.contains("Recreate") { 2 } else { 3 }
    )
}

/// Rows of `kubectl rollout history`: (revision, change cause).
fn history_rows(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .skip_while(|line| !line.starts_with("REVISION"))
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (revision, cause) = line.trim().split_once(char::is_whitespace).unwrap_or((line.trim(), ""));
            (revision.to_string(), cause.trim().to_string())
        })
        .collect()
}

fn rows(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    entries.iter().map(|(r, c)| (r.to_string(), c.to_string())).collect()
}

#[test]
fn kubectl_rolls_out_lists_history_undoes_pauses_and_waits() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let path = cluster.servers.dir().join("web.yaml");
    std::fs::write(&path, manifest(&marker)).unwrap();
    let applied = cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(applied.contains("deployment.apps/web created"), "{applied}");
    let status = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    assert_eq!(workload_pids(&marker).len(), 2);

    for (image, cause) in [("img:2", "second release"), ("img:3", "third release")] {
        let set = cluster.kubectl_ok(&["set", "image", "deployment/web", &format!("main={image}")]);
        assert!(set.contains("deployment.apps/web image updated"), "{set}");
        cluster.kubectl_ok(&[
            "annotate",
            "deployment/web",
            "--overwrite",
            &format!("kubernetes.io/change-cause={cause}"),
        ]);
        cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    }
    let history = cluster.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.starts_with("deployment.apps/web"), "{history}");
    assert_eq!(
        history_rows(&history),
        rows(&[("1", "first release"), ("2", "second release"), ("3", "third release")]),
        "{history}"
    );
    let second = cluster.kubectl_ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(second.contains("revision #2"), "{second}");
    assert!(second.contains("img:2"), "{second}");
    assert!(second.contains("second release"), "{second}");

    let undone = cluster.kubectl_ok(&["rollout", "undo", "deployment/web", "--to-revision=1"]);
    assert!(undone.contains("deployment.apps/web rolled back"), "{undone}");
    let status = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    assert_eq!(
        jsonpath(&cluster, "deployment/web", "{.spec.template.spec.containers[0].image}"),
        "img:1"
    );
    assert_eq!(
        jsonpath(
            &cluster,
            "deployment/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "4"
    );
    let history = cluster.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        history_rows(&history),
        rows(&[("2", "second release"), ("3", "third release"), ("4", "first release")]),
        "{history}"
    );
    // The old pods may still be terminating (gracefully) when the rollout is done.
    eventually_blocking("only the first template's pods", || {
        let images = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        (images.split_whitespace().collect::<Vec<_>>() == ["img:1", "img:1"]).then_some(())
    });
    let waited = cluster.kubectl_ok(&["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"]);
    assert!(waited.contains("condition met"), "{waited}");

    // Paused: a new image waits, scaling still applies; resumed, it rolls out.
    let paused = cluster.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    assert!(paused.contains("deployment.apps/web paused"), "{paused}");
    cluster.kubectl_ok(&["set", "image", "deployment/web", "main=img:5"]);
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=3"]);
    eventually_blocking("the scale of the paused deployment observed", || {
        let observed = jsonpath(
            &cluster,
            "deployment/web",
            "{.metadata.generation} {.status.observedGeneration} {.status.replicas}",
        );
        let fields: Vec<&str> = observed.split_whitespace().collect();
        (fields.len() == 3 && fields[0] == fields[1] && fields[2] == "3").then_some(())
    });
    assert_eq!(
        jsonpath(
            &cluster,
            "deployment/web",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}"
        ),
        "DeploymentPaused"
    );
    let images = cluster.kubectl_ok(&[
        "get",
        "rs",
        "-o",
        "jsonpath={.items[*].spec.template.spec.containers[0].image}",
    ]);
    assert!(
        !images.contains("img:5"),
        "paused: no ReplicaSet of the new template: {images}"
    );
    let resumed = cluster.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    assert!(resumed.contains("deployment.apps/web resumed"), "{resumed}");
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    cluster.kubectl_ok(&["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"]);
    assert_eq!(
        jsonpath(
            &cluster,
            "deployment/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "5"
    );
    eventually_blocking("3 workload processes", || {
        (workload_pids(&marker).len() == 3).then_some(())
    });
}

fn jsonpath(cluster: &TestCluster, resource: &str, path: &str) -> String {
    cluster.kubectl_ok(&["get", resource, "-o", &format!("jsonpath={path}")])
}

/// `(name, image)` of the Deployment's ReplicaSets.
fn replica_sets(cluster: &TestCluster) -> Vec<(String, String)> {
    let listed = cluster.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.template.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    listed
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, image)| (name.to_string(), image.to_string()))
        .collect()
}

fn replica_set_of(cluster: &TestCluster, image: &str) -> String {
    let sets = replica_sets(cluster);
    let mut names = sets.iter().filter(|(_, i)| i == image).map(|(n, _)| n.clone());
    names
        .next()
        .unwrap_or_else(|| panic!("no ReplicaSet of {image}: {sets:?}"))
}

/// The `(from, to)` of each ScalingReplicaSet Event about `replica_set`.
fn scalings(cluster: &TestCluster, replica_set: &str) -> Vec<(i32, i32)> {
    let messages = cluster.kubectl_ok(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[?(@.reason==\"ScalingReplicaSet\")]}{.message}{\"\\n\"}{end}",
    ]);
    let needle = format!("replica set {replica_set} from ");
    messages
        .lines()
        .filter_map(|line| line.split_once(&needle).map(|(_, rest)| rest.to_string()))
        .filter_map(|rest| {
            let (from, to) = rest.split_once(" to ")?;
            Some((from.trim().parse().ok()?, to.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn kubectl_rolls_a_deployment_one_pod_at_a_time_undoes_and_restarts() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let path = cluster.servers.dir().join("web.yaml");
    let strategy = "type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0";
    std::fs::write(&path, rolling_manifest(&marker, strategy)).unwrap();
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);

    cluster.kubectl_ok(&["set", "image", "deployment/web", "main=img:2"]);
    let status = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    // maxSurge 1, maxUnavailable 0: the new ReplicaSet grew and the old one shrank
    // one pod at a time (each step waits for a new pod to be available).
    let (old, new) = (replica_set_of(&cluster, "img:1"), replica_set_of(&cluster, "img:2"));
    // (Events list by name, not by time: the steps are sorted here.)
    eventually_blocking("the rollout's scaling events", || {
        (scalings(&cluster, &new).len() >= 3 && scalings(&cluster, &old).len() >= 4).then_some(())
    });
    let mut up = scalings(&cluster, &new);
    up.sort();
    assert_eq!(up, [(0, 1), (1, 2), (2, 3)]);
    let mut down = scalings(&cluster, &old);
    down.sort_by_key(|(from, to)| std::cmp::Reverse((*to > *from, *from)));
    assert_eq!(
        down,
        [(0, 3), (3, 2), (2, 1), (1, 0)],
        "created, then down one at a time"
    );
    // The last old pod may still be terminating (gracefully) when the rollout is done.
    eventually_blocking("only the new template's pods", || {
        let images = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        (images.split_whitespace().collect::<Vec<_>>() == ["img:2"; 3]).then_some(())
    });

    let undone = cluster.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    assert!(undone.contains("deployment.apps/web rolled back"), "{undone}");
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert_eq!(
        jsonpath(&cluster, "deployment/web", "{.spec.template.spec.containers[0].image}"),
        "img:1"
    );
    assert_eq!(
        jsonpath(&cluster, &format!("rs/{old}"), "{.spec.replicas}"),
        "3",
        "the first ReplicaSet is back"
    );

    let restarted = cluster.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    assert!(restarted.contains("deployment.apps/web restarted"), "{restarted}");
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert_eq!(
        jsonpath(
            &cluster,
            "deployment/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "4"
    );
    let history = cluster.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<String> = history_rows(&history).into_iter().map(|(r, _)| r).collect();
    assert_eq!(revisions, ["2", "3", "4"], "{history}");
    let restarted_at = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ]);
    assert_eq!(restarted_at.split_whitespace().count(), 3, "new pods: {restarted_at}");
    eventually_blocking("3 workload processes", || {
        (workload_pids(&marker).len() == 3).then_some(())
    });
}

#[test]
fn a_rollout_past_its_deadline_rolls_back_by_itself_with_the_annotation() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let path = cluster.servers.dir().join("web.yaml");
    let strategy = "type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0";
    let manifest = rolling_manifest(&marker, strategy)
        .replace(
            "    kubernetes.io/change-cause: first release\n",
            "    kubernetes.io/change-cause: first release\n    berth.io/auto-rollback: \"true\"\n",
        )
        .replace("  replicas: 3\n", "  replicas: 3\n  progressDeadlineSeconds: 5\n");
    std::fs::write(&path, manifest).unwrap();
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);

    // A release whose pods never get ready: they exit at once.
    cluster.kubectl_ok(&[
        "patch",
        "deployment/web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/command","value":["false"]}]"#,
    ]);
    let warning = eventually_blocking("an AutoRollback Warning", || {
        let events = cluster.kubectl_ok(&[
            "get",
            "events",
            "-o",
            "jsonpath={range .items[?(@.reason==\"AutoRollback\")]}{.type}: {.message}{\"\\n\"}{end}",
        ]);
        (!events.trim().is_empty()).then_some(events)
    });
    assert!(
        warning.starts_with("Warning: Rolled back deployment \"web\" to revision 1: replica set \"web-"),
        "{warning}"
    );
    assert!(
        warning.contains("(revision 2) exceeded its progress deadline"),
        "{warning}"
    );
    assert_eq!(
        jsonpath(
            &cluster,
            "deployment/web",
            "{.spec.template.spec.containers[0].command[0]}"
        ),
        "sleep"
    );
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert_eq!(
        jsonpath(
            &cluster,
            "deployment/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "3",
        "the first template is back, as revision 3"
    );
    eventually_blocking("3 workload processes", || {
        (workload_pids(&marker).len() == 3).then_some(())
    });
    let warnings = cluster.kubectl_ok(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[?(@.reason==\"AutoRollback\")]}{.count}{\"\\n\"}{end}",
    ]);
    assert_eq!(warnings.trim(), "1", "once: {warnings}");
}
