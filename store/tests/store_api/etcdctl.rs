//! etcdctl, the etcd command line, against a three-replica cluster.

use std::time::Duration;

use super::common::{etcdctl, start, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_works_against_the_cluster() {
    let cluster = start(3, &[]).await;
    let all = cluster.endpoints();
    let one = vec![cluster.replicas[1].endpoint()];

    assert_eq!(stdout(&etcdctl(&one, &["put", "greeting", "hello"])).trim(), "OK");
    let got = stdout(&etcdctl(&[cluster.replicas[2].endpoint()], &["get", "greeting"]));
    assert_eq!(got.lines().collect::<Vec<_>>(), ["greeting", "hello"]);

    let txn = "value(\"greeting\") = \"hello\"\n\nput greeting bye\n\nput greeting never\n\n";
    let mut child = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", all.join(",").replace("http://", "")))
        .arg("txn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(txn.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("SUCCESS"), "{out:?}");
    let got = stdout(&etcdctl(&all, &["get", "greeting", "--print-value-only"]));
    assert_eq!(got.trim(), "bye");

    assert_eq!(stdout(&etcdctl(&all, &["del", "greeting"])).trim(), "1");
    assert_eq!(stdout(&etcdctl(&all, &["get", "greeting"])).trim(), "");

    let members = stdout(&etcdctl(&all, &["member", "list"]));
    for r in &cluster.replicas {
        assert!(members.contains(&r.name), "member list lacks {}: {members}", r.name);
        assert!(members.contains(&format!("127.0.0.1:{}", r.peer_port)), "{members}");
    }
    let status = stdout(&etcdctl(&all, &["endpoint", "status", "-w", "json"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let leaders: Vec<u64> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert_eq!(leaders.len(), 3);
    assert!(
        leaders.iter().all(|l| *l == leaders[0] && *l != 0),
        "replicas disagree on the leader: {leaders:?}"
    );
    assert!(status[0]["Status"]["version"].as_str().unwrap().starts_with("3.4"));
    // Every replica hashes the same history (a follower may be a moment behind).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hashes = stdout(&etcdctl(&all, &["endpoint", "hashkv", "-w", "json"]));
        let hashes: serde_json::Value = serde_json::from_str(&hashes).unwrap();
        let hashes: Vec<(u64, i64)> = hashes
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let h = &h["HashKV"];
                (h["hash"].as_u64().unwrap(), h["header"]["revision"].as_i64().unwrap())
            })
            .collect();
        assert_eq!(hashes.len(), 3);
        if hashes.iter().all(|h| *h == hashes[0]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replicas' hashes differ: {hashes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let members = stdout(&etcdctl(&one, &["endpoint", "status", "--cluster", "-w", "json"]));
    let members: serde_json::Value = serde_json::from_str(&members).unwrap();
    assert_eq!(members.as_array().unwrap().len(), 3, "every member answers: {members}");
    let defrag = stdout(&etcdctl(&one, &["defrag"]));
    assert!(defrag.starts_with("Finished defragmenting etcd member"), "{defrag}");
}
