//! HTTP/1.1 on the client port, beside gRPC: `/health`, `/version` and `/metrics`
//! answer on the URL etcdctl uses, and `/health` turns false without a leader.

use berth_testkit::eventually;

use super::common::{etcdctl, start, stdout};
use super::http_client::get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_and_metrics_share_the_client_port_with_grpc() {
    let cluster = start(1, &[]).await;
    let endpoint = cluster.replicas[0].endpoint();
    assert_eq!(
        stdout(&etcdctl(std::slice::from_ref(&endpoint), &["put", "k", "v"])).trim(),
        "OK"
    );

    let health = get(&endpoint, "/health").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"health":"true"}"#),
        "{health:?}"
    );

    let version = get(&endpoint, "/version").await.json();
    assert!(version["etcdserver"].as_str().unwrap().starts_with("3.4."), "{version}");
    assert_eq!(version["etcdcluster"], "3.4.0");

    let metrics = get(&endpoint, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("\netcd_server_has_leader 1\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("\netcd_debugging_mvcc_current_revision 2\n"),
        "{}",
        metrics.body
    );

    assert_eq!(get(&endpoint, "/nothing").await.status, 404);
    // gRPC still works on the same port after HTTP has been served on it.
    let got = stdout(&etcdctl(&[endpoint], &["get", "k", "--print-value-only"]));
    assert_eq!(got.trim(), "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_false_on_a_replica_without_a_leader() {
    let mut cluster = start(3, &[]).await;
    let survivor = cluster.replicas[0].endpoint();
    assert_eq!(get(&survivor, "/health").await.status, 200);
    cluster.kill(1);
    cluster.kill(2);
    let unhealthy = eventually("/health to turn false on the last replica", async || {
        let health = get(&survivor, "/health").await;
        (health.status == 503).then_some(health)
    })
    .await;
    let body = unhealthy.json();
    assert_eq!(body["health"], "false", "{unhealthy:?}");
    assert!(!body["reason"].as_str().unwrap().is_empty(), "{unhealthy:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_false_while_the_nospace_alarm_is_raised() {
    let cluster = start(1, &["--quota-backend-bytes", "300000"]).await;
    let endpoint = cluster.replicas[0].endpoint();
    let mut c = cluster.client().await;
    let value = "x".repeat(10_000);
    let mut is_full = false;
    for i in 0..5000 {
        if c.put(format!("fill/{i}"), value.clone(), None).await.is_err() {
            is_full = true;
            break;
        }
    }
    assert!(is_full, "writes past the quota are refused");
    let health = get(&endpoint, "/health").await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.json()["reason"], "ALARM NOSPACE", "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_events_sent_to_watchers() {
    let cluster = start(1, &[]).await;
    let endpoint = cluster.replicas[0].endpoint();
    let events_sent = || async {
        let body = get(&endpoint, "/metrics").await.body;
        (body.lines())
            .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_events_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no etcd_debugging_mvcc_events_total in {body}"))
    };
    assert_eq!(events_sent().await, 0);
    let mut client = cluster.client_of(0).await;
    let mut stream = client
        .watch("w/", Some(etcd_client::WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());
    client.put("w/a", "1", None).await.unwrap();
    client.put("w/b", "2", None).await.unwrap();
    let mut seen = 0;
    while seen < 2 {
        let response = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("the events in time")
            .unwrap()
            .unwrap();
        seen += response.events().len();
    }
    assert_eq!(
        events_sent().await,
        2,
        "one per event sent, none for the created answer"
    );
}
