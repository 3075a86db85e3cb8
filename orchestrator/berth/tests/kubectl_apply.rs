//! The real kubectl against a real `berth server`: `kubectl apply --server-side`
//! creates, re-applies, reports a conflict with another manager in kube-apiserver's
//! words (and kubectl's advice after them), and takes the field with
//! `--force-conflicts`. Skipped, with a message, where kubectl is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testkit::eventually_blocking;
use common::{TestCluster, have_kubectl, wait_for_nodes};
use serde_json::Value;

struct Kubectl {
    server: String,
    /// Holds kubectl's cache and an empty kubeconfig, so that the user's are not read.
    dir: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(["--server", &self.server, "--cache-dir"])
            .arg(self.dir.join("cache"))
            .args(args)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl and returns its stdout; fails the test if kubectl fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn deployment(&self) -> Value {
        let json = self.ok(&["get", "deployment", "web", "-o", "json", "--show-managed-fields"]);
        serde_json::from_str(&json).unwrap()
    }
}

fn manifest(replicas: u32, labels: &str, marker: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
{labels}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        command: [\"sleep\", \"{marker}\"]
"
    )
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("web.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// `(manager, operation)` of each managedFields entry.
fn managers(deployment: &Value) -> Vec<(String, String)> {
    deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().into(),
                e["operation"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn kubectl_apply_server_side_creates_conflicts_and_forces() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let kubectl = Kubectl {
        server: format!("http://127.0.0.1:{}", cluster.running_api_ports()[0]),
        dir: cluster.servers.dir().to_path_buf(),
    };
    eventually_blocking("the default namespace", || {
        kubectl
            .run(&["get", "namespace", "default"])
            .status
            .success()
            .then_some(())
    });

    let file = write(&kubectl.dir, &manifest(2, "    app: web\n    tier: front", &marker));
    let created = kubectl.ok(&["apply", "--server-side", "-f", &file]);
    assert_eq!(created.trim(), "deployment.apps/web serverside-applied");
    let web = kubectl.deployment();
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(managers(&web), [("kubectl".to_string(), "Apply".to_string())]);

    // Another manager changes replicas; applying the file again conflicts with it.
    kubectl.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ]);
    let web = kubectl.deployment();
    assert!(
        managers(&web).contains(&("kubectl-patch".into(), "Update".into())),
        "{:?}",
        managers(&web)
    );
    let refused = kubectl.run(&["apply", "--server-side", "-f", &file]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: .spec.replicas"#),
        "{stderr}"
    );
    assert!(
        stderr.contains("Please review the fields above--they currently have other managers"),
        "{stderr}"
    );
    assert_eq!(kubectl.deployment()["spec"]["replicas"], 5);

    // --force-conflicts takes the field back.
    let forced = kubectl.ok(&["apply", "--server-side", "--force-conflicts", "-f", &file]);
    assert_eq!(forced.trim(), "deployment.apps/web serverside-applied");
    let web = kubectl.deployment();
    assert_eq!(web["spec"]["replicas"], 2);
    let patch_entry = web["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl-patch");
    assert!(
        patch_entry.is_none_or(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_none()),
        "{web}"
    );

    // A label dropped from the file goes from the object.
    let file = write(&kubectl.dir, &manifest(2, "    app: web", &marker));
    kubectl.ok(&["apply", "--server-side", "-f", &file]);
    let labels = kubectl.ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.labels}"]);
    assert_eq!(
        serde_json::from_str::<Value>(&labels).unwrap(),
        serde_json::json!({"app": "web"})
    );
}
