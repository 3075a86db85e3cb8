//! Discovery as kubectl reads it: the group versions, and each resource with its
//! names, scope, verbs and subresources.

use serde_json::{Value, json};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_every_kind_with_its_names() {
    let server = start().await;
    // kubectl and the Python client ask for `/version/`; the Python client wants
    // every field of Kubernetes' version.Info.
    for path in ["/version", "/version/"] {
        let version = server.get(path).await;
        assert_eq!(version.status, 200, "{path}");
        let version = version.json();
        for field in crate::discovery::VERSION_INFO_FIELDS {
            assert!(version[field].is_string(), "{path}: no {field} in {version}");
        }
        assert_eq!(version["compiler"], "rustc", "{path}");
    }
    assert_eq!(server.get("/api").await.json()["versions"], json!(["v1"]));
    let groups = server.get("/apis").await.json();
    assert_eq!(groups["kind"], "APIGroupList");
    assert_eq!(
        groups["groups"],
        json!([{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
               {"name": "events.k8s.io", "versions": [{"groupVersion": "events.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "events.k8s.io/v1", "version": "v1"}},
               {"name": "node.k8s.io", "versions": [{"groupVersion": "node.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "node.k8s.io/v1", "version": "v1"}},
               {"name": "discovery.k8s.io", "versions": [{"groupVersion": "discovery.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}},
               {"name": "policy", "versions": [{"groupVersion": "policy/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "policy/v1", "version": "v1"}},
               {"name": "autoscaling", "versions": [{"groupVersion": "autoscaling/v2", "version": "v2"},
                                                    {"groupVersion": "autoscaling/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "autoscaling/v2", "version": "v2"}},
               {"name": "storage.k8s.io", "versions": [{"groupVersion": "storage.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "storage.k8s.io/v1", "version": "v1"}},
               {"name": "rbac.authorization.k8s.io",
                "versions": [{"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}},
               {"name": "networking.k8s.io", "versions": [{"groupVersion": "networking.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "networking.k8s.io/v1", "version": "v1"}},
               {"name": "coordination.k8s.io", "versions": [{"groupVersion": "coordination.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "coordination.k8s.io/v1", "version": "v1"}},
               {"name": "scheduling.k8s.io", "versions": [{"groupVersion": "scheduling.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "scheduling.k8s.io/v1", "version": "v1"}},
               {"name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
                "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}},
               {"name": "authorization.k8s.io", "versions": [{"groupVersion": "authorization.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}},
               {"name": "authentication.k8s.io", "versions": [{"groupVersion": "authentication.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "authentication.k8s.io/v1", "version": "v1"}}])
    );
    // The reviews are created only (`kubectl auth can-i` and `whoami` post them).
    let reviews = server.get("/apis/authorization.k8s.io/v1").await.json();
    let names: Vec<(&str, &Value, &Value)> = reviews["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), &r["namespaced"], &r["verbs"]))
        .collect();
    let create = json!(["create"]);
    assert_eq!(
        names,
        [
            ("selfsubjectaccessreviews", &json!(false), &create),
            ("subjectaccessreviews", &json!(false), &create),
            ("localsubjectaccessreviews", &json!(true), &create),
            ("selfsubjectrulesreviews", &json!(false), &create)
        ]
    );
    let whoami = server.get("/apis/authentication.k8s.io/v1/").await.json();
    assert_eq!(whoami["resources"][0]["kind"], "SelfSubjectReview");
    let storage = server.get("/apis/storage.k8s.io/v1").await.json();
    assert_eq!(storage["resources"][0]["name"], "storageclasses");
    assert_eq!(storage["resources"][0]["shortNames"], json!(["sc"]));

    let core = server.get("/api/v1").await.json();
    assert_eq!(core["kind"], "APIResourceList");
    assert_eq!(core["groupVersion"], "v1");
    let resource = |list: &Value, name: &str| {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };
    assert_eq!(
        resource(&core, "pods"),
        json!({"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
               "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
               "shortNames": ["po"], "categories": ["all"]})
    );
    assert_eq!(
        resource(&core, "pods/status"),
        json!({"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod",
               "verbs": ["get", "patch", "update"]})
    );
    assert_eq!(resource(&core, "pods/log")["verbs"], json!(["get"]));
    let namespaces = resource(&core, "namespaces");
    assert_eq!(
        (&namespaces["namespaced"], &namespaces["shortNames"]),
        (&json!(false), &json!(["ns"]))
    );
    assert_eq!(namespaces.get("categories"), None, "namespaces are in no category");
    assert_eq!(resource(&core, "nodes")["shortNames"], json!(["no"]));

    let apps = server.get("/apis/apps/v1").await.json();
    assert_eq!(apps["groupVersion"], "apps/v1");
    assert_eq!(resource(&apps, "deployments")["shortNames"], json!(["deploy"]));
    assert_eq!(resource(&apps, "replicasets")["categories"], json!(["all"]));
    assert_eq!(resource(&apps, "deployments/scale")["kind"], "Scale");
    assert_eq!(resource(&apps, "replicasets/scale")["singularName"], "");
    assert_eq!(server.get("/apis/apps/v2").await.status, 404);
    let metrics = server.get("/apis/metrics.k8s.io/v1beta1").await.json();
    assert_eq!(resource(&metrics, "pods")["kind"], "PodMetrics");
    assert_eq!(resource(&metrics, "nodes")["verbs"], json!(["get", "list"]));
    // No agent reports yet: an empty list, and NotFound for one node.
    let nodes = server.get("/apis/metrics.k8s.io/v1beta1/nodes").await.json();
    assert_eq!(
        (&nodes["kind"], &nodes["items"]),
        (&json!("NodeMetricsList"), &json!([]))
    );
    assert_eq!(server.get("/apis/metrics.k8s.io/v1beta1/nodes/n9").await.status, 404);
}
