//! Smoke test: `berth-bench` runs every workload against one real `berth store` replica
//! and reports zero errors, and for watch every event delivered exactly once, in order;
//! `berth-bench api`, at a small size, starts its own `berth server` and does the same;
//! `berth-bench pods` times a few bare runc containers (as root) and a few berth pods
//! from a loopback registry, and leaves nothing behind; `berth-bench traffic`, small,
//! runs its three parts on test hosts with runc containers and leaves no host behind.
//!
//! The `berth` binary is taken from the same target directory as `berth-bench`
//! (`target/debug/berth`, found by `berth_testkit::berth_binary`); scripts/test.sh
//! builds the whole workspace before the tests.

use std::process::Command;

use berth_testkit::{Cluster, ClusterSpec, berth_binary};
use serde_json::Value;

/// One `berth store` replica in a temp dir, killed on drop, once it leads.
struct Replica {
    cluster: Cluster,
    endpoint: String,
}

impl Replica {
    fn start() -> Self {
        let mut cluster = Cluster::start(ClusterSpec::berth_store(1)).expect("starting berth store");
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        runtime
            .block_on(cluster.wait_for_leader())
            .expect("the replica elects itself leader");
        let endpoint = cluster.replicas[0].endpoint();
        Self { cluster, endpoint }
    }

    /// The end of the replica's log, for failure messages.
    fn log_tail(&self) -> String {
        self.cluster.replicas[0].log_tail(20).join("\n")
    }
}

/// Runs `berth-bench ARGS --endpoints <the replica>` and returns its JSON line.
fn bench(replica: &Replica, args: &[&str]) -> Value {
    let endpoint = replica.endpoint.as_str();
    let output = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .args(args)
        .args(["--endpoints", endpoint, "--duration", "30s", "--request-timeout", "5s"])
        .output()
        .expect("running berth-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "berth-bench {args:?} failed ({}):\n{stdout}\n{}\n--- berth log tail ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        replica.log_tail()
    );
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in the output of berth-bench {args:?}:\n{stdout}"));
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error} in JSON line {line}"))
}

fn assert_clean(report: &Value, workload: &str, total: u64) {
    assert_eq!(report["workload"], workload, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["total"], total, "{report}");
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0, "{report}");
    for field in ["avg", "p50", "p90", "p99", "max"] {
        assert!(
            report["latency_ms"][field].as_f64().unwrap() > 0.0,
            "latency {field}: {report}"
        );
    }
}

#[test]
fn every_workload_runs_cleanly_against_one_replica() {
    let replica = Replica::start();
    let many = ["--clients", "10", "--conns", "2", "--total", "300"];

    let put = bench(&replica, &[&["put"][..], &many].concat());
    assert_clean(&put, "put", 300);

    let put_leader = bench(
        &replica,
        &["put", "--target-leader", "--sequential-keys", "--total", "50"],
    );
    assert_clean(&put_leader, "put", 50);

    for consistency in ["l", "s"] {
        let range = bench(
            &replica,
            &[&["range", "--consistency", consistency][..], &many].concat(),
        );
        assert_clean(&range, "range", 300);
    }

    let txn = bench(&replica, &[&["txn", "--key-space-size", "5"][..], &many].concat());
    assert_clean(&txn, "txn", 300);
    assert!(txn["conflicts"].as_u64().is_some(), "{txn}");

    let watch = bench(
        &replica,
        &[
            "watch",
            "--watchers",
            "5",
            "--clients",
            "2",
            "--conns",
            "2",
            "--total",
            "200",
        ],
    );
    assert_clean(&watch, "watch", 200);
    assert_eq!(watch["events_delivered"], 5 * 200, "{watch}");
    for field in [
        "missing",
        "duplicates",
        "out_of_order",
        "watcher_errors",
        "unacked_events",
    ] {
        assert_eq!(watch[field], 0, "watch {field}: {watch}");
    }

    let leases = bench(&replica, &[&["lease-keepalive", "--ttl", "30"][..], &many].concat());
    assert_clean(&leases, "lease-keepalive", 300);
}

#[test]
fn the_api_benchmark_creates_lists_and_watches_pods_on_its_own_server() {
    let berth = berth_binary();
    let output = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .args(["api", "--pods", "300", "--page", "50", "--lists", "2", "--conns", "3"])
        .args(["--duration", "60s", "--drain-timeout", "20s", "--berth"])
        .arg(&berth)
        .output()
        .expect("running berth-bench api");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "berth-bench api failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error} in JSON line {line}")))
        .collect();
    let line = |workload: &str| {
        lines
            .iter()
            .find(|line| line["workload"] == workload)
            .unwrap_or_else(|| panic!("no {workload} line in:\n{stdout}"))
    };
    assert_clean(line("api-create"), "api-create", 300);
    // Two lists of six pages of 50.
    let list = line("api-list");
    assert_clean(list, "api-list", 12);
    assert_eq!(list["lists_completed"], 2, "{list}");
    assert_clean(line("api-patch"), "api-patch", 300);
    let watch = line("api-watch");
    assert_eq!(watch["errors"], 0, "{watch}");
    assert_eq!(watch["events_delivered"], 300, "{watch}");
    assert_eq!(watch["replay_events_delivered"], 300, "{watch}");
    let server = line("api-server");
    let checkpoints = server["checkpoints"].as_array().unwrap();
    let names: Vec<&str> = checkpoints.iter().map(|c| c["at"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["started", "created", "listed", "watched", "replayed"],
        "{server}"
    );
    for checkpoint in checkpoints {
        assert!(checkpoint["rss_kib"].as_u64().unwrap() > 0, "{server}");
    }
}

#[test]
fn the_secrets_benchmark_compares_plain_and_sealed_secrets() {
    let berth = berth_binary();
    let output = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .args([
            "secrets",
            "--secrets",
            "100",
            "--size",
            "512",
            "--conns",
            "2",
            "--rounds",
            "1",
        ])
        .args(["--duration", "60s", "--berth"])
        .arg(&berth)
        .output()
        .expect("running berth-bench secrets");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The run fails unless the store held the encrypted server's Secrets sealed and
    // the plain server's as JSON.
    assert!(
        output.status.success(),
        "berth-bench secrets failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for workload in ["secrets-create", "secrets-update", "secrets-get"] {
        let line: Value = stdout
            .lines()
            .filter(|line| line.starts_with('{'))
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|line| line["workload"] == workload)
            .unwrap_or_else(|| panic!("no {workload} line in:\n{stdout}"));
        for mode in ["plain", "encrypted"] {
            let rps = line[format!("throughput_rps_{mode}")].as_f64().unwrap_or_default();
            assert!(rps > 0.0, "{workload} {mode}: {line}");
        }
        assert!(
            line["throughput_rps_ratio"].as_f64().unwrap_or_default() > 0.0,
            "{line}"
        );
    }
}

/// Runs `berth-bench pods ARGS` and returns its JSON lines; the child's pid too.
fn pods_bench(args: &[&str]) -> (Vec<Value>, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .arg("pods")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running berth-bench pods");
    let pid = child.id();
    let output = child.wait_with_output().expect("waiting for berth-bench pods");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "berth-bench pods {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error} in JSON line {line}")))
        .collect();
    (lines, pid)
}

fn line<'a>(lines: &'a [Value], workload: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["workload"] == workload)
        .unwrap_or_else(|| panic!("no {workload} line in {lines:?}"))
}

#[test]
fn the_pods_benchmark_times_bare_runc_and_deletes_its_containers() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
    if !is_root {
        berth_testkit::skip("root, for bare runc");
        return;
    }
    if berth_benches::pods::runc::find_runc(None).is_err() {
        berth_testkit::skip("runc (scripts/test.sh installs it)");
        return;
    }
    if berth_testkit::oci::busybox_binary().is_none() {
        berth_testkit::skip("a static busybox (Debian's busybox-static; scripts/test.sh installs it)");
        return;
    }
    let (lines, pid) = pods_bench(&["--only", "runc", "--pods", "3"]);
    assert_clean(line(&lines, "pods-runc"), "pods-runc", 3);
    // Each container had a cgroup of its own, named after the bench's pid; runc delete
    // took them all away.
    let prefix = format!("berth-bench-{pid}-");
    let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/memory")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
fn the_pods_benchmark_times_berth_pods_from_a_loopback_registry() {
    if berth_testkit::registry::docker_registry_binary().is_none() {
        berth_testkit::skip("docker-registry (scripts/test.sh installs it)");
        return;
    }
    if berth_testkit::oci::busybox_binary().is_none() {
        berth_testkit::skip("a static busybox (Debian's busybox-static; scripts/test.sh installs it)");
        return;
    }
    let berth = berth_binary();
    let berth = berth.display().to_string();
    let (lines, _) = pods_bench(&["--only", "berth", "--pods", "3", "--rss-pods", "6", "--berth", &berth]);
    assert_clean(line(&lines, "pods-berth"), "pods-berth", 3);
    let agent = line(&lines, "pods-agent");
    let points: Vec<&str> = agent["rss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["at"].as_str().unwrap())
        .collect();
    assert_eq!(points, ["idle", "4 pods", "6 pods"], "{agent}");
}

#[test]
fn the_autoscale_benchmark_times_a_scale_up_on_runc_burners() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
    let has_runc = berth_benches::pods::runc::find_runc(None).is_ok();
    let has_registry = berth_testkit::registry::docker_registry_binary().is_some();
    if !(is_root && has_runc && has_registry && berth_testkit::oci::busybox_binary().is_some()) {
        berth_testkit::skip("root, runc, docker-registry and a static busybox (scripts/test.sh installs them)");
        return;
    }
    let berth = berth_binary();
    let output = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .args([
            "autoscale",
            "--rounds",
            "1",
            "--sync-period",
            "1s",
            "--timeout",
            "120s",
            "--berth",
        ])
        .arg(&berth)
        .output()
        .expect("running berth-bench autoscale");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "berth-bench autoscale failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|line| line["workload"] == "autoscale")
        .unwrap_or_else(|| panic!("no autoscale line in:\n{stdout}"));
    let replicas = line["replicas"][0].as_i64().unwrap_or_default();
    assert!(replicas > 1, "the burners were scaled up: {line}");
    let (decision, ready) = (
        line["decision_p50_ms"].as_f64().unwrap_or_default(),
        line["ready_p50_ms"].as_f64().unwrap_or_default(),
    );
    assert!(decision > 0.0 && ready >= decision, "{line}");
}

#[test]
fn the_traffic_benchmark_measures_a_service_a_readiness_change_and_dns_and_leaves_no_host_behind() {
    if let Err(lacking) = berth_benches::traffic::cluster::check_machine() {
        berth_testkit::skip(&format!("{lacking:#}"));
        return;
    }
    if berth_testkit::registry::docker_registry_binary().is_none() {
        berth_testkit::skip("docker-registry (scripts/test.sh installs it)");
        return;
    }
    if berth_testkit::oci::busybox_binary().is_none() {
        berth_testkit::skip("a static busybox (Debian's busybox-static; scripts/test.sh installs it)");
        return;
    }
    let berth = berth_binary();
    let echo = berth.with_file_name("berth-echo");
    if !echo.is_file() {
        berth_testkit::skip("berth-echo beside berth (`cargo build -p berth-jepsen`; scripts/test.sh builds it)");
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .arg("traffic")
        .args([
            "--berth",
            &berth.display().to_string(),
            "--echo",
            &echo.display().to_string(),
        ])
        .args(["--duration", "1s", "--warm-up", "200ms", "--rounds", "1"])
        .args(["--changes", "2", "--dns-services", "5", "--dns-clients", "4"])
        .args(["--volume-pods", "3", "--volume-updates", "2"])
        .output()
        .expect("running berth-bench traffic");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "berth-bench traffic failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error} in JSON line {line}")))
        .collect();
    for workload in [
        "http-pod-ip-keep-alive",
        "http-cluster-ip-keep-alive",
        "http-pod-ip-new-connection",
        "http-cluster-ip-new-connection",
    ] {
        let report = line(&lines, workload);
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["total"].as_u64().unwrap() > 0, "{report}");
    }
    // New connections through the cluster IP reach every one of the 4 pods.
    let spread = line(&lines, "http-cluster-ip-new-connection")["answers_by_pod"].clone();
    assert_eq!(spread.as_object().map(|pods| pods.len()), Some(4), "{spread}");
    let readiness = line(&lines, "readiness-to-proxy");
    assert_eq!(readiness["changes"], 2, "{readiness}");
    for direction in ["leave_ms", "back_ms"] {
        assert!(readiness[direction]["p50"].as_f64().unwrap() > 0.0, "{readiness}");
    }
    let dns = line(&lines, "dns-berth");
    assert_eq!(dns["errors"], 0, "{dns}");
    assert!(dns["total"].as_u64().unwrap() > 0, "{dns}");
    let volumes = line(&lines, "secret-update-to-volumes");
    assert_eq!(
        (volumes["pods"].as_u64(), volumes["updates"].as_u64()),
        (Some(3), Some(2)),
        "{volumes}"
    );
    assert!(volumes["every_pod_ms"]["p50"].as_f64().unwrap() > 0.0, "{volumes}");
    // The hosts went with the run: their bridge and namespaces.
    let bridge = stderr
        .split("hosts on bridge ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no bridge named in:\n{stderr}"));
    let links = Command::new(berth_testkit::hosts::system_tool("ip"))
        .args(["-br", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.lines().any(|l| l.split_whitespace().next() == Some(bridge)),
        "{bridge} left: {links}"
    );
    let namespaces = Command::new(berth_testkit::hosts::system_tool("ip"))
        .args(["netns", "list"])
        .output()
        .unwrap();
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    let prefix = format!("h{}-", bridge.trim_start_matches("bh"));
    assert!(
        !namespaces.lines().any(|n| n.starts_with(&prefix)),
        "hosts left: {namespaces}"
    );
}
