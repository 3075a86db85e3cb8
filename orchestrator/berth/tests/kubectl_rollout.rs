//! kubectl's rollout commands and `kubectl wait` against a real cluster (three
//! `berth server`s, two `berth agent`s, workloads that are real processes): apply,
//! `set image` twice, `rollout history`, `rollout undo --to-revision=1`,
//! `rollout pause|resume`, `rollout status` and `wait --for=condition=Available`.
//!
//! kubectl computes undo, pause and resume itself (it reads the ReplicaSets and
//! patches the Deployment), so this is what proves the server's side of them. The
//! test is skipped, saying so, when kubectl is not installed.

mod common;

use berth_testkit::eventually_blocking;
use common::{TestCluster, have_kubectl, wait_for_nodes, workload_pids};

fn manifest(marker: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: first release
spec:
  replicas: 2
  strategy:
    type: Recreate
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
"
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
    let images = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(
        images.split_whitespace().collect::<Vec<_>>(),
        ["img:1", "img:1"],
        "{images}"
    );
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
