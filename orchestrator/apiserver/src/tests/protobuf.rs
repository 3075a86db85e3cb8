//! Protobuf request bodies over HTTP, as kubectl's typed clients send them, and the
//! Eviction subresource `kubectl drain` posts to.

use serde_json::{Value, json};

use super::*;
use crate::protobuf::testing::{bytes, envelope, int, message};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What kubectl's typed clients accept: protobuf first, JSON too.
const KUBECTL_ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

fn kubectl_body(name: &str) -> Vec<u8> {
    let path = format!("{}/src/protobuf/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

impl Server {
    async fn send_protobuf(&self, method: &str, path: &str, body: Vec<u8>) -> Reply {
        self.call(
            method,
            path,
            &[("content-type", PROTOBUF), ("accept", KUBECTL_ACCEPT)],
            body,
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_in_protobuf_and_reads_json_answers() {
    let server = start().await;
    let created = server
        .send_protobuf("POST", "/api/v1/namespaces", kubectl_body("create-namespace.pb"))
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert_eq!(created.content_type, "application/json");
    assert_eq!(created.json()["metadata"]["name"], "team-a");
    let stored = server.get("/api/v1/namespaces/team-a").await.json();
    assert_eq!(stored["status"]["phase"], "Active");

    let created = server
        .send_protobuf("POST", DEPLOYMENTS, kubectl_body("create-deployment.pb"))
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    let stored = server.get(&format!("{DEPLOYMENTS}/web")).await.json();
    assert_eq!(stored["spec"]["replicas"], 2);
    assert_eq!(stored["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    let container = &stored["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["sleep", "1000"]));
    assert_eq!(container["image"], "nginx");
    // The Go zero values on the wire are "unset", so the server's defaults apply.
    assert_eq!(stored["metadata"]["namespace"], "default");
    assert!(stored["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));

    let zero = server
        .send_protobuf("POST", DEPLOYMENTS, kubectl_body("create-deployment-zero-replicas.pb"))
        .await;
    assert_eq!(zero.status, 201, "{}", zero.json());
    assert_eq!(zero.json()["spec"]["replicas"], 0);

    let again = server
        .send_protobuf("POST", DEPLOYMENTS, kubectl_body("create-deployment.pb"))
        .await;
    assert_eq!(
        (again.status, again.json()["reason"].clone()),
        (409, json!("AlreadyExists"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_meet_the_errors_of_their_json_form_or_say_what_is_wrong() {
    let server = start().await;
    // A kind the server knows the message of but does not serve at this URL.
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}});
    let as_json = server.send_json("POST", PODS, &config_map).await;
    let raw = message(&[bytes(1, message(&[bytes(1, "settings")]))]);
    let as_protobuf = server
        .send_protobuf("POST", PODS, envelope("v1", "ConfigMap", &raw))
        .await;
    assert_eq!(as_json.status, 400, "{}", as_json.json());
    assert_eq!(
        (as_protobuf.status, &as_protobuf.json()["message"]),
        (as_json.status, &as_json.json()["message"])
    );

    let job = server
        .send_protobuf("POST", PODS, envelope("batch/v1", "Job", &raw))
        .await;
    assert_eq!(job.status, 400);
    assert_eq!(
        job.json()["message"],
        "cannot decode kind \"Job\" of apiVersion \"batch/v1\" from protobuf: the server does not know that message"
    );
    let broken = server.send_protobuf("POST", PODS, b"k8s\0\x0a\x09".to_vec()).await;
    assert_eq!(broken.status, 400);
    assert!(
        broken.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("the protobuf request body is malformed: "),
        "{}",
        broken.json()
    );
    let json_labelled_protobuf = server
        .send_protobuf("POST", PODS, pod("p", json!({})).to_string().into_bytes())
        .await;
    assert_eq!(json_labelled_protobuf.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_take_protobuf_delete_options() {
    let server = start().await;
    let created = server.send_json("POST", PODS, &pod("p", json!({}))).await.json();
    let stale = message(&[bytes(2, message(&[bytes(2, "1")]))]);
    let refused = server
        .send_protobuf("DELETE", &format!("{PODS}/p"), envelope("v1", "DeleteOptions", &stale))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.json());
    let current = message(&[bytes(2, message(&[bytes(2, version_of(&created))]))]);
    let deleted = server
        .send_protobuf(
            "DELETE",
            &format!("{PODS}/p"),
            envelope("v1", "DeleteOptions", &current),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.json());
    assert_eq!(server.get(&format!("{PODS}/p")).await.status, 404);

    server.send_json("POST", PODS, &pod("q", json!({}))).await;
    let drained = server
        .send_protobuf("DELETE", &format!("{PODS}/q"), kubectl_body("drain-delete-options.pb"))
        .await;
    assert_eq!(drained.status, 200, "{}", drained.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_deletes_the_pod() {
    let server = start().await;
    for name in ["a", "b", "c"] {
        assert_eq!(server.send_json("POST", PODS, &pod(name, json!({}))).await.status, 201);
    }
    // As `kubectl drain` sends it.
    let eviction = |name: &str| {
        json!({"kind": "Eviction", "apiVersion": "policy/v1",
               "metadata": {"name": name, "namespace": "default", "creationTimestamp": null},
               "deleteOptions": {}})
    };
    let evicted = server
        .send_json("POST", &format!("{PODS}/a/eviction"), &eviction("a"))
        .await;
    assert_eq!(evicted.status, 201, "{}", evicted.json());
    assert_eq!(
        evicted.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    assert_eq!(server.get(&format!("{PODS}/a")).await.status, 404);

    let gone = server
        .send_json("POST", &format!("{PODS}/a/eviction"), &eviction("a"))
        .await;
    assert_eq!((gone.status, gone.json()["reason"].clone()), (404, json!("NotFound")));
    let mismatch = server
        .send_json("POST", &format!("{PODS}/b/eviction"), &eviction("c"))
        .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        mismatch.json()["message"],
        "name in URL does not match name in Eviction object"
    );

    let mut dry_run = eviction("b");
    dry_run["deleteOptions"]["dryRun"] = json!(["All"]);
    let tried = server.send_json("POST", &format!("{PODS}/b/eviction"), &dry_run).await;
    assert_eq!(tried.status, 201, "{}", tried.json());
    assert_eq!(
        server.get(&format!("{PODS}/b")).await.status,
        200,
        "a dry run deletes nothing"
    );

    // The same in protobuf: Eviction { 1 metadata { 1 name }, 2 deleteOptions { 1 gracePeriodSeconds } }.
    let raw = message(&[bytes(1, message(&[bytes(1, "b")])), bytes(2, message(&[int(1, 0)]))]);
    let evicted = server
        .send_protobuf(
            "POST",
            &format!("{PODS}/b/eviction"),
            envelope("policy/v1", "Eviction", &raw),
        )
        .await;
    assert_eq!(evicted.status, 201, "{}", evicted.json());
    assert_eq!(server.get(&format!("{PODS}/b")).await.status, 404);

    let not_served = server.call("GET", &format!("{PODS}/c/eviction"), &[], Vec::new()).await;
    assert_eq!(not_served.status, 405);
    let value: Value = server.get(&format!("{PODS}/c")).await.json();
    assert_eq!(value["metadata"]["name"], "c");
}
