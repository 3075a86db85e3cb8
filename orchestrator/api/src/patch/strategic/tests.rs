//! The patches users send, against the kinds' real schemas.

use k8s_openapi::api::{apps, core};
use serde_json::{Value, json};

use super::strategic_merge;
use crate::patch::error::{PatchError, StrategicMergeFailure};
use crate::patch::schema::PatchSchema;

fn deployment_schema() -> PatchSchema {
    PatchSchema::for_type::<apps::v1::Deployment>()
}

/// A Deployment as stored: two containers with command, args, resources and env, a
/// RollingUpdate strategy, tolerations, volumes and finalizers.
fn web() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "finalizers": ["a.example.com/x", "b.example.com/y"]},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "http",
                            "image": "python:3.11",
                            "command": ["python", "-m", "http.server"],
                            "args": ["8080"],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                            ]
                        },
                        {"name": "sidecar", "image": "envoy:1.30"}
                    ],
                    "tolerations": [
                        {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
                        {"key": "spot", "operator": "Exists"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        }
    })
}

fn patched(patch: Value) -> Value {
    strategic_merge(&web(), &patch, &deployment_schema()).unwrap()
}

fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|element| element["name"].as_str().unwrap())
        .collect()
}

/// `kubectl set image deployment/web http=python:3.12` sends only the container's name
/// and image; the stored container keeps everything else, and the sidecar stays.
#[test]
fn set_image_keeps_the_rest_of_the_container() {
    let result =
        patched(json!({"spec": {"template": {"spec": {"containers": [{"name": "http", "image": "python:3.12"}]}}}}));
    let containers = &pod_spec(&result)["containers"];
    assert_eq!(names(containers), ["http", "sidecar"]);
    let mut expected = web()["spec"]["template"]["spec"]["containers"][0].clone();
    expected["image"] = json!("python:3.12");
    assert_eq!(containers[0], expected);
    assert_eq!(containers[1], json!({"name": "sidecar", "image": "envoy:1.30"}));
    // Nothing else changed.
    let mut rest = result.clone();
    rest["spec"]["template"]["spec"]["containers"] = web()["spec"]["template"]["spec"]["containers"].clone();
    assert_eq!(rest, web());
}

/// `kubectl apply` of an edited manifest: the last applied one had [http, legacy,
/// sidecar]; the new one has [metrics, sidecar, http], with http's image changed and
/// legacy dropped. kubectl sends only what changed, the deletion, and the new order. The
/// live object also has a container injected by someone else, which apply leaves alone.
#[test]
fn apply_orders_by_set_element_order_and_deletes() {
    let mut live = web();
    let containers = live["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap();
    containers.insert(1, json!({"name": "legacy", "image": "old"}));
    containers.push(json!({"name": "injected", "image": "mesh-proxy"}));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "metrics"}, {"name": "sidecar"}, {"name": "http"}],
        "containers": [
            {"name": "metrics", "image": "exporter:2"},
            {"name": "http", "image": "python:3.12"},
            {"name": "legacy", "$patch": "delete"}
        ]
    }}}});
    let result = strategic_merge(&live, &patch, &deployment_schema()).unwrap();
    let containers = &pod_spec(&result)["containers"];
    assert_eq!(names(containers), ["metrics", "sidecar", "http", "injected"]);
    assert_eq!(containers[0], json!({"name": "metrics", "image": "exporter:2"}));
    assert_eq!(containers[1], json!({"name": "sidecar", "image": "envoy:1.30"}));
    assert_eq!(containers[2]["image"], "python:3.12");
    assert_eq!(containers[2]["command"], json!(["python", "-m", "http.server"]));
    assert_eq!(containers[3], json!({"name": "injected", "image": "mesh-proxy"}));
}

/// The same edit without `$setElementOrder` (a hand-written patch): Kubernetes' order
/// puts the new container before the stored ones.
#[test]
fn without_set_element_order_new_elements_come_first() {
    let result =
        patched(json!({"spec": {"template": {"spec": {"containers": [{"name": "metrics", "image": "exporter:2"}]}}}}));
    assert_eq!(names(&pod_spec(&result)["containers"]), ["metrics", "http", "sidecar"]);
}

#[test]
fn set_element_order_must_agree_with_the_patch_list() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "http"}, {"name": "sidecar"}],
        "containers": [{"name": "sidecar", "image": "envoy:1.31"}, {"name": "http", "image": "python:3.12"}]
    }}}});
    let error = strategic_merge(&web(), &patch, &deployment_schema()).unwrap_err();
    let PatchError::StrategicMerge {
        path,
        failure: StrategicMergeFailure::OrderMismatch { .. },
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(path, "/spec/template/spec/containers");
}

/// env merges by name: A stays, B switches from valueFrom to value, C is added.
#[test]
fn env_merges_by_name() {
    let result = patched(json!({"spec": {"template": {"spec": {"containers": [{
        "name": "http",
        "env": [{"name": "B", "value": "2", "valueFrom": null}, {"name": "C", "value": "3"}]
    }]}}}}));
    assert_eq!(
        pod_spec(&result)["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}])
    );
}

/// ports merge by containerPort.
#[test]
fn ports_merge_by_container_port() {
    let result = patched(json!({"spec": {"template": {"spec": {"containers": [{
        "name": "http",
        "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}]
    }]}}}}));
    assert_eq!(
        pod_spec(&result)["containers"][0]["ports"],
        json!([
            {"containerPort": 8080, "protocol": "TCP", "name": "http"},
            {"containerPort": 9090, "name": "metrics"}
        ])
    );
}

#[test]
fn patch_delete_removes_one_container() {
    let result =
        patched(json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}));
    let containers = &pod_spec(&result)["containers"];
    assert_eq!(names(containers), ["http"]);
    assert_eq!(containers[0], web()["spec"]["template"]["spec"]["containers"][0]);
}

#[test]
fn patch_replace_replaces_the_container_list() {
    let result = patched(json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"},
        {"name": "only", "image": "busybox"}
    ]}}}}));
    assert_eq!(
        pod_spec(&result)["containers"],
        json!([{"name": "only", "image": "busybox"}])
    );
}

/// finalizers are a set: `$deleteFromPrimitiveList` takes values out, a plain list adds
/// the new ones without repeating the old.
#[test]
fn finalizers_are_a_set() {
    let result = patched(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}}));
    assert_eq!(result["metadata"]["finalizers"], json!(["b.example.com/y"]));

    let result = patched(json!({"metadata": {"finalizers": ["b.example.com/y", "c.example.com/z"]}}));
    let finalizers = result["metadata"]["finalizers"].as_array().unwrap();
    assert_eq!(
        finalizers,
        &[
            json!("a.example.com/x"),
            json!("b.example.com/y"),
            json!("c.example.com/z")
        ]
    );

    // Both at once, with the order kubectl apply sends: delete x, keep y, add z.
    let result = patched(json!({"metadata": {
        "$setElementOrder/finalizers": ["b.example.com/y", "c.example.com/z"],
        "$deleteFromPrimitiveList/finalizers": ["a.example.com/x"],
        "finalizers": ["c.example.com/z"]
    }}));
    assert_eq!(
        result["metadata"]["finalizers"],
        json!(["b.example.com/y", "c.example.com/z"])
    );
}

/// Switching a Deployment from RollingUpdate to Recreate: `kubectl apply` sends
/// `$retainKeys` for `spec.strategy`, which drops the stale rollingUpdate that a plain
/// merge would keep (and that validation would then reject).
#[test]
fn retain_keys_drops_rolling_update_on_recreate() {
    let plain = patched(json!({"spec": {"strategy": {"type": "Recreate"}}}));
    assert_eq!(
        plain["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": 1, "maxUnavailable": 0})
    );

    let result = patched(json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}));
    assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
}

/// volumes merge by name and take `$retainKeys` per volume: switching a volume's source.
#[test]
fn retain_keys_switches_a_volume_source() {
    let result = patched(json!({"spec": {"template": {"spec": {"volumes": [
        {"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv/data"}},
        {"name": "cache", "emptyDir": {"medium": "Memory"}}
    ]}}}}));
    assert_eq!(
        pod_spec(&result)["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/srv/data"}}, {"name": "cache", "emptyDir": {"medium": "Memory"}}])
    );
}

/// tolerations have no patch strategy: the patch's list replaces the stored one, as do
/// a container's args.
#[test]
fn lists_without_a_strategy_are_replaced() {
    let result = patched(json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "containers": [{"name": "http", "args": ["9090"]}]
    }}}}));
    assert_eq!(
        pod_spec(&result)["tolerations"],
        json!([{"key": "gpu", "operator": "Exists"}])
    );
    assert_eq!(pod_spec(&result)["containers"][0]["args"], json!(["9090"]));
    assert_eq!(
        pod_spec(&result)["containers"][0]["command"],
        json!(["python", "-m", "http.server"])
    );
}

#[test]
fn maps_merge_and_null_deletes() {
    let result = patched(json!({
        "metadata": {"labels": {"team": "blue"}, "annotations": {"note": "x"}},
        "spec": {"replicas": 5, "template": {"metadata": {"labels": {"app": null, "version": "2"}}}}
    }));
    assert_eq!(result["metadata"]["labels"], json!({"team": "blue"}));
    assert_eq!(result["spec"]["replicas"], 5);
    assert_eq!(
        result["spec"]["template"]["metadata"]["labels"],
        json!({"version": "2"})
    );
}

#[test]
fn a_container_without_a_name_is_an_error() {
    let error = strategic_merge(
        &web(),
        &json!({"spec": {"template": {"spec": {"containers": [{"image": "python:3.12"}]}}}}),
        &deployment_schema(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"strategic merge patch at "/spec/template/spec/containers": map: {"image":"python:3.12"} does not contain declared merge key: name"#
    );
}

#[test]
fn the_patch_must_be_an_object() {
    let error = strategic_merge(&web(), &json!([{"op": "add"}]), &deployment_schema()).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"strategic merge patch at "": invalid JSON document"#
    );
}

/// Without a schema (an object of no known kind), maps merge and lists are replaced.
#[test]
fn without_a_schema_lists_are_replaced() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "http", "image": "python:3.12"}]}}}});
    let result = strategic_merge(&web(), &patch, &PatchSchema::unknown()).unwrap();
    assert_eq!(
        pod_spec(&result)["containers"],
        json!([{"name": "http", "image": "python:3.12"}])
    );
    assert_eq!(result["spec"]["replicas"], 2);
}

/// The kubelet's status patches: conditions merge by type, podIPs by ip.
#[test]
fn pod_status_conditions_merge_by_type() {
    let pod = json!({
        "metadata": {"name": "web-1"},
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "podIPs": [{"ip": "10.0.0.5"}]
        }
    });
    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}, {"type": "ContainersReady"}],
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
        "podIPs": [{"ip": "fd00::5"}]
    }});
    let result = strategic_merge(&pod, &patch, &PatchSchema::for_type::<core::v1::Pod>()).unwrap();
    assert_eq!(
        result["status"]["conditions"],
        json!([
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True"},
            {"type": "ContainersReady", "status": "True"}
        ])
    );
    assert_eq!(
        result["status"]["podIPs"],
        json!([{"ip": "fd00::5"}, {"ip": "10.0.0.5"}])
    );
}

#[test]
fn owner_references_merge_by_uid_and_service_ports_by_port() {
    let service = json!({
        "metadata": {"ownerReferences": [{"uid": "u1", "kind": "A", "name": "a"}]},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}
    });
    let patch = json!({
        "metadata": {"ownerReferences": [{"uid": "u1", "controller": true}, {"uid": "u2", "kind": "B", "name": "b"}]},
        "spec": {"ports": [{"port": 443, "targetPort": 9443}]}
    });
    let result = strategic_merge(&service, &patch, &PatchSchema::for_type::<core::v1::Service>()).unwrap();
    assert_eq!(
        result["metadata"]["ownerReferences"],
        json!([{"uid": "u1", "kind": "A", "name": "a", "controller": true}, {"uid": "u2", "kind": "B", "name": "b"}])
    );
    assert_eq!(
        result["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}])
    );
}

/// Endpoints' subsets have no strategy, so a patch replaces them whole.
#[test]
fn endpoints_subsets_are_replaced() {
    let endpoints = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]});
    let patch = json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]});
    let result = strategic_merge(&endpoints, &patch, &PatchSchema::for_type::<core::v1::Endpoints>()).unwrap();
    assert_eq!(result, patch);
}

#[test]
fn a_failed_patch_leaves_the_original_untouched() {
    let original = web();
    let patch =
        json!({"spec": {"replicas": 9, "template": {"spec": {"containers": [{"$patch": "sideways", "name": "x"}]}}}});
    let error = strategic_merge(&original, &patch, &deployment_schema()).unwrap_err();
    assert!(error.to_string().contains("unknown patch type: sideways"), "{error}");
    assert_eq!(original, web());
}
