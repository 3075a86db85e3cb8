//! kubectl's node verbs against a cluster of real processes: `exec` (with stdin, a
//! terminal, exit codes), `cp` (tar over exec), `attach`, `port-forward`, and the
//! log options that need the agent (`--previous`, `--timestamps`). Each request goes
//! kubectl → API server → agent, the upgrade proxied as kube-apiserver proxies it to
//! the kubelet.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use berth_testkit::eventually_blocking;
use common::*;

/// A pod that sleeps for the cluster's marker, in a working directory of its own
/// (the process runtime runs commands on the host).
fn sleeper(cluster: &TestCluster, name: &str) -> std::path::PathBuf {
    let dir = cluster.servers.dir().join(format!("{name}-workdir"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sleep, \"{marker}\"]
    workingDir: {dir}
    env:
    - {{name: GREETING, value: hello-from-the-pod}}
",
        marker = cluster.marker,
        dir = dir.display()
    );
    let path = cluster.write_manifest(&format!("{name}.yaml"), &manifest);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_running(cluster, name);
    dir
}

fn wait_running(cluster: &TestCluster, name: &str) {
    eventually_blocking(&format!("pod {name} running"), || {
        let (_, pod) = cluster.get(&format!("/api/v1/namespaces/default/pods/{name}"));
        (pod["status"]["phase"] == "Running").then_some(())
    });
}

/// kubectl with `input` on its stdin.
fn kubectl_with_stdin(cluster: &TestCluster, args: &[&str], input: &[u8]) -> std::process::Output {
    let server = format!("http://127.0.0.1:{}", cluster.running_api_ports()[0]);
    let mut child = Command::new("kubectl")
        .arg(format!("--server={server}"))
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", cluster.servers.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn kubectl_exec_runs_commands_in_the_container() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let dir = sleeper(&cluster, "shell");

    // The container's environment and working directory.
    let out = cluster.kubectl_ok(&["exec", "shell", "--", "sh", "-c", "echo $GREETING; pwd"]);
    assert_eq!(out, format!("hello-from-the-pod\n{}\n", dir.display()));

    // stderr apart from stdout, and the exit code passed on.
    let out = cluster.kubectl_output(&["exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("err\n"), "{out:?}");

    // stdin, to its end.
    let out = kubectl_with_stdin(&cluster, &["exec", "-i", "shell", "--", "wc", "-l"], b"a\nb\nc\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");

    // A terminal: kubectl wants one of its own to pass on, which `script` gives it;
    // the command sees one, and its output comes back through it.
    let server = format!("http://127.0.0.1:{}", cluster.running_api_ports()[0]);
    let inner = format!("kubectl --server={server} exec -i -t shell -- sh -c 'test -t 0 && echo is-a-tty; stty size'");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", cluster.servers.dir())
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(printed.contains("is-a-tty\r\n"), "{printed:?}");

    // The errors kubectl shows as kube-apiserver's.
    let error = cluster.kubectl_fails(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert!(error.contains("container nope is not valid for pod shell"), "{error}");
    let error = cluster.kubectl_fails(&["exec", "missing", "--", "true"]);
    assert!(error.contains("pods \"missing\" not found"), "{error}");
}
