//! Maintenance: the space quota, metrics and health over HTTP, auto-compaction.

use berth_testkit::{eventually, free_port};
use etcd_client::GetOptions;

use super::common::start;

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
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
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
