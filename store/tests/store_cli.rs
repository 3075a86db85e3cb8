//! `berth store`'s command line: bad flags and bad data dirs fail loudly, never
//! silently.

mod common;

use std::process::Command;

use berth_testkit::{berth_binary, free_port};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(berth_binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unsupported_and_unknown_flags_are_refused_by_name() {
    let (code, err) = run(&["store", "--wal-dir", "/tmp/x"]);
    assert_ne!(code, 0);
    assert!(err.contains("--wal-dir"), "{err}");
    let (code, err) = run(&["store", "--no-such-flag"]);
    assert_ne!(code, 0);
    assert!(err.contains("--no-such-flag"), "{err}");
    let (code, err) = run(&["store", "--heartbeat-interval", "abc"]);
    assert_ne!(code, 0);
    assert!(err.contains("--heartbeat-interval"), "{err}");
    let (code, _) = run(&["store", "--help"]);
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_data_dir_is_refused_not_reinitialised() {
    let mut cluster = common::start(1, &[]).await;
    let mut client = cluster.client().await;
    client.put("precious", "data", None).await.unwrap();
    drop(client);
    cluster.stop(0);

    let member_file = cluster.replicas[0].data_dir.join("member").join("member.json");
    let original = std::fs::read(&member_file).unwrap();
    std::fs::write(&member_file, b"{not json").unwrap();
    let args = cluster.args(0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = run(&args);
    assert_ne!(code, 0, "a corrupt data dir must not start");
    assert!(err.contains("corrupt"), "{err}");

    // Put it back: the data is still there, nothing was re-initialised.
    std::fs::write(&member_file, original).unwrap();
    cluster.start_replica(0).unwrap();
    cluster.wait_for_leader().await.unwrap();
    let mut client = cluster.client().await;
    let got = client.get("precious", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"data");

    // A database whose member record is gone is damage too, not a fresh start.
    drop(client);
    cluster.stop(0);
    std::fs::remove_file(&member_file).unwrap();
    let (code, err) = run(&args);
    assert_ne!(code, 0, "a database without its member record must not start");
    assert!(
        err.contains("corrupt") && err.contains("refusing to re-initialise"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let peer = free_port();
    let (code, err) = run(&[
        "store",
        "--data-dir",
        &dir.path().join("d").display().to_string(),
        "--listen-client-urls",
        &format!("http://127.0.0.1:{port}"),
        "--advertise-client-urls",
        &format!("http://127.0.0.1:{port}"),
        "--listen-peer-urls",
        &format!("http://127.0.0.1:{peer}"),
        "--initial-advertise-peer-urls",
        &format!("http://127.0.0.1:{peer}"),
        "--initial-cluster",
        &format!("default=http://127.0.0.1:{peer}"),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains(&port.to_string()), "{err}");
}
