//! Each flag's value syntax: numbers, URLs, cluster entries, enumerations, durations and
//! retentions, and errors that name the flag and the value.

use super::*;

#[test]
fn bad_numbers_name_the_flag() {
    assert_eq!(
        parse_err("--heartbeat-interval abc"),
        r#"invalid value "abc" for flag --heartbeat-interval: not a number"#
    );
    for flag in [
        "--election-timeout",
        "--snapshot-count",
        "--quota-backend-bytes",
        "--max-request-bytes",
    ] {
        assert_eq!(
            parse_err(&format!("{flag} 1.5")),
            format!(r#"invalid value "1.5" for flag {flag}: not a number"#)
        );
    }
    assert_eq!(
        parse_err("--quota-backend-bytes=-1"),
        r#"invalid value "-1" for flag --quota-backend-bytes: must not be negative"#
    );
    assert!(parse_err("--heartbeat-interval 0").contains("--heartbeat-interval"));
    for streams in ["0", "4294967296"] {
        assert_eq!(
            parse_err(&format!("--max-concurrent-streams {streams}")),
            format!(r#"invalid value "{streams}" for flag --max-concurrent-streams: must be between 1 and 4294967295"#)
        );
    }
}

#[test]
fn bad_urls_name_the_flag_and_the_url() {
    let cases = [
        (
            "--listen-metrics-urls",
            "https://127.0.0.1:2381",
            "TLS is not supported on this URL yet",
        ),
        ("--listen-client-urls", "unixs://sock:1", "unix"),
        ("--advertise-client-urls", "http://127.0.0.1", "host:port"),
        ("--listen-peer-urls", "http://127.0.0.1:abc", "not a number"),
        ("--initial-advertise-peer-urls", "http://h:99999", "out of range"),
        ("--listen-metrics-urls", "http://h:2381/metrics", "path"),
        ("--listen-client-urls", "127.0.0.1:2379", "http://host:port"),
        ("--listen-client-urls", "ftp://h:1", "scheme"),
        ("--listen-client-urls", "unix://sock:1", "unix"),
        ("--listen-client-urls", "http://::1:2379", "brackets"),
    ];
    for (flag, url, reason) in cases {
        let message = parse_err(&format!("{flag} http://127.0.0.1:1,{url}"));
        assert!(
            message.starts_with(&format!("invalid URL {url:?} for flag {flag}: ")),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
    }
    assert!(parse_err("--listen-client-urls ,").contains("--listen-client-urls"));
}

#[test]
fn ipv6_and_wildcard_urls_are_accepted() {
    let flags = parse(
        "--listen-client-urls http://[::1]:2379,http://0.0.0.0:2379 \
         --advertise-client-urls http://[::1]:2379",
    )
    .unwrap();
    assert_eq!(flags.listen_client_urls.len(), 2);
    assert_eq!(flags.advertise_client_urls, ["http://[::1]:2379"]);
}

#[test]
fn bad_initial_cluster_entries_are_named() {
    let message = parse_err("--initial-cluster n1");
    assert_eq!(
        message,
        r#"invalid --initial-cluster entry "n1": expected name=http://host:port (or https)"#
    );
    let message = parse_err("--initial-cluster default=http://localhost:2380,=http://h:1");
    assert!(message.contains(r#"entry "=http://h:1""#), "{message}");
    let message = parse_err("--initial-cluster default=unix://localhost:2380");
    assert!(message.contains("default=unix://localhost:2380"), "{message}");
    assert!(message.contains("unix sockets are not supported yet"), "{message}");
    assert!(parse_err("--initial-cluster ,").contains("--initial-cluster"));
    let message = parse_err("--initial-cluster default=http://localhost:2380,n2=http://localhost:2380");
    assert!(message.contains("n2=http://localhost:2380"), "{message}");
    assert!(message.contains("more than once"), "{message}");
}

#[test]
fn a_member_name_may_repeat_for_several_urls() {
    let flags = parse(
        "--name n1 --initial-advertise-peer-urls http://10.0.0.1:2380,http://10.0.1.1:2380 \
         --initial-cluster n1=http://10.0.1.1:2380,n2=http://10.0.0.2:2380,n1=http://10.0.0.1:2380",
    )
    .unwrap();
    assert_eq!(flags.initial_cluster.len(), 3);
    assert_eq!(
        flags.initial_cluster_members(),
        [
            ("n1", vec!["http://10.0.1.1:2380", "http://10.0.0.1:2380"]),
            ("n2", vec!["http://10.0.0.2:2380"]),
        ]
    );
}

#[test]
fn enumerated_values_are_checked() {
    let message = parse_err("--initial-cluster-state bogus");
    assert!(
        message.starts_with(r#"invalid value "bogus" for flag --initial-cluster-state"#),
        "{message}"
    );
    let message = parse_err("--auto-compaction-mode bogus");
    assert!(
        message.starts_with(r#"invalid value "bogus" for flag --auto-compaction-mode"#),
        "{message}"
    );
    assert!(parse_err("--log-level loud").contains("--log-level"));
    assert_eq!(
        parse("--initial-cluster-state existing").unwrap().initial_cluster_state,
        ClusterState::Existing
    );
}

#[test]
fn retention_is_checked_against_the_mode() {
    let message = parse_err("--auto-compaction-retention abc");
    assert!(
        message.starts_with(r#"invalid value "abc" for flag --auto-compaction-retention"#),
        "{message}"
    );
    // The mode may come after the retention.
    let message = parse_err("--auto-compaction-retention 5m --auto-compaction-mode revision");
    assert!(message.contains("--auto-compaction-retention"), "{message}");
    let flags = parse("--auto-compaction-retention 90m").unwrap();
    assert_eq!(
        flags.compaction_retention().unwrap(),
        CompactionRetention::Periodic {
            retention_ms: 90 * 60 * 1000
        }
    );
}

#[test]
fn bad_durations_name_the_flag() {
    let message = parse_err("--experimental-watch-progress-notify-interval abc");
    assert!(
        message.starts_with(r#"invalid value "abc" for flag --experimental-watch-progress-notify-interval"#),
        "{message}"
    );
}

#[test]
fn test_faults_are_one_of_a_list_and_switch_on_only_what_they_name() {
    let message = parse_err("--test-fault slow-reads");
    assert!(
        message.starts_with(r#"invalid value "slow-reads" for flag --test-fault"#)
            && message.contains("stale-reads")
            && message.contains("slow-disk"),
        "{message}"
    );
    let faults = |line: &str| parse(line).unwrap().to_config().unwrap().test_faults;
    let slow_disk = faults("--test-fault slow-disk");
    assert!(slow_disk.slow_disk && !slow_disk.stale_reads, "{slow_disk:?}");
    let stale_reads = faults("--test-fault stale-reads");
    assert!(stale_reads.stale_reads && !stale_reads.slow_disk, "{stale_reads:?}");
    assert_eq!(faults("--name n1"), crate::TestFaults::default());
}

#[test]
fn true_false_flags_stand_alone_or_take_a_value_after_an_equals_sign() {
    let defaults = parse("").unwrap();
    assert!(
        defaults.strict_reconfig_check,
        "etcd checks reconfigurations by default"
    );
    assert!(!defaults.experimental_initial_corrupt_check);
    let set = parse("--experimental-initial-corrupt-check --strict-reconfig-check=false --name n1").unwrap();
    assert!(set.experimental_initial_corrupt_check);
    assert!(!set.strict_reconfig_check);
    assert_eq!(set.name, "n1", "the flag after a true/false flag is not its value");
    let config = set.to_config().unwrap();
    assert!(config.initial_corrupt_check && !config.strict_reconfig_check);
    assert_eq!(
        parse_err("--strict-reconfig-check=maybe"),
        "invalid value \"maybe\" for flag --strict-reconfig-check: must be true or false"
    );
    // As in Go, a value after a space is not the flag's: it is a stray word.
    assert_eq!(
        parse_err("--strict-reconfig-check false"),
        "'false' is not a valid flag"
    );
}
