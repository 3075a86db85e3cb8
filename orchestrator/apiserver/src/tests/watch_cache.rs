//! The watch cache: one store watch per kind fanned out to every client, watches by
//! node that only hear of their node's pods, lists at resourceVersion 0.

use serde_json::{Value, json};

use super::*;

const ALL_PODS: &str = "/api/v1/pods";

fn pod_on(name: &str, node: Option<&str>) -> Value {
    let mut pod = pod(name, json!({"app": name}));
    if let Some(node) = node {
        pod["spec"]["nodeName"] = node.into();
    }
    pod
}

async fn create(server: &Server, pod: &Value) -> Value {
    let created = server.send_json("POST", PODS, pod).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    created.json()
}

/// Binds a pod as the scheduler does: straight in the store.
async fn bind(server: &Server, name: &str, node: &str) {
    let key = format!("/registry/pods/default/{name}");
    let record = server.store.kv.get(&key).await.unwrap().unwrap();
    let mut stored: Value = serde_json::from_slice(&record.value).unwrap();
    stored["spec"]["nodeName"] = node.into();
    let value = serde_json::to_vec(&stored).unwrap();
    server
        .store
        .kv
        .update(&key, value, record.mod_revision, None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_by_node_hear_only_of_their_own_pods() {
    let server = start().await;
    create(&server, &pod_on("a", Some("n1"))).await;
    create(&server, &pod_on("b", Some("n2"))).await;
    let by_node = |node: &str| format!("{ALL_PODS}?watch=1&resourceVersion=0&fieldSelector=spec.nodeName%3D{node}");
    let mut n1 = server.watch(&by_node("n1")).await;
    let mut n2 = server.watch(&by_node("n2")).await;
    let mut everything = server.watch(&format!("{ALL_PODS}?watch=1&resourceVersion=0")).await;

    // resourceVersion=0 starts from the objects there are.
    assert_eq!(n1.next_named().await, ("ADDED".into(), "a".into()));
    assert_eq!(n2.next_named().await, ("ADDED".into(), "b".into()));
    let mut first = vec![everything.next_named().await, everything.next_named().await];
    first.sort();
    assert_eq!(first, vec![("ADDED".into(), "a".into()), ("ADDED".into(), "b".into())]);

    // An unbound pod is no node's; bound, it is ADDED for its node.
    create(&server, &pod_on("c", None)).await;
    assert_eq!(everything.next_named().await, ("ADDED".into(), "c".into()));
    bind(&server, "c", "n1").await;
    let bound = n1.next().await.unwrap();
    assert_eq!(bound["type"], "ADDED");
    assert_eq!(bound["object"]["metadata"]["name"], "c");
    assert_eq!(bound["object"]["spec"]["nodeName"], "n1");
    assert_eq!(everything.next_named().await, ("MODIFIED".into(), "c".into()));

    // A deletion reaches the node the pod was on.
    let deleted = server.delete(&format!("{PODS}/a?gracePeriodSeconds=0")).await;
    assert_eq!(deleted.status, 200, "{}", String::from_utf8_lossy(&deleted.body));
    loop {
        let (kind, name) = n1.next_named().await;
        assert_eq!(name, "a", "n1 hears only of its own pods");
        if kind == "DELETED" {
            break;
        }
        assert_eq!(kind, "MODIFIED");
    }

    // n2 heard of none of that: its next event is its own new pod.
    create(&server, &pod_on("d", Some("n2"))).await;
    assert_eq!(n2.next_named().await, ("ADDED".into(), "d".into()));

    // A node's watch that selects by label too: c is its own once labelled, and
    // stops being so when the label changes (the filter reads the objects).
    let mut web_on_n1 = server
        .watch(&format!("{}&labelSelector=tier%3Dweb", by_node("n1")))
        .await;
    let label = |tier: &str| json!({"metadata": {"labels": {"tier": tier}}});
    server.merge_patch(&format!("{PODS}/c"), &label("web")).await;
    let added = web_on_n1.next().await.unwrap();
    assert_eq!(
        (&added["type"], &added["object"]["metadata"]["name"]),
        (&"ADDED".into(), &"c".into())
    );
    assert_eq!(added["object"]["kind"], "Pod");
    assert_eq!(added["object"]["metadata"]["labels"]["tier"], "web");
    server.merge_patch(&format!("{PODS}/c"), &label("db")).await;
    let gone = web_on_n1.next().await.unwrap();
    assert_eq!(
        (&gone["type"], &gone["object"]["metadata"]["name"]),
        (&"DELETED".into(), &"c".into())
    );
    // As it was before the change, stamped with the change's revision.
    assert_eq!(gone["object"]["metadata"]["labels"]["tier"], "web");
    let now = server.get(&format!("{PODS}/c")).await.json();
    assert_eq!(
        gone["object"]["metadata"]["resourceVersion"],
        now["metadata"]["resourceVersion"]
    );
    assert_eq!(n1.next_named().await, ("MODIFIED".into(), "c".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_revision_gets_every_change_after_it_once() {
    let server = start().await;
    // The cache starts with the first watch of the kind.
    let mut warm = server.watch(&format!("{PODS}?watch=1&resourceVersion=0")).await;
    let created = create(&server, &pod_on("p", None)).await;
    assert_eq!(warm.next_named().await, ("ADDED".into(), "p".into()));
    let labelled = server
        .merge_patch(&format!("{PODS}/p"), &json!({"metadata": {"labels": {"tier": "web"}}}))
        .await
        .json();
    let relabelled = server
        .merge_patch(&format!("{PODS}/p"), &json!({"metadata": {"labels": {"tier": "db"}}}))
        .await
        .json();

    // From the create: the two changes after it, in order, then what comes next.
    let mut after = server
        .watch(&format!("{PODS}?watch=1&resourceVersion={}", version_of(&created)))
        .await;
    let first = after.next().await.unwrap();
    assert_eq!(first["type"], "MODIFIED");
    assert_eq!(
        first["object"]["metadata"]["resourceVersion"],
        labelled["metadata"]["resourceVersion"]
    );
    let second = after.next().await.unwrap();
    assert_eq!(
        second["object"]["metadata"]["resourceVersion"],
        relabelled["metadata"]["resourceVersion"]
    );

    // A selector the object leaves: DELETED, with the version that passed it, at
    // the revision it left.
    let mut web = server
        .watch(&format!(
            "{PODS}?watch=1&resourceVersion={}&labelSelector=tier%3Dweb",
            version_of(&created)
        ))
        .await;
    let entered = web.next().await.unwrap();
    assert_eq!(entered["type"], "ADDED");
    let left = web.next().await.unwrap();
    assert_eq!(left["type"], "DELETED");
    assert_eq!(left["object"]["metadata"]["labels"]["tier"], "web");
    assert_eq!(
        left["object"]["metadata"]["resourceVersion"],
        relabelled["metadata"]["resourceVersion"]
    );

    create(&server, &pod_on("q", None)).await;
    assert_eq!(after.next_named().await, ("ADDED".into(), "q".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_at_resource_version_0_come_from_the_cache() {
    let server = start().await;
    for (name, node) in [("a", "n1"), ("b", "n1"), ("c", "n1"), ("d", "n2")] {
        create(&server, &pod_on(name, Some(node))).await;
    }
    let names = |list: &Value| -> Vec<String> {
        let mut names: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    // The cache may trail the write by a moment: any revision will do for rv=0.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let list = loop {
        let list = server
            .get(&format!(
                "{ALL_PODS}?resourceVersion=0&fieldSelector=spec.nodeName%3Dn1&limit=1"
            ))
            .await
            .json();
        if names(&list).len() == 3 || tokio::time::Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(list["kind"], "PodList");
    assert_eq!(
        names(&list),
        vec!["a", "b", "c"],
        "limit is not honored at resourceVersion 0"
    );
    assert!(list["metadata"].get("continue").is_none());
    assert!(version_of(&list).parse::<i64>().unwrap() > 0);
    let n2 = server
        .get(&format!("{PODS}?resourceVersion=0&fieldSelector=spec.nodeName%3Dn2"))
        .await
        .json();
    assert_eq!(names(&n2), vec!["d"]);
    // Without it, the store's list pages as asked.
    let paged = server
        .get(&format!("{ALL_PODS}?fieldSelector=spec.nodeName%3Dn1&limit=1"))
        .await
        .json();
    assert_eq!(names(&paged), vec!["a"]);
    assert!(paged["metadata"]["continue"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_watches_are_the_stores_own() {
    let server = start_with(Settings {
        watch_cache: false,
        ..Settings::default()
    })
    .await;
    let created = create(&server, &pod_on("p", Some("n1"))).await;
    let mut n1 = server
        .watch(&format!(
            "{ALL_PODS}?watch=1&resourceVersion=0&fieldSelector=spec.nodeName%3Dn1"
        ))
        .await;
    assert_eq!(n1.next_named().await, ("ADDED".into(), "p".into()));
    let mut after = server
        .watch(&format!("{PODS}?watch=1&resourceVersion={}", version_of(&created)))
        .await;
    server
        .merge_patch(&format!("{PODS}/p"), &json!({"metadata": {"labels": {"x": "y"}}}))
        .await;
    assert_eq!(after.next_named().await, ("MODIFIED".into(), "p".into()));
    assert_eq!(n1.next_named().await, ("MODIFIED".into(), "p".into()));
}

/// Writes a label on the pod straight in the store, as another API server would.
async fn label_in_store(server: &Server, name: &str, key: &str, value: &str) -> i64 {
    let key_of = format!("/registry/pods/default/{name}");
    let record = server.store.kv.get(&key_of).await.unwrap().unwrap();
    let mut stored: Value = serde_json::from_slice(&record.value).unwrap();
    stored["metadata"]["labels"][key] = value.into();
    let value = serde_json::to_vec(&stored).unwrap();
    (server.store.kv)
        .update(&key_of, value, record.mod_revision, None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_start_from_the_cache_and_lose_no_write_the_cache_has_not_seen() {
    let store = store().await;
    let api = ApiServer::with_settings(store.kv.clone(), Settings::default());
    let server = start_on(store, api.clone()).await;
    create(&server, &pod_on("p", Some("n1"))).await;
    let cache = api.watch_caches.of(&api.kv, kind("pods"));
    let patch = |label: &str| json!({"metadata": {"labels": {"api": label}}});
    // Filled, and current: a patch starts from its copy.
    assert_eq!(server.get(&format!("{PODS}?resourceVersion=0")).await.status, 200);
    let patched = server.merge_patch(&format!("{PODS}/p"), &patch("1")).await;
    assert_eq!(patched.status, 200, "{}", String::from_utf8_lossy(&patched.body));
    assert!(cache.get("/registry/pods/default/p").is_some());

    // From now on the cache hears of nothing: every copy it has is stale.
    cache.freeze();
    for round in 2..6 {
        let round = round.to_string();
        let written = label_in_store(&server, "p", "direct", &round).await;
        let patched = server.merge_patch(&format!("{PODS}/p"), &patch(&round)).await;
        assert_eq!(patched.status, 200, "{}", String::from_utf8_lossy(&patched.body));
        let patched = patched.json();
        assert!(version_of(&patched).parse::<i64>().unwrap() > written);
        let stored = server.get(&format!("{PODS}/p")).await.json();
        for object in [&patched, &stored] {
            assert_eq!(object["metadata"]["labels"]["direct"], round.as_str());
            assert_eq!(object["metadata"]["labels"]["api"], round.as_str());
        }
    }

    // A replace naming the version its client read is refused once the store moved
    // on, even where the cache still holds that version.
    let read = server.get(&format!("{PODS}/p")).await.json();
    label_in_store(&server, "p", "direct", "last").await;
    let mut replaced = read.clone();
    replaced["metadata"]["labels"]["api"] = "stale".into();
    let refused = server.send_json("PUT", &format!("{PODS}/p"), &replaced).await;
    assert_eq!(refused.status, 409, "{}", String::from_utf8_lossy(&refused.body));
    let stored = server.get(&format!("{PODS}/p")).await.json();
    assert_eq!(stored["metadata"]["labels"]["direct"], "last");
    assert_ne!(stored["metadata"]["labels"]["api"], "stale");
    // One naming the store's version goes through.
    let mut current = stored.clone();
    current["metadata"]["labels"]["api"] = "fresh".into();
    let accepted = server.send_json("PUT", &format!("{PODS}/p"), &current).await;
    assert_eq!(accepted.status, 200, "{}", String::from_utf8_lossy(&accepted.body));
    assert_eq!(accepted.json()["metadata"]["labels"]["direct"], "last");

    // A JSON patch whose test fails against the stale copy but holds against the
    // store's is decided by the store's.
    let test_current = json!([
        {"op": "test", "path": "/metadata/labels/direct", "value": "last"},
        {"op": "add", "path": "/metadata/labels/tested", "value": "yes"},
    ]);
    let applied = server
        .call(
            "PATCH",
            &format!("{PODS}/p"),
            &[("content-type", "application/json-patch+json")],
            test_current.to_string().into_bytes(),
        )
        .await;
    assert_eq!(applied.status, 200, "{}", String::from_utf8_lossy(&applied.body));
    assert_eq!(applied.json()["metadata"]["labels"]["tested"], "yes");
}
