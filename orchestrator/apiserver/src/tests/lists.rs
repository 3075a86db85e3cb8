//! Lists in pages (`limit`, `continue`) at one revision, with and without selectors;
//! continue tokens that expired or were never valid; lists larger than one gRPC
//! message of the store client's old limit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn continue_of(list: &Value) -> Option<String> {
    list["metadata"]["continue"].as_str().map(str::to_string)
}

/// Every page of a list from `path` (which has a `limit`), following `continue`
/// from `next` (`None`: from the start).
async fn pages(server: &Server, path: &str, mut next: Option<String>) -> Vec<Value> {
    let mut pages = Vec::new();
    loop {
        let url = match &next {
            Some(token) => format!("{path}&continue={token}"),
            None => path.to_string(),
        };
        let page = server.get(&url).await;
        assert_eq!(page.status, 200, "{url}: {}", String::from_utf8_lossy(&page.body));
        let page = page.json();
        next = continue_of(&page);
        pages.push(page);
        if next.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the pages do not end");
    }
}

async fn create_pods(server: &Server, names: &[&str], label: impl Fn(usize) -> &'static str) {
    for (i, name) in names.iter().enumerate() {
        let created = server
            .send_json("POST", PODS, &pod(name, json!({"app": label(i)})))
            .await;
        assert_eq!(created.status, 201, "{}", created.json());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_in_pages_at_one_revision() {
    let server = start().await;
    let all = ["p0", "p1", "p2", "p3", "p4", "p5", "p6"];
    create_pods(&server, &all, |i| if i % 2 == 0 { "a" } else { "b" }).await;

    let first = server.get(&format!("{PODS}?limit=3")).await.json();
    assert_eq!(names(&first), ["p0", "p1", "p2"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 4);
    let revision = first["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let token = continue_of(&first).expect("a continue token");

    // Changes after the first page are not in the next ones: they are read at the
    // first page's revision.
    assert_eq!(server.delete(&format!("{PODS}/p4")).await.status, 200);
    create_pods(&server, &["p9"], |_| "a").await;
    server
        .merge_patch(&format!("{PODS}/p5"), &json!({"metadata": {"labels": {"app": "c"}}}))
        .await;
    let rest = pages(&server, &format!("{PODS}?limit=3"), Some(token)).await;
    assert_eq!(rest.len(), 2);
    let mut items: Vec<Value> = first["items"].as_array().unwrap().clone();
    for page in &rest {
        assert_eq!(page["metadata"]["resourceVersion"], revision.as_str());
        items.extend(page["items"].as_array().unwrap().iter().cloned());
    }
    let at_revision = server
        .get(&format!("{PODS}?resourceVersion={revision}&resourceVersionMatch=Exact"))
        .await
        .json();
    assert_eq!(at_revision["metadata"]["resourceVersion"], revision.as_str());
    assert_eq!(items, at_revision["items"].as_array().unwrap().clone());
    assert_eq!(names(&at_revision), all);
    assert_eq!(items[5]["metadata"]["labels"]["app"], "b", "p5 as it was");

    // With a selector, each page but the last is full: the server reads on until
    // `limit` items match. Without one, the remaining count is unknown.
    let selected = pages(&server, &format!("{PODS}?labelSelector=app%3Da&limit=2"), None).await;
    let selected_names: Vec<Vec<String>> = selected.iter().map(names).collect();
    assert_eq!(selected_names, [vec!["p0", "p2"], vec!["p6", "p9"]]);
    assert!(selected[0]["metadata"].get("remainingItemCount").is_none());
    assert_eq!(
        selected[0]["metadata"]["resourceVersion"],
        selected[1]["metadata"]["resourceVersion"]
    );
    // A limit the list does not reach: no token.
    let whole = server.get(&format!("{PODS}?limit=100")).await.json();
    assert_eq!(names(&whole), ["p0", "p1", "p2", "p3", "p5", "p6", "p9"]);
    assert_eq!(continue_of(&whole), None);
    // A limit the last page reaches exactly: no token either.
    let exact = pages(&server, &format!("{PODS}?limit=7"), None).await;
    assert_eq!(exact.len(), 1);
    // One item at a time, across namespaces, is the whole list too.
    let one_by_one = pages(&server, "/api/v1/pods?limit=1", None).await;
    let one_by_one: Vec<String> = one_by_one.iter().flat_map(names).collect();
    assert_eq!(one_by_one, names(&whole));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_invalid_continue_tokens_are_refused() {
    let server = start().await;
    create_pods(&server, &["q0", "q1", "q2", "q3", "q4"], |_| "a").await;
    let first = server.get(&format!("{PODS}?limit=2")).await.json();
    let token = continue_of(&first).unwrap();

    // The first page's revision is compacted away: 410, with a token that goes on
    // from the same place at the current revision.
    create_pods(&server, &["q5"], |_| "a").await;
    let current: i64 = version_of(&server.get(&format!("{PODS}/q5")).await.json())
        .parse()
        .unwrap();
    server.store.compact(current).await;
    let expired = server.get(&format!("{PODS}?limit=2&continue={token}")).await;
    assert_eq!(expired.status, 410, "{}", String::from_utf8_lossy(&expired.body));
    let expired = expired.json();
    assert_eq!(expired["kind"], "Status");
    assert_eq!(expired["reason"], "Expired");
    assert_eq!(expired["code"], 410);
    assert_eq!(
        expired["message"],
        "The provided continue parameter is too old to display a consistent list result. You can start a \
         new list without the continue parameter, or use the continue token in this response to retrieve \
         the remainder of the results. Continuing with the provided token results in an inconsistent list - \
         objects that were created, modified, or deleted between the time the first chunk was returned and \
         now may show up in the list."
    );
    let inconsistent = expired["metadata"]["continue"].as_str().unwrap();
    let rest = server.get(&format!("{PODS}?continue={inconsistent}")).await.json();
    assert_eq!(names(&rest), ["q2", "q3", "q4", "q5"]);
    assert!(
        rest["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            >= current
    );

    // An exact read of a compacted revision is 410 too.
    let old = first["metadata"]["resourceVersion"].as_str().unwrap();
    let gone = server
        .get(&format!("{PODS}?resourceVersion={old}&resourceVersionMatch=Exact"))
        .await;
    assert_eq!((gone.status, gone.json()["reason"].clone()), (410, json!("Expired")));

    let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
    for (bad, why) in [
        ("not-base64!".to_string(), "continue key is not valid: "),
        (encode("[1]"), "continue key is not valid: "),
        (
            encode(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"q1\u0000"}"#),
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ),
        (
            encode(r#"{"v":"meta.k8s.io/v1","rv":5,"start":""}"#),
            "continue key is not valid: encoded start key empty (version meta.k8s.io/v1)",
        ),
        (
            encode(r#"{"v":"meta.k8s.io/v1","rv":5,"start":"../../secrets/x"}"#),
            "continue key is not valid: ../../secrets/x",
        ),
        (
            encode(r#"{"v":"v2","rv":5,"start":"q1"}"#),
            "continue key is not valid: server does not recognize this encoded version \"v2\"",
        ),
    ] {
        let refused = server.get(&format!("{PODS}?limit=2&continue={bad}")).await;
        assert_eq!(refused.status, 400, "{bad}");
        let message = refused.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with(&format!("invalid continue token: {why}")),
            "{message}"
        );
    }
    let with_version = server
        .get(&format!("{PODS}?limit=2&continue={token}&resourceVersion=5"))
        .await;
    assert_eq!(with_version.status, 400);
    assert_eq!(
        with_version.json()["message"],
        "specifying resource version is not allowed when using continue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_larger_than_four_mebibytes_are_served() {
    let server = start().await;
    // Four legal pods of 1.2 MB: 4.8 MB together, past the 4 MiB a gRPC client
    // decodes by default (every list and watch of pods failed with 500).
    for i in 0..4 {
        let mut big = pod(&format!("big{i}"), json!({}));
        big["metadata"]["annotations"] = json!({"filler": "x".repeat(1_200_000)});
        assert_eq!(server.send_json("POST", PODS, &big).await.status, 201);
    }
    let list = server.get(PODS).await;
    assert_eq!(
        list.status,
        200,
        "{}",
        String::from_utf8_lossy(&list.body[..200.min(list.body.len())])
    );
    assert!(list.body.len() > 4 * 1024 * 1024);
    assert_eq!(names(&list.json()), ["big0", "big1", "big2", "big3"]);
    let mut watch = server.watch(&format!("{PODS}?watch=1")).await;
    for i in 0..4 {
        assert_eq!(watch.next_named().await, ("ADDED".into(), format!("big{i}")));
    }
}
