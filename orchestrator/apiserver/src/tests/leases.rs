//! Nodes' Leases in `kube-node-lease`, and what their renewals cost: `/metrics`
//! counts each request and each watch event.

use serde_json::{Value, json};

use super::*;

const NODE_LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

fn lease(node: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                 "renewTime": "2026-01-02T03:04:05.000000Z"},
    })
}

/// Waits for the API server to have made `kube-node-lease`.
async fn node_lease_namespace(server: &Server) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.get("/api/v1/namespaces/kube-node-lease").await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "no kube-node-lease namespace");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the series of `name` whose labels include all of `labels`.
fn series(text: &str, name: &str, labels: &[&str]) -> u64 {
    (text.lines())
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_each_renewal_and_each_watch_event() {
    let server = start().await;
    node_lease_namespace(&server).await;
    let created = server.send_json("POST", NODE_LEASES, &lease("n1")).await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    let mut watch = server
        .watch(&format!(
            "{NODE_LEASES}?watch=true&resourceVersion={}",
            version_of(&created.json())
        ))
        .await;
    let mut written = created.json();
    for _ in 0..2 {
        let renewed = server.send_json("PUT", &format!("{NODE_LEASES}/n1"), &written).await;
        assert_eq!(renewed.status, 200, "{:?}", renewed.json());
        written = renewed.json();
        assert_eq!(watch.next_named().await, ("MODIFIED".to_string(), "n1".to_string()));
    }
    let stale = server
        .send_json("PUT", &format!("{NODE_LEASES}/n1"), &created.json())
        .await;
    assert_eq!(stale.status, 409);

    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    let text = String::from_utf8(metrics.body).unwrap();
    let leases = ["resource=\"leases\"", "group=\"coordination.k8s.io\""];
    let puts = |code: &str| {
        let code = format!("code=\"{code}\"");
        series(
            &text,
            "apiserver_request_total",
            &[leases[0], leases[1], "verb=\"PUT\"", "scope=\"resource\"", &code],
        )
    };
    assert_eq!(puts("200"), 2, "{text}");
    assert_eq!(puts("409"), 1, "{text}");
    assert_eq!(
        series(
            &text,
            "apiserver_request_total",
            &[leases[0], "verb=\"POST\"", "code=\"201\"", "scope=\"namespace\""]
        ),
        1,
        "{text}"
    );
    assert_eq!(
        series(&text, "apiserver_request_total", &[leases[0], "verb=\"WATCH\""]),
        1,
        "{text}"
    );
    assert_eq!(series(&text, "apiserver_watch_events_total", &leases), 2, "{text}");
}
