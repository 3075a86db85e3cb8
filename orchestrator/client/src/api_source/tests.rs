use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::kinds::config_map::CONFIG_MAP;
use berth_api::kinds::node::NODE;
use berth_api::kinds::pod::POD;
use berth_api::objects::PodSpec;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::kv::Event;
use crate::reflector::Sink;

#[test]
fn store_keys_name_the_objects_the_api_serves() {
    let (kind, namespace, name) = object_of_key("/registry/configmaps/default/app").unwrap();
    assert_eq!(
        (kind.kind, namespace.as_str(), name.as_str()),
        ("ConfigMap", "default", "app")
    );
    let (kind, namespace, name) = object_of_key("/registry/persistentvolumes/pv-1").unwrap();
    assert_eq!(
        (kind.kind, namespace.as_str(), name.as_str()),
        ("PersistentVolume", "", "pv-1")
    );
    let (kind, _, name) = object_of_key("/registry/secrets/kube-system/token").unwrap();
    assert_eq!((kind.kind, name.as_str()), ("Secret", "token"));
    assert!(object_of_key("/registry/configmaps/default").is_none(), "no name");
    assert!(
        object_of_key("/registry/nodes/a/b").is_none(),
        "a cluster-scoped kind has no namespace"
    );
    assert!(
        object_of_key("/registry/widgets/default/w").is_none(),
        "not a kind berth serves"
    );
    assert!(object_of_key("/berth/heartbeats/n1").is_none());
}

#[test]
fn an_object_becomes_the_record_the_store_holds() {
    // As a list's item: no kind, no apiVersion.
    let item = json!({
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "42", "uid": "u1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
    });
    let record = record_of(&POD, item).unwrap();
    assert_eq!(record.key, "/registry/pods/default/web");
    assert_eq!(record.mod_revision, 42);
    let stored: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
    assert_eq!(stored["kind"], "Pod");
    assert_eq!(stored["apiVersion"], "v1");
    assert!(
        stored["metadata"].get("resourceVersion").is_none(),
        "the store keeps no resourceVersion: {stored}"
    );
    // The registry reads it as it reads the store's, resourceVersion stamped.
    let pod = crate::registry::decode::<PodSpec>(&record).unwrap();
    assert_eq!(pod.spec.node_name.as_deref(), Some("n1"));
    assert_eq!(pod.metadata.resource_version.as_deref(), Some("42"));

    let node = record_of(&NODE, json!({"metadata": {"name": "n1", "resourceVersion": "7"}})).unwrap();
    assert_eq!(node.key, "/registry/nodes/n1");

    for (bad, why) in [
        (json!({"metadata": {"name": "x"}}), "resourceVersion"),
        (
            json!({"metadata": {"name": "x", "resourceVersion": "abc"}}),
            "resourceVersion",
        ),
        (json!({"metadata": {"resourceVersion": "3"}}), "metadata.name"),
        (json!({"spec": {}}), "without metadata"),
        (json!([1]), "not a JSON object"),
    ] {
        let error = record_of(&CONFIG_MAP, bad).unwrap_err();
        assert!(error.contains(why), "{error}");
    }
}

fn line(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn watch_lines_become_events_bookmarks_and_the_relist_signal() {
    let object =
        |rv: &str| json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns", "resourceVersion": rv}});
    for kind in ["ADDED", "MODIFIED"] {
        match decode_event(&CONFIG_MAP, &line(json!({"type": kind, "object": object("5")}))).unwrap() {
            WatchEvent::Change(Event::Put(record)) => {
                assert_eq!(
                    (record.key.as_str(), record.mod_revision),
                    ("/registry/configmaps/ns/a", 5)
                );
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
    match decode_event(&CONFIG_MAP, &line(json!({"type": "DELETED", "object": object("9")}))).unwrap() {
        WatchEvent::Gone(Event::Delete { prev, revision }) => {
            assert_eq!((prev.key.as_str(), revision), ("/registry/configmaps/ns/a", 9));
        }
        other => panic!("{other:?}"),
    }
    let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "12"}}});
    assert_eq!(
        decode_event(&CONFIG_MAP, &line(bookmark)).unwrap(),
        WatchEvent::Bookmark(12)
    );
    let expired = json!({"type": "ERROR", "object": {"kind": "Status", "status": "Failure", "reason": "Expired",
        "code": 410, "message": "too old resource version: 3 (8)"}});
    assert_eq!(
        decode_event(&CONFIG_MAP, &line(expired)).unwrap(),
        WatchEvent::Expired("too old resource version: 3 (8)".into())
    );
    let gone = json!({"type": "ERROR", "object": {"kind": "Status", "reason": "Gone", "message": "gone"}});
    assert!(matches!(
        decode_event(&CONFIG_MAP, &line(gone)).unwrap(),
        WatchEvent::Expired(_)
    ));
    let failed = json!({"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}});
    assert_eq!(
        decode_event(&CONFIG_MAP, &line(failed)).unwrap(),
        WatchEvent::Failed("boom".into())
    );
    assert!(decode_event(&CONFIG_MAP, b"{not json").is_err());
    assert!(decode_event(&CONFIG_MAP, &line(json!({"type": "SURPRISE", "object": {}}))).is_err());
}

#[test]
fn only_an_expired_revision_lists_again() {
    assert_eq!(next_after(&WatchEnd::Expired), Next::Relist);
    assert_eq!(next_after(&WatchEnd::Ended), Next::Rewatch(Duration::ZERO));
    assert!(matches!(next_after(&WatchEnd::Failed("reset".into())), Next::Rewatch(pause) if pause > Duration::ZERO));
}

#[test]
fn failed_responses_read_as_the_store_clients_errors() {
    let status = |code: u16, reason: &str| {
        let body = line(json!({"kind": "Status", "code": code, "reason": reason, "message": "m"}));
        response_error(code, &body)
    };
    assert_eq!(status(404, "NotFound"), KvError::NotFound);
    assert_eq!(status(409, "AlreadyExists"), KvError::AlreadyExists);
    assert_eq!(status(409, "Conflict"), KvError::Conflict { current: 0 });
    assert!(matches!(status(410, "Expired"), KvError::Compacted { .. }));
    assert!(matches!(status(503, "ServiceUnavailable"), KvError::Unavailable(_)));
    assert_eq!(status(403, "Forbidden"), KvError::Other("403: m".into()));
    assert_eq!(
        response_error(400, b"plain words\n"),
        KvError::Other("400: plain words".into())
    );
}

#[test]
fn queries_are_percent_encoded_and_empty_values_left_out() {
    assert_eq!(
        records::collection_query(
            &POD,
            None,
            &[
                ("watch", "true"),
                ("fieldSelector", "spec.nodeName=n1"),
                ("continue", "")
            ]
        ),
        "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dn1"
    );
    assert_eq!(
        records::collection_query(&NODE, None, &[("continue", "")]),
        "/api/v1/nodes"
    );
    assert_eq!(
        records::collection_query(&POD, Some("team-a"), &[("fieldSelector", "metadata.name=web")]),
        "/api/v1/namespaces/team-a/pods?fieldSelector=metadata.name%3Dweb"
    );
}

/// What a sink was handed, in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<String>>);

impl Sink for Recorded {
    fn replace(&self, records: Vec<crate::kv::Record>, revision: i64) {
        let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
        self.0.lock().unwrap().push(format!("replace {keys:?} at {revision}"));
    }

    fn apply(&self, events: Vec<Event>, revision: i64) {
        for event in events {
            let what = if matches!(event, Event::Put(_)) {
                "put"
            } else {
                "delete"
            };
            self.0
                .lock()
                .unwrap()
                .push(format!("{what} {} at {revision}", event.key()));
        }
    }
}

/// Answers each connection's request with the next of `responses` (the last one
/// kept open until the test ends), recording the request lines.
async fn serve(listener: TcpListener, responses: Vec<String>, requests: Arc<Mutex<Vec<String>>>) {
    let count = responses.len();
    for (i, response) in responses.into_iter().enumerate() {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let request_line = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        requests.lock().unwrap().push(request_line);
        socket.write_all(response.as_bytes()).await.unwrap();
        if i + 1 == count {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        socket.shutdown().await.ok();
    }
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn list(names: &[&str], revision: u32, continue_token: &str) -> String {
    let items: Vec<serde_json::Value> = names
        .iter()
        .map(|n| json!({"metadata": {"name": n, "namespace": "ns", "resourceVersion": "1"}}))
        .collect();
    ok(&json!({"kind": "ConfigMapList", "metadata": {"resourceVersion": revision.to_string(), "continue": continue_token},
        "items": items})
    .to_string())
}

#[tokio::test]
async fn lists_in_pages_watches_from_the_list_and_lists_again_when_expired() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let event = |kind: &str, name: &str, rv: u32| {
        json!({"type": kind, "object": {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string()}}})
            .to_string()
    };
    let first_watch = [
        event("MODIFIED", "a", 6),
        json!({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}}).to_string(),
    ]
    .join("\n");
    let second_watch = [
        event("DELETED", "b", 9),
        json!({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}})
            .to_string(),
    ]
    .join("\n");
    let responses = vec![
        list(&["a"], 5, "page-2"),
        list(&["b"], 5, ""),
        ok(&first_watch),
        ok(&second_watch),
        list(&["c"], 20, ""),
        ok(""),
    ];
    let requests = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(listener, responses, requests.clone()));
    let api = ApiSource::new(Arc::new(HttpClient::new(vec![format!("http://127.0.0.1:{port}")])));
    let sink = Arc::new(Recorded::default());
    let loop_task = tokio::spawn(reflect(api, &CONFIG_MAP, Some("metadata.name!=z".into()), sink.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while requests.lock().unwrap().len() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", requests.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop_task.abort();
    server.abort();
    assert_eq!(
        *sink.0.lock().unwrap(),
        [
            "replace [\"/registry/configmaps/ns/a\", \"/registry/configmaps/ns/b\"] at 5",
            "put /registry/configmaps/ns/a at 6",
            "delete /registry/configmaps/ns/b at 9",
            "replace [\"/registry/configmaps/ns/c\"] at 20",
        ]
    );
    let requests = requests.lock().unwrap().clone();
    let selector = "fieldSelector=metadata.name%21%3Dz";
    assert!(
        requests[0].starts_with(&format!(
            "GET /api/v1/configmaps?resourceVersion=0&limit=500&{selector} "
        )),
        "the first list takes the watch cache's: {requests:?}"
    );
    assert!(requests[1].contains("continue=page-2"), "{requests:?}");
    assert!(
        !requests[1].contains("resourceVersion"),
        "a continued list names none: {requests:?}"
    );
    assert!(
        requests[2].contains("watch=true&resourceVersion=5&allowWatchBookmarks=true&")
            && requests[2].contains(selector),
        "{requests:?}"
    );
    // The stream ended after a bookmark: the next watch goes on from it.
    assert!(requests[3].contains("resourceVersion=8&"), "{requests:?}");
    // Expired: a new list, then a watch from its resourceVersion.
    assert!(
        requests[4].starts_with(&format!("GET /api/v1/configmaps?{selector} ")),
        "after a 410, a consistent list, whole (the watch cache serves it once current): {requests:?}"
    );
    assert!(requests[5].contains("resourceVersion=20&"), "{requests:?}");
}

#[test]
fn every_object_a_transaction_wrote_is_applied_though_they_share_its_revision() {
    let sink = Recorded::default();
    let put = |key: &str, revision: i64| {
        Event::Put(crate::kv::Record {
            key: key.into(),
            mod_revision: revision,
            ..Default::default()
        })
    };
    let mut revision = 5;
    reflect::apply(&sink, put("/registry/pods/default/a", 7), &mut revision);
    reflect::apply(&sink, put("/registry/pods/default/b", 7), &mut revision);
    reflect::apply(&sink, put("/registry/pods/default/c", 6), &mut revision);
    assert_eq!(revision, 7);
    assert_eq!(
        *sink.0.lock().unwrap(),
        ["put /registry/pods/default/a at 7", "put /registry/pods/default/b at 7"],
        "an older event is skipped"
    );
}
