//! Patches as kubectl sends them: strategic merge patches keep what the patch does
//! not name (`kubectl set image`, `kubectl apply`), JSON patches apply operation by
//! operation.

use serde_json::json;

use super::{deployment, start};

const WEB: &str = "/apis/apps/v1/namespaces/default/deployments/web";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_keeps_the_rest_of_the_container() {
    let server = start().await;
    let mut web = deployment("web", 2);
    web["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "c", "command": ["python3"], "args": ["-m", "http.server"],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "resources": {"limits": {"memory": "64Mi"}}},
        {"name": "sidecar", "command": ["sleep", "1000"]}
    ]);
    let created = server
        .send_json("POST", "/apis/apps/v1/namespaces/default/deployments", &web)
        .await;
    assert_eq!(created.status, 201, "{}", created.json());

    // What `kubectl set image deployment/web c=python:3.12` sends.
    let set_image = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "python:3.12"}]}}}});
    let patched = server
        .call(
            "PATCH",
            WEB,
            &[("content-type", "application/strategic-merge-patch+json")],
            set_image.to_string().into_bytes(),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    let containers = &server.get(WEB).await.json()["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 2, "{containers}");
    assert_eq!(containers[0]["image"], "python:3.12");
    assert_eq!(containers[0]["command"], json!(["python3"]));
    assert_eq!(containers[0]["args"], json!(["-m", "http.server"]));
    assert_eq!(containers[0]["resources"]["limits"]["memory"], "64Mi");
    assert_eq!(containers[1]["name"], "sidecar");

    // env merges by name; `$patch: delete` removes one container.
    let edit = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "env": [{"name": "B", "value": "3"}]},
        {"name": "sidecar", "$patch": "delete"}
    ]}}}});
    let patched = server
        .call(
            "PATCH",
            WEB,
            &[("content-type", "application/strategic-merge-patch+json")],
            edit.to_string().into_bytes(),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    let containers = &patched.json()["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 1, "{containers}");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}])
    );

    // A merge patch, by contrast, replaces the list.
    let replaced = server
        .merge_patch(
            WEB,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.json());
    let containers = &replaced.json()["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0].get("command"), None, "{containers}");

    let malformed = server
        .call(
            "PATCH",
            WEB,
            &[("content-type", "application/strategic-merge-patch+json")],
            b"[1, 2]".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, 400);
}
