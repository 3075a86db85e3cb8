//! Reading the command line: flag forms, help and version, unknown, unsupported and
//! malformed arguments.

use std::path::PathBuf;

use super::*;
use crate::flags::flag::Flag;

#[test]
fn equals_form_and_single_dash_form() {
    let flags = parse(
        "--name=n1 -data-dir=/d --heartbeat-interval=10 -election-timeout 50 \
         --initial-cluster=n1=http://localhost:2380",
    )
    .unwrap();
    assert_eq!(flags.name, "n1");
    assert_eq!(flags.data_dir(), PathBuf::from("/d"));
    assert_eq!(flags.heartbeat_interval_ms, 10);
    assert_eq!(flags.election_timeout_ms, 50);
    assert_eq!(
        flags.initial_cluster,
        [("n1".to_string(), "http://localhost:2380".to_string())]
    );
}

#[test]
fn an_empty_inline_value_is_a_value() {
    assert_eq!(parse("--initial-cluster-token=").unwrap().initial_cluster_token, "");
}

#[test]
fn the_last_occurrence_of_a_flag_wins() {
    assert_eq!(
        parse("--snapshot-count 1 --snapshot-count 2").unwrap().snapshot_count,
        2
    );
}

#[test]
fn help_and_version_are_their_own_errors() {
    for line in ["-h", "--help", "-help", "--name n1 --help"] {
        assert_eq!(parse(line), Err(FlagError::Help), "{line}");
    }
    assert_eq!(parse("--version"), Err(FlagError::Version));
    assert!(STORE_USAGE.contains("--initial-cluster"));
    for flag in Flag::ALL {
        assert!(STORE_USAGE.contains(&flag.dashed()), "usage lacks {}", flag.dashed());
    }
}

#[test]
fn unknown_flags_are_refused_by_name() {
    assert_eq!(parse_err("--foo"), "unknown flag: --foo");
    assert_eq!(parse_err("--foo=1"), "unknown flag: --foo");
    assert_eq!(parse_err("-x"), "unknown flag: --x");
}

#[test]
fn unsupported_etcd_flags_are_refused_by_name() {
    assert_eq!(
        parse_err("--wal-dir /w"),
        "flag --wal-dir is an etcd flag berth does not support yet"
    );
    for flag in [
        "--max-snapshots",
        "--max-wals",
        "--cors",
        "--enable-v2",
        "--discovery",
        "--discovery-srv",
        "--discovery-fallback",
        "--discovery-proxy",
        "--proxy",
        "--proxy-dial-timeout",
        "--ca-file",
        "--client-crl-file",
        "--client-cert-allowed-hostname",
        "--peer-crl-file",
        "--peer-cert-allowed-cn",
        "--peer-cert-allowed-hostname",
        "--grpc-keepalive-min-time",
        "--enable-pprof",
        "--metrics",
        "--logger",
        "--log-outputs",
        "--bcrypt-cost",
        "--enable-grpc-gateway",
        "--force-new-cluster",
        "--experimental-enable-lease-checkpoint",
        "--pre-vote",
        "--initial-election-tick-advance",
        "--listen-client-http-urls",
        "--socket-reuse-port",
        "--max-txn-ops",
        "--backend-batch-limit",
        "--unsafe-no-fsync",
        "--tls-min-version",
        "--config-file",
    ] {
        let message = parse_err(&format!("{flag} x"));
        assert_eq!(
            message,
            format!("flag {flag} is an etcd flag berth does not support yet")
        );
        // The `=` form and a bare boolean are refused the same way.
        assert_eq!(parse_err(&format!("{flag}=true")), message);
        assert_eq!(parse_err(flag), message);
    }
}

#[test]
fn auth_tokens_are_simple_ones_with_a_ttl() {
    let flags = parse("--name n1").unwrap();
    assert_eq!(flags.to_config().unwrap().auth_token_ttl.as_secs(), 300);
    let flags = parse("--auth-token simple --auth-token-ttl 30").unwrap();
    assert_eq!(flags.to_config().unwrap().auth_token_ttl.as_secs(), 30);
    let refused = parse_err("--auth-token jwt,pub-key=a.pub,priv-key=a,sign-method=RS256");
    assert!(refused.contains("--auth-token") && refused.contains("jwt"), "{refused}");
    assert!(parse_err("--auth-token-ttl 0").contains("--auth-token-ttl"));
}

#[test]
fn a_missing_value_names_the_flag() {
    assert_eq!(parse_err("--name"), "flag needs an argument: --name");
    assert_eq!(parse_err("--data-dir --name n1"), "flag needs an argument: --data-dir");
}

#[test]
fn a_bare_word_is_not_a_flag() {
    assert_eq!(parse_err("bogus"), "'bogus' is not a valid flag");
    assert_eq!(parse_err("--name n1 extra"), "'extra' is not a valid flag");
    assert_eq!(parse_err("-- extra"), "'extra' is not a valid flag");
    assert_eq!(parse("--name n1 --").unwrap().name, "n1");
}
