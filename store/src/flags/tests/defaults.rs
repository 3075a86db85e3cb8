//! etcd's defaults, and the values derived when a command line leaves them unset.

use std::path::PathBuf;

use super::*;

#[test]
fn no_flags_gives_etcd_defaults() {
    let flags = parse("").unwrap();
    assert_eq!(flags, StoreFlags::default());
    assert_eq!(flags.name, "default");
    assert_eq!(flags.data_dir(), PathBuf::from("default.etcd"));
    assert_eq!(flags.listen_client_urls, ["http://localhost:2379"]);
    assert_eq!(flags.advertise_client_urls, ["http://localhost:2379"]);
    assert_eq!(flags.listen_peer_urls, ["http://localhost:2380"]);
    assert_eq!(flags.initial_advertise_peer_urls, ["http://localhost:2380"]);
    assert_eq!(
        flags.initial_cluster,
        [("default".to_string(), "http://localhost:2380".to_string())]
    );
    assert_eq!(flags.initial_cluster_state, ClusterState::New);
    assert_eq!(flags.initial_cluster_token, "etcd-cluster");
    assert_eq!(flags.heartbeat_interval_ms, 100);
    assert_eq!(flags.election_timeout_ms, 1000);
    assert_eq!(flags.snapshot_count, 100_000);
    assert_eq!(flags.quota_backend_bytes, 0);
    assert_eq!(flags.effective_quota_backend_bytes(), 2 * 1024 * 1024 * 1024);
    assert_eq!(flags.max_request_bytes, 1_572_864);
    assert_eq!(flags.max_concurrent_streams, 1000);
    assert_eq!(flags.auto_compaction_mode, CompactionMode::Periodic);
    assert_eq!(flags.auto_compaction_retention, "0");
    assert_eq!(flags.compaction_retention().unwrap(), CompactionRetention::Disabled);
    assert!(flags.listen_metrics_urls.is_empty());
    assert_eq!(flags.experimental_watch_progress_notify_interval_ms, 600_000);
    assert_eq!(flags.log_level, "info");
}

#[test]
fn a_three_member_command_line() {
    let flags = parse(&format!(
        "--name n2 --data-dir /tmp/berth/n2 \
         --listen-client-urls http://127.0.0.1:22379 \
         --advertise-client-urls http://127.0.0.1:22379 \
         --listen-peer-urls http://127.0.0.1:22380 \
         --initial-advertise-peer-urls http://127.0.0.1:22380 \
         --initial-cluster {THREE_MEMBERS} \
         --initial-cluster-state new --initial-cluster-token tok \
         --heartbeat-interval 50 --election-timeout 500 --snapshot-count 10 \
         --quota-backend-bytes 1024 --max-request-bytes 2048 --max-concurrent-streams 4294967295 \
         --auto-compaction-mode revision --auto-compaction-retention 1000 \
         --listen-metrics-urls http://127.0.0.1:22381 --log-level debug \
         --experimental-watch-progress-notify-interval 5s"
    ))
    .unwrap();
    assert_eq!(flags.name, "n2");
    assert_eq!(flags.data_dir(), PathBuf::from("/tmp/berth/n2"));
    assert_eq!(flags.initial_cluster.len(), 3);
    assert_eq!(flags.initial_cluster[1].0, "n2");
    assert_eq!(flags.initial_cluster_token, "tok");
    assert_eq!(flags.heartbeat_interval_ms, 50);
    assert_eq!(flags.election_timeout_ms, 500);
    assert_eq!(flags.snapshot_count, 10);
    assert_eq!(flags.effective_quota_backend_bytes(), 1024);
    assert_eq!(flags.max_request_bytes, 2048);
    assert_eq!(flags.max_concurrent_streams, u32::MAX);
    assert_eq!(
        flags.compaction_retention().unwrap(),
        CompactionRetention::Revision { revisions: 1000 }
    );
    assert_eq!(flags.listen_metrics_urls, ["http://127.0.0.1:22381"]);
    assert_eq!(flags.log_level, "debug");
    assert_eq!(flags.experimental_watch_progress_notify_interval_ms, 5000);
}

#[test]
fn advertise_urls_default_to_listen_urls_that_name_a_host() {
    let flags = parse(
        "--name n1 --listen-client-urls http://127.0.0.1:2379 \
         --listen-peer-urls http://127.0.0.1:2380 \
         --initial-cluster n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380",
    )
    .unwrap();
    assert_eq!(flags.advertise_client_urls, ["http://127.0.0.1:2379"]);
    assert_eq!(flags.initial_advertise_peer_urls, ["http://127.0.0.1:2380"]);

    let message = parse_err("--listen-client-urls http://0.0.0.0:2379");
    assert!(message.starts_with("--advertise-client-urls is required"), "{message}");
    assert!(message.contains("--listen-client-urls"), "{message}");
    let message = parse_err("--listen-peer-urls http://[::]:2380");
    assert!(
        message.starts_with("--initial-advertise-peer-urls is required"),
        "{message}"
    );
}

#[test]
fn initial_cluster_defaults_to_name_and_advertised_peer_urls() {
    let flags = parse("--name n7 --initial-advertise-peer-urls http://127.0.0.1:7380,http://127.0.0.2:7380").unwrap();
    assert_eq!(
        flags.initial_cluster,
        [
            ("n7".to_string(), "http://127.0.0.1:7380".to_string()),
            ("n7".to_string(), "http://127.0.0.2:7380".to_string()),
        ]
    );
    assert_eq!(flags.data_dir(), PathBuf::from("n7.etcd"));
}
