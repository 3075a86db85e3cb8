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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_namespaces_labels_new_namespaces_unless_they_say_otherwise() {
    let server = start_with(Settings {
        isolate_namespaces: true,
        ..Settings::default()
    })
    .await;
    assert_eq!(label(&server, "default").await, "namespace");
    let create = |name: &str, labels: serde_json::Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    let team = server
        .send_json("POST", "/api/v1/namespaces", &create("team-a", json!({"tier": "x"})))
        .await;
    assert_eq!(team.status, 201);
    assert_eq!(
        team.json()["metadata"]["labels"],
        json!({"tier": "x", "berth.io/isolation": "namespace"})
    );
    let open = server
        .send_json(
            "POST",
            "/api/v1/namespaces",
            &create("shared", json!({"berth.io/isolation": "none"})),
        )
        .await;
    assert_eq!(open.status, 201);
    assert_eq!(label(&server, "shared").await, "none");
    // The label may be removed later; nothing puts it back.
    let mut updated = team.json();
    updated["metadata"]["labels"] = json!({"tier": "x"});
    let replaced = server.send_json("PUT", "/api/v1/namespaces/team-a", &updated).await;
    assert_eq!(replaced.status, 200, "{}", replaced.json());
    assert_eq!(label(&server, "team-a").await, serde_json::Value::Null);

    // Without the setting, namespaces are left as sent.
    let plain = start().await;
    let created = plain
        .send_json("POST", "/api/v1/namespaces", &create("team-b", json!({})))
        .await
        .json();
    assert_eq!(
        created["metadata"]["labels"]["berth.io/isolation"],
        serde_json::Value::Null
    );
}

async fn label(server: &Server, namespace: &str) -> serde_json::Value {
    let found = server.get(&format!("/api/v1/namespaces/{namespace}")).await.json();
    found["metadata"]["labels"]["berth.io/isolation"].clone()
}
