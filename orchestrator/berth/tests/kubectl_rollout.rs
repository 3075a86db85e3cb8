//! kubectl's rollout commands and `kubectl wait` against a real cluster (one
//! `berth server`, one `berth agent`, workloads that are real processes): apply,
//! `set image` twice, `rollout history`, `rollout undo --to-revision=1`,
//! `rollout pause|resume`, `rollout status` and `wait --for=condition=Available`.
//!
//! kubectl computes undo, pause and resume itself (it reads the ReplicaSets and
//! patches the Deployment), so this is what proves the server's side of them. The
//! test is skipped, saying so, when kubectl is not installed.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use common::{BERTH, workload_pids};

struct TestCluster {
    servers: Cluster,
    agent: Process,
    kubeconfig: PathBuf,
    /// Every workload sleeps for this marker, so its processes can be found.
    marker: String,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.agent.kill();
        for pid in workload_pids(&self.marker) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

impl TestCluster {
    fn start() -> TestCluster {
        let spec = ClusterSpec::new(System::BerthServer, BERTH, 1).env("RUST_LOG", QUIET_RAFT_LOG);
        let mut servers = Cluster::new(spec).unwrap();
        let api_port = free_port();
        servers.replicas[0].args = vec![format!("--api-listen=127.0.0.1:{api_port}")];
        let dir = servers.dir().to_path_buf();
        let agent = Process::new("node-0", BERTH, dir.join("node-0.log"))
            .with_args([
                "agent".into(),
                "--name=node-0".into(),
                format!("--store={}", servers.endpoints().join(",")),
                format!("--data-dir={}", dir.join("node-0").display()),
                format!("--listen=127.0.0.1:{}", free_port()),
                "--cpu=4".into(),
                "--memory=4Gi".into(),
                "--restart-backoff=500ms".into(),
            ])
            .with_env("RUST_LOG", QUIET_RAFT_LOG);
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- name: berth
  cluster:
    server: http://127.0.0.1:{api_port}
contexts:
- name: berth
  context:
    cluster: berth
    namespace: default
current-context: berth
"
            ),
        )
        .unwrap();
        let mut cluster = TestCluster {
            marker: format!("{}.{}", 200_000 + std::process::id(), free_port()),
            servers,
            agent,
            kubeconfig,
        };
        cluster.servers.start_all().unwrap();
        cluster.agent.start().unwrap();
        cluster
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.servers.dir())
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl and returns its stdout; fails the test with its output if it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed ({}): {}\n{}\nserver log: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.servers.log_tails(20),
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn jsonpath(&self, resource: &str, path: &str) -> String {
        self.ok(&["get", resource, "-o", &format!("jsonpath={path}")])
    }
}

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

fn kubectl_is_installed() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|out| out.status.success())
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
    if !kubectl_is_installed() {
        eprintln!("SKIPPED: kubectl is not installed; this test drives the real kubectl");
        return;
    }
    let mut cluster = TestCluster::start();
    eventually_blocking("the API server and a Ready node", || {
        if let Err(exited) = cluster.servers.check_running() {
            panic!("{exited:#}");
        }
        cluster.agent.assert_running();
        let out = cluster.kubectl(&[
            "get",
            "node",
            "node-0",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (out.status.success() && String::from_utf8_lossy(&out.stdout) == "True").then_some(())
    });
    let marker = cluster.marker.clone();
    let path = cluster.servers.dir().join("web.yaml");
    std::fs::write(&path, manifest(&marker)).unwrap();
    let applied = cluster.ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(applied.contains("deployment.apps/web created"), "{applied}");
    let status = cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    assert_eq!(workload_pids(&marker).len(), 2);

    for (image, cause) in [("img:2", "second release"), ("img:3", "third release")] {
        let set = cluster.ok(&["set", "image", "deployment/web", &format!("main={image}")]);
        assert!(set.contains("deployment.apps/web image updated"), "{set}");
        cluster.ok(&[
            "annotate",
            "deployment/web",
            "--overwrite",
            &format!("kubernetes.io/change-cause={cause}"),
        ]);
        cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    }
    let history = cluster.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.starts_with("deployment.apps/web"), "{history}");
    assert_eq!(
        history_rows(&history),
        rows(&[("1", "first release"), ("2", "second release"), ("3", "third release")]),
        "{history}"
    );
    let second = cluster.ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(second.contains("revision #2"), "{second}");
    assert!(second.contains("img:2"), "{second}");
    assert!(second.contains("second release"), "{second}");

    let undone = cluster.ok(&["rollout", "undo", "deployment/web", "--to-revision=1"]);
    assert!(undone.contains("deployment.apps/web rolled back"), "{undone}");
    let status = cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    assert_eq!(
        cluster.jsonpath("deployment/web", "{.spec.template.spec.containers[0].image}"),
        "img:1"
    );
    assert_eq!(
        cluster.jsonpath(
            "deployment/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "4"
    );
    let history = cluster.ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        history_rows(&history),
        rows(&[("2", "second release"), ("3", "third release"), ("4", "first release")]),
        "{history}"
    );
    let images = cluster.ok(&[
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
    let waited = cluster.ok(&["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"]);
    assert!(waited.contains("condition met"), "{waited}");

    // Paused: a new image waits, scaling still applies; resumed, it rolls out.
    let paused = cluster.ok(&["rollout", "pause", "deployment/web"]);
    assert!(paused.contains("deployment.apps/web paused"), "{paused}");
    cluster.ok(&["set", "image", "deployment/web", "main=img:5"]);
    cluster.ok(&["scale", "deployment/web", "--replicas=3"]);
    eventually_blocking("the scale of the paused deployment observed", || {
        let observed = cluster.jsonpath(
            "deployment/web",
            "{.metadata.generation} {.status.observedGeneration} {.status.replicas}",
        );
        let fields: Vec<&str> = observed.split_whitespace().collect();
        (fields.len() == 3 && fields[0] == fields[1] && fields[2] == "3").then_some(())
    });
    assert_eq!(
        cluster.jsonpath(
            "deployment/web",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}"
        ),
        "DeploymentPaused"
    );
    let images = cluster.ok(&[
        "get",
        "rs",
        "-o",
        "jsonpath={.items[*].spec.template.spec.containers[0].image}",
    ]);
    assert!(
        !images.contains("img:5"),
        "paused: no ReplicaSet of the new template: {images}"
    );
    let resumed = cluster.ok(&["rollout", "resume", "deployment/web"]);
    assert!(resumed.contains("deployment.apps/web resumed"), "{resumed}");
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    cluster.ok(&["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"]);
    assert_eq!(
        cluster.jsonpath(
            "deployment/web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "5"
    );
    eventually_blocking("3 workload processes", || {
        (workload_pids(&marker).len() == 3).then_some(())
    });
}
