//! Creates, replaces, merge patches, the status and scale subresources, lists with
//! selectors, and deletes.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_replaces_patches_scales_lists_and_deletes() {
    let server = start().await;
    let web = format!("{DEPLOYMENTS}/web");

    let created = server.send_json("POST", DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let created = created.json();
    assert_eq!(created["metadata"]["namespace"], "default", "filled from the URL");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let again = server.send_json("POST", DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["reason"], "AlreadyExists");
    assert_eq!(again.json()["message"], "deployments.apps \"web\" already exists");

    // A replace at the current version bumps the generation; a stale one conflicts.
    let mut update = deployment("web", 2);
    update["metadata"]["resourceVersion"] = version_of(&created).into();
    update["status"] = json!({"replicas": 42});
    let replaced = server.send_json("PUT", &web, &update).await;
    assert_eq!(replaced.status, 200, "{}", replaced.json());
    let replaced = replaced.json();
    assert_eq!(replaced["metadata"]["generation"], 2);
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        replaced["status"],
        json!({}),
        "status is not the main resource's to change"
    );
    let stale = server.send_json("PUT", &web, &update).await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.json()["reason"], "Conflict");
    assert_eq!(
        stale.json()["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    let mut unconditional = deployment("web", 2);
    unconditional["metadata"]["resourceVersion"] = "".into();
    assert_eq!(server.send_json("PUT", &web, &unconditional).await.status, 200);
    let renamed = server.send_json("PUT", &web, &deployment("api", 2)).await;
    assert_eq!(renamed.status, 400);

    // The status subresource changes only the status.
    let mut status = deployment("web", 9);
    status["status"] = json!({"replicas": 2, "readyReplicas": 1});
    let with_status = server.send_json("PUT", &format!("{web}/status"), &status).await.json();
    assert_eq!(with_status["status"]["replicas"], 2);
    assert_eq!(with_status["spec"]["replicas"], 2);

    // Invalid objects are refused with the field named, and nothing is written.
    let invalid = server.send_json("POST", DEPLOYMENTS, &deployment("bad", -1)).await;
    assert_eq!(invalid.status, 422);
    let invalid = invalid.json();
    assert_eq!(invalid["reason"], "Invalid");
    assert_eq!(invalid["details"]["causes"][0]["field"], "spec.replicas");
    assert_eq!(invalid["details"]["causes"][0]["reason"], "FieldValueInvalid");
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .starts_with("Deployment.apps \"bad\" is invalid: spec.replicas: Invalid value: -1: "),
        "{invalid}"
    );
    assert_eq!(server.get(&format!("{DEPLOYMENTS}/bad")).await.status, 404);
    let malformed = server
        .call(
            "POST",
            DEPLOYMENTS,
            &[("content-type", "application/json")],
            b"{\"kind\":".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["message"].as_str().unwrap().contains("not valid JSON"));

    // Merge patches; JSON patches are not supported; invalid results are refused.
    let patched = server
        .merge_patch(
            &web,
            &json!({"metadata": {"labels": {"tier": "front"}}, "spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    let patched = patched.json();
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
    assert_eq!(patched["spec"]["replicas"], 5);
    let json_patch = server
        .call(
            "PATCH",
            &web,
            &[("content-type", "application/json-patch+json")],
            br#"[{"op":"test","path":"/spec/replicas","value":5},{"op":"replace","path":"/spec/replicas","value":1}]"#
                .to_vec(),
        )
        .await;
    assert_eq!(json_patch.status, 200, "{}", json_patch.json());
    assert_eq!(json_patch.json()["spec"]["replicas"], 1);
    let failed_test = server
        .call(
            "PATCH",
            &web,
            &[("content-type", "application/json-patch+json")],
            br#"[{"op":"test","path":"/spec/replicas","value":5},{"op":"replace","path":"/spec/replicas","value":7}]"#
                .to_vec(),
        )
        .await;
    assert_eq!(failed_test.status, 422, "{}", failed_test.json());
    let message = failed_test.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("/spec/replicas"), "{message}");
    let server_side = server
        .call(
            "PATCH",
            &web,
            &[("content-type", "application/apply-patch+yaml")],
            b"spec: {replicas: 2}".to_vec(),
        )
        .await;
    // Server-side apply needs a field manager (the tests in `apply.rs` name one).
    assert_eq!(server_side.status, 422, "{}", server_side.json());
    assert_eq!(server_side.json()["details"]["kind"], "PatchOptions");
    assert_eq!(
        server.merge_patch(&web, &json!({"spec": {"replicas": 5}})).await.status,
        200
    );
    assert_eq!(
        server
            .merge_patch(&web, &json!({"spec": {"replicas": -3}}))
            .await
            .status,
        422
    );
    assert_eq!(server.get(&web).await.json()["spec"]["replicas"], 5);
    let stale_patch = json!({"metadata": {"resourceVersion": version_of(&created)}, "spec": {"replicas": 1}});
    assert_eq!(server.merge_patch(&web, &stale_patch).await.status, 409);

    // Scale.
    let scale = server.get(&format!("{web}/scale")).await.json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["replicas"], 2);
    assert_eq!(scale["metadata"]["uid"], created["metadata"]["uid"]);
    let scaled = server
        .send_json("PUT", &format!("{web}/scale"), &json!({"spec": {"replicas": 7}}))
        .await;
    assert_eq!(scaled.status, 200, "{}", scaled.json());
    assert_eq!(scaled.json()["spec"]["replicas"], 7);
    assert_eq!(server.get(&web).await.json()["spec"]["replicas"], 7);
    let negative = server
        .send_json("PUT", &format!("{web}/scale"), &json!({"spec": {"replicas": -1}}))
        .await;
    assert_eq!(negative.status, 422);
    let scaled_down = server
        .merge_patch(&format!("{web}/scale"), &json!({"spec": {"replicas": 1}}))
        .await;
    assert_eq!(scaled_down.json()["spec"]["replicas"], 1);
    assert_eq!(server.get(&web).await.json()["metadata"]["labels"]["tier"], "front");

    // YAML in and out.
    let yaml = serde_yaml_ng::to_string(&deployment("api", 1)).unwrap();
    let created_from_yaml = server
        .call(
            "POST",
            DEPLOYMENTS,
            &[("content-type", "application/yaml")],
            yaml.into_bytes(),
        )
        .await;
    assert_eq!(created_from_yaml.status, 201);
    let as_yaml = server
        .call(
            "GET",
            &format!("{DEPLOYMENTS}/api"),
            &[("accept", "application/yaml")],
            Vec::new(),
        )
        .await;
    assert_eq!(as_yaml.content_type, "application/yaml");
    let as_yaml: Value = serde_yaml_ng::from_slice(&as_yaml.body).unwrap();
    assert_eq!(as_yaml["metadata"]["name"], "api");

    // Lists with selectors.
    let list = server
        .get(&format!("{DEPLOYMENTS}?labelSelector=app%3Dweb"))
        .await
        .json();
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["apiVersion"], "apps/v1");
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&list), ["web"]);
    assert_eq!(list["items"][0]["kind"], "Deployment");
    let everything = server.get("/apis/apps/v1/deployments").await.json();
    assert_eq!(names(&everything), ["api", "web"]);
    let not_web = server
        .get(&format!("{DEPLOYMENTS}?labelSelector=app!%3Dweb,!tier"))
        .await
        .json();
    assert_eq!(names(&not_web), ["api"]);
    let by_name = server
        .get(&format!("{DEPLOYMENTS}?fieldSelector=metadata.name%3Dapi"))
        .await
        .json();
    assert_eq!(names(&by_name), ["api"]);
    assert_eq!(
        server.get(&format!("{DEPLOYMENTS}?labelSelector=a%3D(")).await.status,
        400
    );
    assert_eq!(
        server
            .get(&format!("{DEPLOYMENTS}?fieldSelector=spec.replicas%3D1"))
            .await
            .status,
        400
    );

    // Namespaces must exist and agree with the URL.
    let nowhere = server
        .send_json(
            "POST",
            "/apis/apps/v1/namespaces/nope/deployments",
            &deployment("web", 1),
        )
        .await;
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.json()["message"], "namespaces \"nope\" not found");
    let mut elsewhere = deployment("other", 1);
    elsewhere["metadata"]["namespace"] = "kube-system".into();
    assert_eq!(server.send_json("POST", DEPLOYMENTS, &elsewhere).await.status, 400);

    // Delete returns the object; then it is gone.
    let deleted = server.delete(&web).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["metadata"]["name"], "web");
    assert_eq!(server.delete(&web).await.status, 404);
    let gone = server.get(&web).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["message"], "deployments.apps \"web\" not found");

    // The rest of the surface.
    let unknown = server.get("/api/v1/widgets").await;
    assert_eq!((unknown.status, unknown.json()["kind"].clone()), (404, json!("Status")));
    assert_eq!(
        server
            .send_json("POST", "/api/v1/pods", &pod("p", json!({})))
            .await
            .status,
        405
    );
    assert_eq!(server.get("/healthz").await.body, b"ok");
    assert_eq!(server.get("/readyz").await.status, 200);
    let version = server.get("/version").await.json();
    assert_eq!(version["gitVersion"], format!("v{}-berth", env!("CARGO_PKG_VERSION")));
    // A body declared too large is refused before it is read. (The head alone is
    // sent: a server that answers early and closes would otherwise reset a client
    // still writing, and the test would race it.)
    let mut socket = TcpStream::connect(server.address).await.unwrap();
    let head = format!(
        "POST {DEPLOYMENTS} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        crate::codec::MAX_BODY_BYTES + 1
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut too_big = Vec::new();
    tokio::time::timeout(TIMEOUT, socket.read_to_end(&mut too_big))
        .await
        .expect("a response in time")
        .unwrap();
    let too_big = String::from_utf8_lossy(&too_big);
    assert!(too_big.starts_with("HTTP/1.1 413 "), "{too_big}");
    assert!(too_big.contains("\"reason\":\"RequestEntityTooLarge\""), "{too_big}");
    assert!(
        too_big.contains("\"message\":\"Request entity too large: limit is 3145728\""),
        "{too_big}"
    );
}

/// `dryRun=All` does everything a write does but store it (kubectl's
/// `--dry-run=server`): the answer is the object as it would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_validate_and_answer_but_store_nothing() {
    let server = start().await;
    let web = format!("{DEPLOYMENTS}/web");
    let planned = server
        .send_json("POST", &format!("{DEPLOYMENTS}?dryRun=All"), &deployment("web", 2))
        .await;
    assert_eq!(planned.status, 201, "{}", planned.json());
    assert!(planned.json()["metadata"]["uid"].is_string());
    assert_eq!(planned.json()["spec"]["replicas"], 2);
    assert_eq!(server.get(&web).await.status, 404, "nothing was stored");
    let invalid = server
        .send_json("POST", &format!("{DEPLOYMENTS}?dryRun=All"), &deployment("web", -1))
        .await;
    assert_eq!(invalid.status, 422, "a dry run validates");

    assert_eq!(
        server
            .send_json("POST", DEPLOYMENTS, &deployment("web", 2))
            .await
            .status,
        201
    );
    let again = server
        .send_json("POST", &format!("{DEPLOYMENTS}?dryRun=All"), &deployment("web", 2))
        .await;
    assert_eq!(again.status, 409, "a dry run sees what is there");
    let patched = server
        .call(
            "PATCH",
            &format!("{web}?dryRun=All"),
            &[("content-type", "application/merge-patch+json")],
            json!({"spec": {"replicas": 7}}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    assert_eq!(patched.json()["spec"]["replicas"], 7);
    assert_eq!(server.get(&web).await.json()["spec"]["replicas"], 2);
    let deleted = server
        .call("DELETE", &format!("{web}?dryRun=All"), &[], Vec::new())
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(server.get(&web).await.status, 200, "still there");
    let bad = server
        .call("DELETE", &format!("{web}?dryRun=Some"), &[], Vec::new())
        .await;
    assert_eq!(bad.status, 422, "as kube-apiserver refuses invalid DeleteOptions");
    assert!(bad.json()["message"].as_str().unwrap().contains("dryRun"));
}
