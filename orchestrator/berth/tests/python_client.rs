//! The official Kubernetes Python client (the `kubernetes` package) against a real
//! cluster: one `berth server` and one `berth agent` on loopback. The client's models
//! refuse an object that lacks a field they require, so what it lists, watches and
//! reads is also a check of every field berth serves (tests/python/client_check.py).
//!
//! The client comes from the virtual environment scripts/test.sh installs it into
//! (`<target>/tmp/python-client`), or `$BERTH_PYTHON`, or the `python3` on PATH if it has
//! the package. Without any of them (an offline machine), the test says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use common::{BERTH, workload_pids};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_check.py");

/// A Python interpreter that imports `kubernetes`. `$BERTH_PYTHON`, when set, must be
/// one: a broken interpreter named on purpose fails the test rather than skipping it.
fn python_with_client() -> Option<PathBuf> {
    let imports_client = |python: &Path| {
        Command::new(python)
            .args(["-c", "import kubernetes"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if let Some(python) = std::env::var_os("BERTH_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            imports_client(&python),
            "BERTH_PYTHON={} cannot import kubernetes",
            python.display()
        );
        return Some(python);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-client/bin/python");
    let found = [venv, PathBuf::from("python3")]
        .into_iter()
        .find(|python| imports_client(python));
    if found.is_none() {
        berth_testkit::skip("a Python with the kubernetes package (scripts/test.sh installs it; or set BERTH_PYTHON)");
    }
    found
}

/// One server and one agent; the workloads (`sleep <marker>`) and the agent go when
/// it is dropped, the server with `servers`.
struct SmallCluster {
    servers: Cluster,
    api_port: u16,
    agent: Process,
    marker: String,
}

impl SmallCluster {
    fn start() -> SmallCluster {
        let spec = ClusterSpec::new(System::BerthServer, BERTH, 1).env("RUST_LOG", QUIET_RAFT_LOG);
        let mut servers = Cluster::new(spec).unwrap();
        let api_port = free_port();
        servers.replicas[0].args = vec![format!("--api-listen=127.0.0.1:{api_port}")];
        let dir = servers.dir().to_path_buf();
        let mut agent = Process::new("node-0", BERTH, dir.join("node-0.log"))
            .with_args([
                "agent".into(),
                "--name=node-0".into(),
                format!("--store={}", servers.endpoints().join(",")),
                format!("--data-dir={}", dir.join("node-0").display()),
                format!("--listen=127.0.0.1:{}", free_port()),
                "--cpu=2".into(),
                "--memory=2Gi".into(),
                "--lease-ttl=3s".into(),
                // The client's pods run commands on the host (their image is a name
                // only, never pulled).
                "--runtime=process".into(),
                // Many such clusters run at once in the machine's own network
                // namespace: none of them programs its Services into the host's iptables.
                "--proxy-mode=none".into(),
            ])
            .with_env("RUST_LOG", QUIET_RAFT_LOG);
        servers.start_all().unwrap();
        agent.start().unwrap();
        SmallCluster {
            marker: format!("{}.{}", 200_000 + std::process::id(), free_port()),
            servers,
            api_port,
            agent,
        }
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }
}

impl Drop for SmallCluster {
    fn drop(&mut self) {
        self.agent.kill();
        for pid in workload_pids(&self.marker) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Whether `berth get nodes` shows the node Ready (the API is up and the agent
/// registered).
fn node_is_ready(cluster: &SmallCluster) -> bool {
    let out = Command::new(BERTH)
        .args(["get", "nodes"])
        .env("BERTH_SERVER", cluster.api())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    out.status.success() && table.lines().any(|l| l.starts_with("node-0") && l.contains(" Ready"))
}

#[test]
fn the_official_python_client_lists_watches_and_reads_pods_deployments_and_the_version() {
    let Some(python) = python_with_client() else {
        return;
    };
    let mut cluster = SmallCluster::start();
    eventually_blocking("the node to be Ready", || {
        if let Err(exited) = cluster.servers.check_running() {
            panic!("{exited:#}");
        }
        cluster.agent.assert_running();
        node_is_ready(&cluster).then_some(())
    });
    let out = Command::new(&python)
        .arg(SCRIPT)
        .arg(cluster.api())
        .arg(&cluster.marker)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{stdout}\n{stderr}\nagent log:\n{}",
        out.status,
        cluster.agent.log_tail(40).join("\n")
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    // Deleting through the client stops the processes it had started.
    eventually_blocking("the deleted pods' processes to end", || {
        workload_pids(&cluster.marker).is_empty().then_some(())
    });
}
