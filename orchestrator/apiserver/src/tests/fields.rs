//! Every field a client sends is kept, refused naming its path, or (a field the
//! kind does not define) dropped as `fieldValidation` says.

use serde_json::json;

use super::{deployment, pod, start};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_kind_does_not_define_follow_field_validation() {
    let server = start().await;
    let mut unknown = deployment("strict", 1);
    unknown["spec"]["replicaz"] = json!(2);

    let strict = server
        .send_json("POST", &format!("{DEPLOYMENTS}?fieldValidation=Strict"), &unknown)
        .await;
    assert_eq!(strict.status, 400, "{}", strict.json());
    assert_eq!(strict.json()["reason"], "BadRequest");
    let message = strict.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(r#"strict decoding error: unknown field "spec.replicaz""#),
        "{message}"
    );
    assert_eq!(server.get(&format!("{DEPLOYMENTS}/strict")).await.status, 404);

    // Kubernetes' default is Warn: the object is created without the field, and the
    // client hears about it.
    unknown["metadata"]["name"] = json!("warned");
    unknown["spec"]["template"]["spec"]["containers"][0]["colour"] = json!("blue");
    let warned = server.send_json("POST", DEPLOYMENTS, &unknown).await;
    assert_eq!(warned.status, 201, "{}", warned.json());
    assert_eq!(
        warned.warnings,
        [
            r#"299 - "unknown field \"spec.replicaz\"""#,
            r#"299 - "unknown field \"spec.template.spec.containers[0].colour\"""#
        ]
    );
    let stored = server.get(&format!("{DEPLOYMENTS}/warned")).await.json();
    assert_eq!(stored["spec"].get("replicaz"), None);
    assert_eq!(stored["spec"]["replicas"], 1);

    unknown["metadata"]["name"] = json!("ignored");
    let ignored = server
        .send_json("POST", &format!("{DEPLOYMENTS}?fieldValidation=Ignore"), &unknown)
        .await;
    assert_eq!(ignored.status, 201);
    assert!(ignored.warnings.is_empty(), "{:?}", ignored.warnings);

    let bad_mode = server
        .send_json("POST", &format!("{DEPLOYMENTS}?fieldValidation=Lenient"), &unknown)
        .await;
    assert_eq!(bad_mode.status, 400);
    assert!(bad_mode.json()["message"].as_str().unwrap().contains("fieldValidation"));

    // A patch that adds an unknown field is judged the same way.
    let patched = server
        .call(
            "PATCH",
            &format!("{DEPLOYMENTS}/warned?fieldValidation=Strict"),
            &[("content-type", "application/merge-patch+json")],
            json!({"spec": {"paused2": true}}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(patched.status, 400, "{}", patched.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_defined_field_is_kept_or_refused_by_name() {
    let server = start().await;
    let mut kept = pod("kept", json!({"app": "kept"}));
    let container = &mut kept["spec"]["containers"][0];
    container["imagePullPolicy"] = json!("IfNotPresent");
    container["terminationMessagePath"] = json!("/dev/termination-log");
    container["env"] = json!([{"name": "A", "value": "1"}]);
    kept["spec"]["dnsPolicy"] = json!("ClusterFirst");
    kept["spec"]["enableServiceLinks"] = json!(true);
    let created = server.send_json("POST", PODS, &kept).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let stored = server.get(&format!("{PODS}/kept")).await.json();
    assert_eq!(stored["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        stored["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}])
    );
    assert_eq!(stored["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(stored["spec"]["enableServiceLinks"], true);

    let mut probed = pod("probed", json!({"app": "probed"}));
    // Probes, env from Secrets and emptyDir volumes are implemented: not among the
    // refusals; an nfs volume is.
    probed["spec"]["containers"][0]["livenessProbe"] = json!({"exec": {"command": ["true"]}});
    probed["spec"]["containers"][0]["env"] =
        json!([{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    probed["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}},
        {"name": "shared", "nfs": {"server": "nas", "path": "/export"}}]);
    let refused = server.send_json("POST", PODS, &probed).await;
    assert_eq!(refused.status, 422, "{}", refused.json());
    let causes: Vec<String> = refused.json()["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(causes, ["spec.volumes[1].nfs"]);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("does not implement")
    );
    assert_eq!(server.get(&format!("{PODS}/probed")).await.status, 404);

    let mut mistyped = deployment("mistyped", 1);
    mistyped["spec"]["replicas"] = json!("two");
    let refused = server.send_json("POST", DEPLOYMENTS, &mistyped).await;
    assert_eq!(refused.status, 422, "{}", refused.json());
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(r#"spec.replicas: Invalid value: "two": invalid type: string "two", expected i32"#),
        "{message}"
    );
}
