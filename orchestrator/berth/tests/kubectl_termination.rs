//! Graceful pod deletion end to end, with the real kubectl: `kubectl delete` leaves
//! the pod Terminating while its preStop hook runs and its process handles SIGTERM,
//! then waits until the agent removed it; `--force --grace-period=0` removes it at
//! once, with kubectl's warning, and the agent still stops its process.

mod common;

use std::time::SystemTime;

use berth_testkit::eventually_blocking;
use common::*;

/// A pod whose preStop hook records that it ran and then takes `hook_seconds`, and
/// whose process records the SIGTERM it traps; its files go in `dir`.
fn draining_pod(cluster: &TestCluster, name: &str, dir: &std::path::Path, grace: u32, hook_seconds: u32) {
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'trap \"echo term > {dir}/term; exit 0\" TERM; sleep {marker} & wait']
    lifecycle:
      preStop:
        exec:
          command: [sh, -c, 'echo hook > {dir}/hook; sleep {hook_seconds}']
",
        marker = cluster.marker,
        dir = dir.display(),
    );
    let path = cluster.write_manifest(&format!("{name}.yaml"), &manifest);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    eventually_blocking(&format!("pod {name} running"), || {
        let (_, pod) = cluster.get(&format!("/api/v1/namespaces/default/pods/{name}"));
        (pod["status"]["phase"] == "Running").then_some(())
    });
}

fn modified(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn kubectl_delete_waits_for_the_hook_and_the_sigterm_and_force_removes_at_once() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let dir = cluster.servers.dir().join("drain-files");
    std::fs::create_dir_all(&dir).unwrap();
    draining_pod(&cluster, "drain", &dir, 30, 3);

    cluster.kubectl_ok(&["delete", "pod", "drain", "--wait=false"]);
    let listed = cluster.kubectl_ok(&["get", "pod", "drain", "--no-headers"]);
    assert!(listed.contains("Terminating"), "{listed}");
    // A second delete waits, as kubectl does, until the pod is gone.
    let out = cluster.kubectl_ok(&["delete", "pod", "drain", "--timeout=60s"]);
    assert!(out.contains("pod \"drain\" deleted"), "{out}");
    assert_eq!(cluster.get("/api/v1/namespaces/default/pods/drain").0, 404);
    let (hook, term) = (dir.join("hook"), dir.join("term"));
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "hook\n",
        "the preStop hook ran"
    );
    assert_eq!(
        std::fs::read_to_string(&term).unwrap(),
        "term\n",
        "the process got SIGTERM"
    );
    assert!(modified(&hook) <= modified(&term), "the hook ran before the SIGTERM");
    assert!(workload_pids(&cluster.marker).is_empty(), "its process is gone");

    // Forced: the object goes at once; the agent stops the process on its own.
    let forced_dir = cluster.servers.dir().join("forced-files");
    std::fs::create_dir_all(&forced_dir).unwrap();
    draining_pod(&cluster, "forced", &forced_dir, 2, 0);
    let out = cluster.kubectl_output(&["delete", "pod", "forced", "--force", "--grace-period=0"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("pod \"forced\" force deleted"), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "Warning: Immediate deletion does not wait for confirmation that the running resource has been \
             terminated. The resource may continue to run on the cluster indefinitely."
        ),
        "{out:?}"
    );
    assert_eq!(cluster.get("/api/v1/namespaces/default/pods/forced").0, 404);
    eventually_blocking("the forced pod's process stopped", || {
        workload_pids(&cluster.marker).is_empty().then_some(())
    });
}
