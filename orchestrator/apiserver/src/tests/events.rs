//! Events in both APIs: core/v1 and events.k8s.io/v1 serve the same objects, each
//! with its own field names, and every event is stored with a time to live.

use serde_json::json;

use super::start;

const CORE: &str = "/api/v1/namespaces/default/events";
const V1: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_two_apis() {
    let server = start().await;
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.1"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
        "reason": "Started", "message": "Started container http", "type": "Normal",
        "count": 2, "source": {"component": "kubelet", "host": "n1"},
        "reportingComponent": "kubelet", "reportingInstance": "n1"
    });
    let created = server.send_json("POST", CORE, &core).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let record = server
        .store
        .kv
        .get("/registry/events/default/web.1")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(record.lease, 0, "events go after their time to live");

    let seen = server.get(&format!("{V1}/web.1")).await;
    assert_eq!(seen.status, 200, "{}", seen.json());
    let seen = seen.json();
    assert_eq!(seen["apiVersion"], "events.k8s.io/v1");
    assert_eq!(seen["note"], "Started container http");
    assert_eq!(seen["regarding"]["name"], "web");
    assert_eq!(seen["reportingController"], "kubelet");
    assert_eq!(seen["deprecatedCount"], 2);
    assert_eq!(seen["deprecatedSource"]["host"], "n1");
    assert_eq!(seen.get("message"), None);

    // Written through events.k8s.io/v1, read through core/v1.
    let v1 = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.2"},
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Killing", "note": "Stopping container http", "type": "Normal",
        "reportingController": "kubelet", "reportingInstance": "n1",
        "eventTime": "2026-12-04T10:00:00.000000Z", "action": "Killing"
    });
    let created = server.send_json("POST", V1, &v1).await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert_eq!(
        created.json()["note"],
        "Stopping container http",
        "answered in its own form"
    );
    let core_view = server.get(&format!("{CORE}/web.2")).await.json();
    assert_eq!(core_view["message"], "Stopping container http");
    assert_eq!(core_view["involvedObject"]["name"], "web");
    assert_eq!(core_view["reportingComponent"], "kubelet");

    let selected = server
        .get(&format!("{V1}?fieldSelector=reason%3DKilling,regarding.name%3Dweb"))
        .await
        .json();
    let names: Vec<&str> = selected["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web.2"]);

    let patched = server
        .merge_patch(&format!("{V1}/web.2"), &json!({"note": "Stopped"}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    assert_eq!(server.get(&format!("{CORE}/web.2")).await.json()["message"], "Stopped");
    let discovery = server.get("/apis/events.k8s.io/v1").await.json();
    assert_eq!(discovery["resources"][0]["name"], "events");
}
