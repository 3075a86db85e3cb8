//! The suite in the project's tests: a short run against a real three-replica
//! cluster with kill, partition, pause and slow-disk faults must find nothing wrong,
//! with every checker having checked something (a checker that checked nothing is
//! not valid), and the same run against a store with reads deliberately made stale
//! must find it out.

use std::time::Duration;

use berth_jepsen::check::Verdict;
use berth_jepsen::nemesis::FaultKind;
use berth_jepsen::runner::{self, RunOptions, WorkloadKind};
use berth_testkit::berth_binary;

fn options(seed: u64, time: Duration, nemeses: &[&str], workloads: &[&str], test_fault: Option<&str>) -> RunOptions {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    RunOptions {
        berth: berth_binary(),
        nodes: 3,
        time,
        seed,
        nemeses: FaultKind::parse_families(&names(nemeses)).unwrap(),
        workloads: WorkloadKind::parse(&names(workloads)).unwrap(),
        out: std::env::temp_dir().join("berth-jepsen-tests"),
        test_fault: test_fault.map(str::to_string),
        keys: 4,
        clients: 6,
        check_deadline: Duration::from_secs(60),
        tls: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_under_kill_partition_pause_and_slow_disk_is_valid() {
    let report = runner::run(options(
        20261121,
        Duration::from_secs(40),
        &["kill", "partition", "pause", "disk"],
        &["register", "watch", "lease", "append"],
        None,
    ))
    .await
    .unwrap();
    let summary = berth_jepsen::report::summary(&report);
    eprintln!("{summary}");
    assert!(!report.faults.is_empty(), "the nemesis must have injected faults");
    assert!(report.ops.ok > 100, "the workloads must have made progress:\n{summary}");
    for check in &report.checks {
        assert_eq!(check.verdict, Verdict::Valid, "{} is not valid:\n{summary}", check.name);
        assert!(check.ops_checked > 0, "{} checked nothing:\n{summary}", check.name);
    }
    assert!(report.valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_store_that_serves_stale_reads() {
    let report = runner::run(options(
        7,
        Duration::from_secs(25),
        &["partition"],
        &["register"],
        Some("stale-reads"),
    ))
    .await
    .unwrap();
    let summary = berth_jepsen::report::summary(&report);
    eprintln!("{summary}");
    let linearizable = report
        .checks
        .iter()
        .find(|c| c.name == "linearizable")
        .expect("the linearizability check ran");
    assert_eq!(
        linearizable.verdict,
        Verdict::Invalid,
        "stale reads went unnoticed:\n{summary}"
    );
    assert!(!report.valid);
}
