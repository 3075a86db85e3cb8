//! Server-side apply and managed fields as kubectl sees them: `kubectl apply
//! --server-side` sends `PATCH` with `application/apply-patch+yaml` and a
//! `fieldManager`; every other write records its manager too.

use serde_json::{Value, json};

use super::{DEPLOYMENTS, Reply, Server, start, version_of};

const WEB: &str = "/apis/apps/v1/namespaces/default/deployments/web";

/// A configuration as YAML, the way a manifest file is written.
fn configuration(replicas: i64, labels: &[(&str, &str)], env: &[&str]) -> String {
    let labels: String = match labels {
        [] => String::new(),
        labels => std::iter::once("\n  labels:".to_string())
            .chain(labels.iter().map(|(k, v)| format!("\n    {k}: {v}")))
            .collect(),
    };
    let env: String = match env {
        [] => String::new(),
        env => std::iter::once("\n        env:".to_string())
            .chain(
                env.iter()
                    .map(|name| format!("\n        - name: {name}\n          value: \"1\"")),
            )
            .collect(),
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web{labels}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: c
        command: [sleep, \"1000\"]{env}
"
    )
}

impl Server {
    async fn apply(&self, query: &str, body: &str) -> Reply {
        self.call(
            "PATCH",
            &format!("{WEB}?{query}"),
            &[("content-type", "application/apply-patch+yaml")],
            body.as_bytes().to_vec(),
        )
        .await
    }
}

/// The `(manager, operation)` of each managedFields entry, in order.
fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().into(),
                        e["operation"].as_str().unwrap().into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry of {manager}: {object}"))
}

fn owns_replicas(object: &Value, manager: &str) -> bool {
    entry(object, manager)["fieldsV1"]["f:spec"].get("f:replicas").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_and_removes_what_is_no_longer_applied() {
    let server = start().await;
    let created = server
        .apply(
            "fieldManager=kubectl",
            &configuration(2, &[("app", "web"), ("tier", "front")], &["A", "B"]),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    let created = created.json();
    assert_eq!(created["spec"]["replicas"], 2);
    assert!(created["metadata"]["uid"].is_string());
    assert_eq!(managers(&created), [("kubectl".into(), "Apply".into())]);
    let kubectl = entry(&created, "kubectl");
    assert_eq!(kubectl["apiVersion"], "apps/v1");
    assert_eq!(kubectl["fieldsType"], "FieldsV1");
    assert_eq!(
        kubectl["fieldsV1"]["f:metadata"],
        json!({"f:labels": {"f:app": {}, "f:tier": {}}})
    );
    assert_eq!(
        kubectl["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:env"],
        json!({"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}},
               "k:{\"name\":\"B\"}": {".": {}, "f:name": {}, "f:value": {}}})
    );
    assert_eq!(
        server.get(WEB).await.json()["metadata"]["managedFields"],
        created["metadata"]["managedFields"]
    );

    // Applying the same configuration again changes nothing, not even the revision.
    let again = server
        .apply(
            "fieldManager=kubectl",
            &configuration(2, &[("app", "web"), ("tier", "front")], &["A", "B"]),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.json());
    assert_eq!(version_of(&again.json()), version_of(&created));

    // A label and an env var left out of the configuration go.
    let trimmed = server
        .apply("fieldManager=kubectl", &configuration(2, &[("app", "web")], &["A"]))
        .await;
    assert_eq!(trimmed.status, 200, "{}", trimmed.json());
    let stored = server.get(WEB).await.json();
    assert_eq!(stored["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_managers_replicas_conflict_unless_forced() {
    let server = start().await;
    let config = configuration(2, &[("app", "web")], &[]);
    assert_eq!(server.apply("fieldManager=kubectl", &config).await.status, 201);

    let other = configuration(5, &[("app", "web")], &[]);
    let refused = server.apply("fieldManager=autoscaler", &other).await;
    assert_eq!(refused.status, 409, "{}", refused.json());
    let status = refused.json();
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"type": "FieldManagerConflict", "message": "conflict with \"kubectl\"", "field": ".spec.replicas"}])
    );
    assert_eq!(server.get(WEB).await.json()["spec"]["replicas"], 2);

    let forced = server.apply("fieldManager=autoscaler&force=true", &other).await;
    assert_eq!(forced.status, 200, "{}", forced.json());
    let forced = forced.json();
    assert_eq!(forced["spec"]["replicas"], 5);
    assert!(owns_replicas(&forced, "autoscaler"));
    assert!(!owns_replicas(&forced, "kubectl"));
    // Both applied the same selector and template: both own those.
    assert!(
        entry(&forced, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:selector")
            .is_some()
    );

    // Now kubectl's old replicas conflict with the autoscaler.
    let back = server.apply("fieldManager=kubectl", &config).await;
    assert_eq!(back.status, 409);
    assert_eq!(
        back.json()["message"],
        r#"Apply failed with 1 conflict: conflict with "autoscaler": .spec.replicas"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_writes_record_update_entries() {
    let server = start().await;
    assert_eq!(
        server
            .apply("fieldManager=kubectl", &configuration(2, &[("app", "web")], &[]))
            .await
            .status,
        201
    );

    // `kubectl edit` PUTs the object back with its own manager.
    let mut edited = server.get(WEB).await.json();
    edited["spec"]["replicas"] = json!(4);
    let put = server
        .call(
            "PUT",
            &format!("{WEB}?fieldManager=kubectl-edit"),
            &[("content-type", "application/json")],
            edited.to_string().into_bytes(),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.json());
    let put = put.json();
    assert_eq!(
        managers(&put),
        [
            ("kubectl".into(), "Apply".into()),
            ("kubectl-edit".into(), "Update".into())
        ]
    );
    let edit = entry(&put, "kubectl-edit");
    assert_eq!(edit["apiVersion"], "apps/v1");
    assert_eq!(edit["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(edit["time"].is_string());
    assert!(!owns_replicas(&put, "kubectl"));

    let conflict = server
        .apply("fieldManager=kubectl", &configuration(2, &[("app", "web")], &[]))
        .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.json()["message"],
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#
    );

    // Without a fieldManager, the manager is the User-Agent's program.
    let labelled = server
        .call(
            "PATCH",
            WEB,
            &[
                ("content-type", "application/merge-patch+json"),
                ("user-agent", "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9"),
            ],
            br#"{"metadata": {"annotations": {"note": "x"}}}"#.to_vec(),
        )
        .await;
    assert_eq!(labelled.status, 200, "{}", labelled.json());
    let labelled = labelled.json();
    assert_eq!(entry(&labelled, "kubectl")["operation"], "Apply");
    let by_agent = labelled["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl" && e["operation"] == "Update")
        .unwrap_or_else(|| panic!("{labelled}"));
    assert_eq!(
        by_agent["fieldsV1"],
        json!({"f:metadata": {"f:annotations": {".": {}, "f:note": {}}}})
    );

    // A client's managedFields reset to [{}] clears them.
    let cleared = server
        .merge_patch(WEB, &json!({"metadata": {"managedFields": [{}]}}))
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.json());
    assert_eq!(cleared.json()["metadata"].get("managedFields"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_record_their_creator_and_apply_checks_its_request() {
    let server = start().await;
    let mut web = super::deployment("web", 1);
    // Whatever managedFields a client invents for an object it creates are its own
    // business, but they must be well formed to be kept.
    web["metadata"]["managedFields"] = json!([{"manager": "forged", "operation": "Sideways"}]);
    let created = server
        .call(
            "POST",
            &format!("{DEPLOYMENTS}?fieldManager=kubectl-create"),
            &[("content-type", "application/json")],
            web.to_string().into_bytes(),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert_eq!(managers(&created.json()), [("kubectl-create".into(), "Update".into())]);

    let no_manager = server.apply("", &configuration(1, &[], &[])).await;
    assert_eq!(no_manager.status, 422);
    assert_eq!(
        no_manager.json()["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    let forced_merge = server
        .call(
            "PATCH",
            &format!("{WEB}?force=true"),
            &[("content-type", "application/merge-patch+json")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(forced_merge.status, 422);
    let wrong_version = server
        .apply(
            "fieldManager=m",
            &configuration(1, &[], &[]).replace("apps/v1", "apps/v1beta2"),
        )
        .await;
    assert_eq!(wrong_version.status, 400);
    assert_eq!(
        wrong_version.json()["message"],
        "Incorrect version specified in apply patch. Specified patch version: apps/v1beta2, expected: apps/v1"
    );
    let with_managers = configuration(1, &[], &[]).replace("  name: web\n", "  name: web\n  managedFields: []\n");
    let refused = server.apply("fieldManager=m", &with_managers).await;
    assert_eq!(refused.status, 400, "{}", refused.json());
    assert_eq!(refused.json()["message"], "metadata.managedFields must be nil");
    let not_yaml = server.apply("fieldManager=m", "a: [").await;
    assert_eq!(not_yaml.status, 400);
    assert!(
        not_yaml.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("error decoding YAML"),
        "{}",
        not_yaml.json()
    );
    // The first apply over fields nobody recorded: they belong to before-first-apply
    // only when the object has no managers at all; here kubectl-create owns them.
    let taken = server
        .apply("fieldManager=kubectl", &configuration(3, &[("app", "web")], &[]))
        .await;
    assert_eq!(taken.status, 409, "{}", taken.json());
    assert_eq!(
        taken.json()["message"],
        r#"Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: .spec.replicas"#
    );
}

/// `kubectl diff --server-side` and `kubectl apply --server-side --dry-run=server`
/// send `dryRun=All`: the answer is the object as it would be; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_store_nothing() {
    let server = start().await;
    let config = configuration(2, &[("app", "web")], &[]);
    let would_create = server.apply("fieldManager=kubectl&dryRun=All", &config).await;
    assert_eq!(would_create.status, 201, "{}", would_create.json());
    assert_eq!(would_create.json()["spec"]["replicas"], 2);
    assert_eq!(managers(&would_create.json()), [("kubectl".into(), "Apply".into())]);
    assert_eq!(server.get(WEB).await.status, 404);

    let created = server.apply("fieldManager=kubectl", &config).await.json();
    let would_scale = server
        .apply(
            "fieldManager=kubectl&dryRun=All",
            &configuration(7, &[("app", "web")], &[]),
        )
        .await;
    assert_eq!(would_scale.status, 200, "{}", would_scale.json());
    assert_eq!(would_scale.json()["spec"]["replicas"], 7);
    let stored = server.get(WEB).await.json();
    assert_eq!(stored["spec"]["replicas"], 2);
    assert_eq!(version_of(&stored), version_of(&created));

    let would_patch = server
        .call(
            "PATCH",
            &format!("{WEB}?dryRun=All"),
            &[("content-type", "application/merge-patch+json")],
            br#"{"spec": {"replicas": 9}}"#.to_vec(),
        )
        .await;
    assert_eq!(would_patch.json()["spec"]["replicas"], 9);
    let would_delete = server.delete(&format!("{WEB}?dryRun=All")).await;
    assert_eq!(would_delete.status, 200);
    let stored = server.get(WEB).await.json();
    assert_eq!(stored["spec"]["replicas"], 2);
    assert_eq!(version_of(&stored), version_of(&created));

    let bogus = server.apply("fieldManager=kubectl&dryRun=Some", &config).await;
    assert_eq!(bogus.status, 422);
    assert_eq!(
        bogus.json()["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Some"]: supported values: "All""#
    );
}
