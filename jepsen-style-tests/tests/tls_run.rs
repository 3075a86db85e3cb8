//! The suite with TLS on (issue 18): the replicas serve https and dial each other
//! through the nemesis's proxies over TLS, with client-certificate auth on both, and
//! every client of the suite presents the run's certificate. A short run under kill,
//! partition and pause must find nothing wrong, with every checker having checked
//! something, among them `client-auth`: each replica served the certified client and
//! refused one that trusts the CA but has no certificate. And that checker fails a
//! cluster that takes clients without one.

use std::time::Duration;

use berth_jepsen::check::Verdict;
use berth_jepsen::cluster::make_pki;
use berth_jepsen::final_state::client_auth_check;
use berth_jepsen::nemesis::FaultKind;
use berth_jepsen::runner::{self, RunOptions, WorkloadKind};
use berth_jepsen::workload::{ClientTls, connect};
use berth_testkit::{Cluster, ClusterSpec, berth_binary, eventually};

const NODES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_over_tls_with_client_certificates_is_valid() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = tempfile::tempdir().unwrap();
    let report = runner::run(RunOptions {
        berth: berth_binary(),
        nodes: NODES,
        time: Duration::from_secs(30),
        // A schedule of a pause, a partition and a kill, in that order, all within 21 s.
        seed: 20261242,
        nemeses: FaultKind::parse_families(&names(&["kill", "partition", "pause"])).unwrap(),
        workloads: WorkloadKind::parse(&names(&["register", "watch", "lease"])).unwrap(),
        out: out.path().to_path_buf(),
        test_fault: None,
        keys: 4,
        clients: 6,
        check_deadline: Duration::from_secs(60),
        tls: true,
    })
    .await
    .unwrap();
    let summary = berth_jepsen::report::summary(&report);
    eprintln!("{summary}");
    assert!(report.tls, "the report must say the run was over TLS");
    assert!(report.reproduce.contains(" --tls"), "{}", report.reproduce);
    assert!(!report.faults.is_empty(), "the nemesis must have injected faults");
    assert!(report.ops.ok > 100, "the workloads must have made progress:\n{summary}");
    for check in &report.checks {
        assert_eq!(check.verdict, Verdict::Valid, "{} is not valid:\n{summary}", check.name);
        assert!(check.ops_checked > 0, "{} checked nothing:\n{summary}", check.name);
    }
    for family in ["kill", "partition", "pause"] {
        assert!(
            report.faults_by_kind.contains_key(family),
            "the run must have had a {family} fault:\n{summary}"
        );
    }
    let client_auth = report
        .checks
        .iter()
        .find(|c| c.name == "client-auth")
        .unwrap_or_else(|| panic!("a TLS run checks that clients without a certificate are refused:\n{summary}"));
    assert_eq!(
        client_auth.ops_checked, NODES,
        "every replica must have refused a client without a certificate:\n{summary}"
    );
    assert!(report.valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_auth_check_fails_a_cluster_that_takes_clients_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_pki(&berth_binary(), &dir.path().join("pki")).unwrap();
    // https with the run's certificate, but no CA to check clients against (berth
    // demands a client certificate whenever it has one), so none is asked for.
    let (cert, key) = (tls.cert_file.display(), tls.key_file.display());
    let spec = ClusterSpec::berth_store(1).dir(dir.path().join("cluster")).args([
        format!("--cert-file={cert}"),
        format!("--key-file={key}"),
        format!("--peer-cert-file={cert}"),
        format!("--peer-key-file={key}"),
    ]);
    let mut cluster = Cluster::new(spec).unwrap();
    cluster.replicas[0].scheme = "https";
    cluster.start_all().unwrap();
    let certified = ClientTls::load(&tls).unwrap();
    let endpoints = cluster.endpoints();
    eventually("the replica serves over https", async || {
        connect(&endpoints, Some(&certified)).await?.get("k", None).await.ok()
    })
    .await;
    let result = client_auth_check(&endpoints, &certified, &ClientTls::trusting(&tls.ca_file).unwrap()).await;
    assert_eq!(result.verdict, Verdict::Invalid, "{result:?}");
    assert_eq!(result.anomalies[0].kind, "no-client-auth", "{result:?}");
}
