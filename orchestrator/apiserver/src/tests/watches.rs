//! Watches: events in order, selectors, timeouts, compacted revisions.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_report_changes_in_order_and_refuse_compacted_revisions() {
    let server = start().await;
    let list = server.get(PODS).await.json();
    let start_version = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    let mut all = server
        .watch(&format!("{PODS}?watch=1&resourceVersion={start_version}"))
        .await;
    let mut selected = server
        .watch(&format!(
            "{PODS}?watch=true&resourceVersion={start_version}&labelSelector=app%3Da"
        ))
        .await;
    let mut one = server
        .watch(&format!(
            "{PODS}?watch=1&resourceVersion={start_version}&fieldSelector=metadata.name%3Dq"
        ))
        .await;

    assert_eq!(
        server
            .send_json("POST", PODS, &pod("p", json!({"app": "b"})))
            .await
            .status,
        201
    );
    let modified = server
        .merge_patch(&format!("{PODS}/p"), &json!({"metadata": {"labels": {"app": "a"}}}))
        .await
        .json();
    server
        .merge_patch(&format!("{PODS}/p"), &json!({"metadata": {"labels": {"app": "c"}}}))
        .await;
    let deleted = server.delete(&format!("{PODS}/p")).await.json();
    assert_eq!(server.send_json("POST", PODS, &pod("q", json!({}))).await.status, 201);

    assert_eq!(all.next_named().await, ("ADDED".into(), "p".into()));
    assert_eq!(all.next_named().await, ("MODIFIED".into(), "p".into()));
    assert_eq!(all.next_named().await, ("MODIFIED".into(), "p".into()));
    let deletion = all.next().await.unwrap();
    assert_eq!(deletion["type"], "DELETED");
    assert_eq!(deletion["object"]["kind"], "Pod");
    assert_eq!(deletion["object"]["metadata"]["labels"]["app"], "c", "the last state");
    let deleted_at: i64 = version_of(&deletion["object"]).parse().unwrap();
    assert!(
        deleted_at > version_of(&deleted).parse::<i64>().unwrap(),
        "the deletion's revision"
    );
    assert_eq!(all.next_named().await, ("ADDED".into(), "q".into()));

    // A label selector sees the object enter (ADDED) and leave (DELETED) it.
    let entered = selected.next().await.unwrap();
    assert_eq!(entered["type"], "ADDED");
    assert_eq!(
        entered["object"]["metadata"]["resourceVersion"],
        modified["metadata"]["resourceVersion"]
    );
    assert_eq!(selected.next_named().await, ("DELETED".into(), "p".into()));
    assert_eq!(one.next_named().await, ("ADDED".into(), "q".into()));

    // Without a resourceVersion the watch starts with the objects there are.
    let mut fresh = server.watch(&format!("{PODS}?watch=1&timeoutSeconds=1")).await;
    assert_eq!(fresh.next_named().await, ("ADDED".into(), "q".into()));
    assert_eq!(fresh.next().await, None, "timeoutSeconds ends the watch");

    // After a compaction, a revision older than the watch cache holds is gone: 410.
    // (One the cache still holds is served from it, as kube-apiserver's cache does.)
    let current: i64 = version_of(&server.get(&format!("{PODS}/q")).await.json())
        .parse()
        .unwrap();
    server.store.compact(current).await;
    let start_version = "1";
    let expired = server
        .get(&format!("{PODS}?watch=1&resourceVersion={start_version}"))
        .await;
    assert_eq!(expired.status, 410, "{}", String::from_utf8_lossy(&expired.body));
    let expired = expired.json();
    assert_eq!(expired["kind"], "Status");
    assert_eq!(expired["reason"], "Expired");
    assert_eq!(expired["code"], 410);
    assert!(
        expired["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("too old resource version: {start_version} (")),
        "{expired}"
    );
}

/// `kubectl get -w` asks for tables: every event's object is a one-row Table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_watches_send_rows() {
    let server = start().await;
    let pods = "/api/v1/namespaces/default/pods";
    assert_eq!(server.send_json("POST", pods, &pod("a", json!({}))).await.status, 201);
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let response = server
        .open("GET", &format!("{pods}?watch=true"), &[("accept", accept)], Vec::new())
        .await;
    assert_eq!(response.status(), 200);
    let mut events = Events {
        body: response.into_body(),
        buffer: Vec::new(),
    };
    let added = events.next().await.unwrap();
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["kind"], "Table");
    assert_eq!(added["object"]["columnDefinitions"][0]["name"], "Name");
    assert_eq!(added["object"]["rows"][0]["cells"][0], "a");
    assert_eq!(added["object"]["rows"][0]["cells"][2], "Pending");
    assert_eq!(server.delete(&format!("{pods}/a")).await.status, 200);
    let deleted = events.next().await.unwrap();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(deleted["object"]["rows"][0]["object"]["metadata"]["name"], "a");
}
