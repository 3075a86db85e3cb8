//! Maintenance: the space quota, metrics and health over HTTP, auto-compaction.

use berth_testkit::{eventually, free_port};
use etcd_client::GetOptions;

use super::common::{etcdctl, start, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backend_refuses_writes_with_nospace_and_keeps_serving_reads() {
    let cluster = start(1, &["--quota-backend-bytes", "300000"]).await;
    let mut c = cluster.client().await;
    let value = "x".repeat(10_000);
    let mut refused = None;
    for i in 0..5000 {
        match c.put(format!("fill/{i}"), value.clone(), None).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("writes past the quota must be refused");
    assert!(refused.contains("database space exceeded"), "{refused}");
    let alarms = c
        .alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(alarms.alarms().len(), 1);
    assert_eq!(alarms.alarms()[0].alarm(), etcd_client::AlarmType::Nospace);
    assert!(c.get("fill/0", None).await.unwrap().count() == 1, "reads still work");
    c.delete("fill/0", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served_over_http() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cluster = start(1, &["--listen-metrics-urls", &url]).await;
    let mut c = cluster.client().await;
    c.put("m", "1", None).await.unwrap();
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    let health = get("/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("{\"health\":\"true\"}"), "{health}");
    let metrics = get("/metrics");
    assert!(metrics.contains("etcd_server_has_leader 1"), "{metrics}");
    assert!(metrics.contains("etcd_debugging_mvcc_current_revision 2"), "{metrics}");
    assert!(
        get("/version").contains("\"etcdserver\":\"3.4."),
        "the metrics URL answers /version too"
    );
    let gateway = get("/v3/kv/range");
    assert!(
        gateway.starts_with("HTTP/1.1 404"),
        "the gateway is on client URLs only: {gateway}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction_forgets_old_revisions() {
    let cluster = start(
        1,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    )
    .await;
    let mut c = cluster.client().await;
    let old = c.put("ac", "1", None).await.unwrap().header().unwrap().revision();
    c.put("ac", "2", None).await.unwrap();
    eventually("auto-compaction past the first write", || {
        let mut c = c.clone();
        async move {
            let _ = c.put("tick", "x", None).await;
            let err = c.get("ac", Some(GetOptions::new().with_revision(old))).await.err()?;
            err.to_string().contains("compacted").then_some(())
        }
    })
    .await;
    assert_eq!(c.get("ac", None).await.unwrap().kvs()[0].value(), b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defrag_gives_back_the_space_of_compacted_history() {
    let cluster = start(1, &[]).await;
    let endpoints = cluster.endpoints();
    let mut c = cluster.client().await;
    let value = "x".repeat(8192);
    let mut revision = 0;
    for _round in 0..20 {
        for key in 0..50 {
            revision = c
                .put(format!("d/{key:02}"), value.clone(), None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
        }
    }
    c.compact(revision, None).await.unwrap();
    let db_size = || {
        let out = stdout(&etcdctl(&endpoints, &["endpoint", "status", "-w", "json"]));
        let parsed: serde_json::Value = serde_json::from_str(&out).expect(&out);
        parsed[0]["Status"]["dbSize"].as_u64().expect(&out)
    };
    let before = db_size();
    let defragmented = stdout(&etcdctl(&endpoints, &["defrag"]));
    assert!(defragmented.contains("Finished defragmenting"), "{defragmented}");
    let after = db_size();
    assert!(after < before / 2, "{before} bytes before the defrag, {after} after");
    eprintln!("db size: {before} bytes before the defrag, {after} after");

    let all = c.get("d/", Some(GetOptions::new().with_prefix())).await.unwrap();
    assert_eq!(all.count(), 50);
    assert!(all.kvs().iter().all(|kv| kv.value() == value.as_bytes()));
    let next = c.put("after-defrag", "y", None).await.unwrap();
    assert_eq!(next.header().unwrap().revision(), revision + 1);
}
