//! The kubectl-like commands where no server is needed: bad manifests are refused
//! before anything is sent, an unreachable server is named, unknown kinds and bad
//! flags are reported.

use std::process::{Command, Output};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A server nothing listens on, so a command that did send a request would fail
/// with "cannot reach" rather than succeed by accident.
const NOWHERE: &str = "http://127.0.0.1:1";

fn berth(args: &[&str]) -> (i32, String, String) {
    let Output { status, stdout, stderr } = Command::new(BERTH)
        .args(args)
        .env_remove("BERTH_SERVER")
        .output()
        .unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

const GOOD_NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";

const BAD_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: -2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: http
        command: [python3, -m, http.server]
        resources:
          requests: {memory: 64Mb}
";

#[test]
fn a_bad_manifest_is_rejected_naming_the_field_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, format!("{GOOD_NAMESPACE}---\n{BAD_DEPLOYMENT}")).unwrap();
    let (code, stdout, stderr) = berth(&["apply", "-f", file.to_str().unwrap(), "--server", NOWHERE]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "", "nothing was applied");
    assert!(
        stderr.contains("error: deployment \"web\": spec.replicas: must be 0 or more"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deployment \"web\": spec.template.spec.containers[0].resources.requests.memory:"),
        "every field error is printed: {stderr}"
    );
    assert!(
        !stderr.contains("cannot reach"),
        "validation comes before any request: {stderr}"
    );
}

#[test]
fn a_broken_document_in_a_directory_names_its_file_and_index() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), GOOD_NAMESPACE).unwrap();
    std::fs::write(dir.path().join("b.yml"), format!("{GOOD_NAMESPACE}---\nkind: [oops\n")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let (code, _, stderr) = berth(&["apply", "-f", dir.path().to_str().unwrap(), "-s", NOWHERE]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("b.yml: document 2: not valid YAML"), "{stderr}");
}

#[test]
fn an_unreachable_server_is_named() {
    let (code, stdout, stderr) = berth(&["get", "pods", "--server", NOWHERE]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("error: cannot reach the berth API server at http://127.0.0.1:1 ("),
        "{stderr}"
    );
    assert!(stderr.contains("is the cluster running? (berth up)"), "{stderr}");

    // Every server of a failover list is named.
    let (code, _, stderr) = berth(&["delete", "pod", "x", "-s", "http://127.0.0.1:1,http://127.0.0.1:2"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("http://127.0.0.1:1, http://127.0.0.1:2"), "{stderr}");
}

/// `berth get pods 2>&-`, or a stderr piped to a reader that went away: the error
/// cannot be shown, but the command still ends with its own exit code, no panic.
#[test]
fn a_closed_stderr_is_not_a_panic() {
    let mut child = Command::new(BERTH)
        .args(["get", "pods", "--server", NOWHERE])
        .env_remove("BERTH_SERVER")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(
        child.wait().unwrap().code(),
        Some(1),
        "1 is the command's failure; 101 a panic"
    );
}

#[test]
fn unknown_kinds_and_bad_flags() {
    let (code, _, stderr) = berth(&["get", "flurbs", "-s", NOWHERE]);
    assert_eq!(code, 1);
    assert!(stderr.contains("\"flurbs\""), "{stderr}");
    assert!(stderr.contains("pods (po)"), "the known kinds are listed: {stderr}");

    let (code, _, stderr) = berth(&["get", "pods", "--output", "jsonpath"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("jsonpath"), "{stderr}");

    let (code, _, stderr) = berth(&["scale", "deployment/web", "-s", NOWHERE]);
    assert_eq!(code, 2, "--replicas is required: {stderr}");

    let (code, stdout, _) = berth(&["get", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--all-namespaces"), "{stdout}");
}

#[test]
fn the_roles_refuse_bad_flags_by_name() {
    let cases: &[(&[&str], &str)] = &[
        (&["server", "--api-listen", "nope"], "--api-listen \"nope\""),
        (
            &["server", "--scheduler-strategy=fast"],
            "--scheduler-strategy \"fast\"",
        ),
        (
            &["server", "--node-monitor-grace-period", "soon"],
            "--node-monitor-grace-period",
        ),
        (&["server", "--bogus-flag", "1"], "--bogus-flag"),
        (
            &["server", "--max-requests-inflight", "many"],
            "--max-requests-inflight \"many\"",
        ),
        (&["server", "--request-timeout=0s"], "--request-timeout"),
        // The etcd port open to other hosts beside an authenticating API.
        (
            &[
                "server",
                "--token-auth-file=tokens.csv",
                "--listen-client-urls=http://0.0.0.0:23799",
                "--advertise-client-urls=http://10.0.0.5:23799",
            ],
            "--listen-client-urls http://0.0.0.0:23799: the store's port takes any client",
        ),
        (&["agent", "--cpu", "lots"], "--cpu \"lots\""),
        (&["agent", "--name", "Bad_Name"], "--name \"Bad_Name\""),
        (&["agent", "--store", "127.0.0.1:2379"], "--store"),
        (&["up", "--servers", "2"], "--servers 2"),
    ];
    for (args, named) in cases {
        let (code, _, stderr) = berth(args);
        assert_eq!(code, 2, "berth {args:?}: {stderr}");
        assert!(stderr.contains(named), "berth {args:?} must name {named}: {stderr}");
    }
}
