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
