//! Secrets and RuntimeClasses through the API: stringData written into data and
//! never served back, immutable secrets, the built-in RuntimeClasses, and the
//! RuntimeClass admission of pods.

use serde_json::json;

use super::*;

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const CLASSES: &str = "/apis/node.k8s.io/v1/runtimeclasses";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_take_string_data_and_immutable_ones_keep_their_data() {
    let server = start().await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "immutable": true, "stringData": {"password": "hunter2"}});
    let created = server.send_json("POST", SECRETS, &secret).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let stored = server.get(&format!("{SECRETS}/db")).await.json();
    assert_eq!(stored["type"], "Opaque");
    assert_eq!(stored["data"], json!({"password": "aHVudGVyMg=="}));
    assert!(stored.get("stringData").is_none(), "{stored}");

    let changed = server
        .merge_patch(&format!("{SECRETS}/db"), &json!({"stringData": {"password": "other"}}))
        .await;
    assert_eq!(changed.status, 422, "{}", changed.json());
    assert_eq!(
        changed.json()["message"],
        "Secret \"db\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let relabelled = server
        .merge_patch(
            &format!("{SECRETS}/db"),
            &json!({"metadata": {"labels": {"tier": "db"}}}),
        )
        .await;
    assert_eq!(relabelled.status, 200, "metadata stays writable: {}", relabelled.json());

    let untyped = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson", "data": {}});
    let refused = server.send_json("POST", SECRETS, &untyped).await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.json()["details"]["causes"][0],
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "data[.dockerconfigjson]"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_name_runtime_classes_from_the_store() {
    let server = start().await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let names = loop {
        let list = server.get(CLASSES).await.json();
        let names: Vec<(String, String)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["metadata"]["name"].as_str().unwrap().into(),
                    c["handler"].as_str().unwrap().into(),
                )
            })
            .collect();
        if names.len() == 2 || tokio::time::Instant::now() > deadline {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(names, [pair("process", "process"), pair("runc", "runc")]);

    let pod = |class: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("on-{class}")},
            "spec": {"runtimeClassName": class, "containers": [{"name": "a", "image": "busybox"}]}})
    };
    let pods = "/api/v1/namespaces/default/pods";
    let refused = server.send_json("POST", pods, &pod("fast")).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert_eq!(
        refused.json()["message"],
        "pods \"on-fast\" is forbidden: pod rejected: RuntimeClass \"fast\" not found"
    );
    let fast = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "fast"}, "handler": "runc"});
    assert_eq!(server.send_json("POST", CLASSES, &fast).await.status, 201);
    let admitted = server.send_json("POST", pods, &pod("fast")).await;
    assert_eq!(admitted.status, 201, "{}", admitted.json());
    let rehandled = server
        .merge_patch(&format!("{CLASSES}/fast"), &json!({"handler": "process"}))
        .await;
    assert_eq!(rehandled.status, 422, "{}", rehandled.json());
}
