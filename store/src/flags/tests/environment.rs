//! `ETCD_*` environment variables: they fill in what the command line leaves unset, and
//! their errors name the variable.

use std::path::PathBuf;

use super::*;

#[test]
fn environment_variables_fill_in_unset_flags() {
    let env = |var: &str| match var {
        "ETCD_NAME" => Some("from-env".to_string()),
        "ETCD_DATA_DIR" => Some("/env/dir".to_string()),
        "ETCD_INITIAL_CLUSTER" => Some("n1=http://127.0.0.1:2380".to_string()),
        "ETCD_HEARTBEAT_INTERVAL" => Some("20".to_string()),
        "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL" => Some("1s".to_string()),
        // Empty variables are ignored, as etcd does.
        "ETCD_LOG_LEVEL" => Some(String::new()),
        _ => None,
    };
    let flags = parse_store_flags_with_env(
        &args("--name n1 --initial-advertise-peer-urls http://127.0.0.1:2380"),
        &env,
    )
    .unwrap();
    assert_eq!(flags.name, "n1", "a flag wins over its variable");
    assert_eq!(flags.data_dir(), PathBuf::from("/env/dir"));
    assert_eq!(
        flags.initial_cluster,
        [("n1".to_string(), "http://127.0.0.1:2380".to_string())]
    );
    assert_eq!(flags.heartbeat_interval_ms, 20);
    assert_eq!(flags.experimental_watch_progress_notify_interval_ms, 1000);
    assert_eq!(flags.log_level, "info");
}

#[test]
fn errors_in_environment_variables_name_the_variable_and_the_flag() {
    let env = |var: &str| (var == "ETCD_SNAPSHOT_COUNT").then(|| "lots".to_string());
    let error = parse_store_flags_with_env(&[], &env).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("--snapshot-count"), "{message}");
    assert!(message.contains("ETCD_SNAPSHOT_COUNT"), "{message}");
    assert!(std::error::Error::source(&error).is_some());

    let env = |var: &str| (var == "ETCD_WAL_DIR").then(|| "/w".to_string());
    let message = parse_store_flags_with_env(&[], &env).unwrap_err().to_string();
    assert!(message.contains("--wal-dir"), "{message}");
    assert!(message.contains("ETCD_WAL_DIR"), "{message}");

    let env = |var: &str| (var == "ETCD_INITIAL_CLUSTER").then(|| "other=http://127.0.0.1:1".to_string());
    let message = parse_store_flags_with_env(&[], &env).unwrap_err().to_string();
    assert!(message.contains("ETCD_INITIAL_CLUSTER"), "{message}");
}
