//! Namespaces: creates in them, generated names, and deletion with their contents.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_take_their_contents_along() {
    let server = start().await;

    let namespace = server
        .send_json(
            "POST",
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}),
        )
        .await;
    assert_eq!(namespace.status, 201);
    assert_eq!(namespace.json()["status"]["phase"], "Active");
    let in_dev = server
        .send_json("POST", "/api/v1/namespaces/dev/pods", &pod("p", json!({})))
        .await;
    assert_eq!(in_dev.status, 201);
    assert_eq!(
        in_dev.json()["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"}),
        "a new pod is Pending, its QoS class set"
    );
    let generated = server
        .send_json(
            "POST",
            "/apis/apps/v1/namespaces/dev/deployments",
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "web-"},
                    "spec": deployment("x", 1)["spec"]}),
        )
        .await
        .json();
    let generated_name = generated["metadata"]["name"].as_str().unwrap();
    assert!(
        generated_name.starts_with("web-") && generated_name.len() == 9,
        "{generated_name}"
    );

    let deleted = server.delete("/api/v1/namespaces/dev").await;
    assert_eq!(deleted.status, 200, "{}", deleted.json());
    assert_eq!(server.get("/api/v1/namespaces/dev").await.status, 404);
    assert_eq!(server.get("/api/v1/namespaces/dev/pods/p").await.status, 404);
    let remaining = server.get("/apis/apps/v1/namespaces/dev/deployments").await.json();
    assert_eq!(remaining["items"], json!([]));
    let default = server.delete("/api/v1/namespaces/default").await;
    assert_eq!(default.status, 403);
    assert_eq!(default.json()["reason"], "Forbidden");
}
