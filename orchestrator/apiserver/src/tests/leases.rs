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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_renewals_are_committed_together_each_with_its_own_answer() {
    const NODES: usize = 48;
    let server = std::sync::Arc::new(start().await);
    node_lease_namespace(&server).await;
    let mut leases = Vec::new();
    for i in 0..NODES {
        let created = server.send_json("POST", NODE_LEASES, &lease(&format!("n{i}"))).await;
        assert_eq!(created.status, 201, "{:?}", created.json());
        leases.push(created.json());
    }
    let renew = |lease: Value| {
        let server = server.clone();
        tokio::spawn(async move {
            let name = lease["metadata"]["name"].as_str().unwrap().to_string();
            let mut renewed = lease;
            renewed["spec"]["renewTime"] = json!("2026-01-02T03:04:06.000000Z");
            let reply = server
                .send_json("PUT", &format!("{NODE_LEASES}/{name}"), &renewed)
                .await;
            (name, reply.status, reply.json())
        })
    };
    // Every node renews at once, and n0 twice at the version it read: one of those
    // two is stale once the other is written.
    let tasks: Vec<_> = (leases.iter().cloned().chain([leases[0].clone()])).map(renew).collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let n0: Vec<u16> = (answers.iter())
        .filter(|(name, ..)| name == "n0")
        .map(|(_, status, _)| *status)
        .collect();
    assert!(n0 == [200, 409] || n0 == [409, 200], "one renewal of n0 wins: {n0:?}");
    let conflict = answers.iter().find(|(_, status, _)| *status == 409).unwrap();
    assert_eq!(conflict.2["reason"], "Conflict", "{:?}", conflict.2);
    let renewed: Vec<&(String, u16, Value)> = answers.iter().filter(|(_, status, _)| *status == 200).collect();
    assert_eq!(renewed.len(), NODES, "every node's renewal but the stale one");
    let mut revisions = std::collections::BTreeSet::new();
    for (name, _, object) in &renewed {
        assert_eq!(object["spec"]["renewTime"], "2026-01-02T03:04:06.000000Z");
        let stored = server.get(&format!("{NODE_LEASES}/{name}")).await.json();
        assert_eq!(
            version_of(&stored),
            version_of(object),
            "{name}: its answer names what was stored"
        );
        assert_eq!(stored["spec"]["renewTime"], "2026-01-02T03:04:06.000000Z");
        revisions.insert(version_of(object));
    }
    assert!(
        revisions.len() < NODES,
        "{NODES} renewals committed in {} store revisions",
        revisions.len()
    );
}
