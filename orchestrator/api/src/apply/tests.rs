//! The rules of field ownership, through `apply` and `update` as the API server calls
//! them: what a manager owns after each write, what an apply removes, and when it is
//! refused.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use super::*;
use crate::meta::Time;
use crate::patch::PatchSchema;

fn schema() -> PatchSchema {
    PatchSchema::for_type::<Deployment>()
}

fn at(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
}

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        api_version: "apps/v1",
        subresource: "",
    }
}

/// A Deployment as a configuration: `replicas`, labels, and containers by name with
/// an image each.
fn config(replicas: i64, labels: Value, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, image)| json!({"name": name, "image": image}))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}
    })
}

fn apply_as(live: Option<&Value>, manager: &str, config: &Value, force: bool) -> Result<Value, ApplyError> {
    apply(live, config, writer(manager), force, &schema(), &at(100)).map(|applied| applied.object)
}

/// The fields `manager` (by `operation`) owns, as paths.
fn owned_by(object: &Value, manager: &str, operation: Operation) -> Vec<String> {
    let managers = ManagedFields::of_object(object).unwrap();
    managers
        .managers
        .iter()
        .find(|(id, _)| id.manager == manager && id.operation == operation)
        .map(|(_, managed)| managed.fields.paths().iter().map(Path::to_string).collect())
        .unwrap_or_default()
}

fn entry_names(object: &Value) -> Vec<(String, String)> {
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

#[test]
fn an_apply_creates_and_owns_what_it_applied() {
    let created = apply_as(
        None,
        "kubectl",
        &config(2, json!({"app": "web"}), &[("c", "nginx")]),
        false,
    )
    .unwrap();
    assert_eq!(created["spec"]["replicas"], 2);
    assert_eq!(created["spec"]["template"]["spec"]["containers"][0]["image"], "nginx");
    let entries = &created["metadata"]["managedFields"];
    assert_eq!(
        entries,
        &json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
            "time": "1970-01-01T00:01:40Z", "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}}}
            }
        }])
    );
}

#[test]
fn a_field_no_longer_applied_is_removed() {
    let first = config(
        2,
        json!({"app": "web", "tier": "front"}),
        &[("c", "nginx"), ("sidecar", "envoy")],
    );
    let live = apply_as(None, "kubectl", &first, false).unwrap();
    let second = config(2, json!({"app": "web"}), &[("c", "nginx")]);
    let after = apply_as(Some(&live), "kubectl", &second, false).unwrap();
    assert_eq!(after["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c", "image": "nginx"}])
    );
    assert!(!owned_by(&after, "kubectl", Operation::Apply).contains(&".metadata.labels.tier".to_string()));
}

#[test]
fn a_field_another_manager_also_owns_stays() {
    let live = apply_as(
        None,
        "a",
        &config(2, json!({"app": "web", "tier": "front"}), &[("c", "x")]),
        false,
    )
    .unwrap();
    // b applies the same tier: both own it.
    let b_config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": "web", "labels": {"tier": "front"}}});
    let live = apply_as(Some(&live), "b", &b_config, false).unwrap();
    assert_eq!(owned_by(&live, "b", Operation::Apply), [".metadata.labels.tier"]);
    // a stops applying it: b still owns it, so it stays.
    let live = apply_as(
        Some(&live),
        "a",
        &config(2, json!({"app": "web"}), &[("c", "x")]),
        false,
    )
    .unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
}

#[test]
fn changing_another_managers_field_conflicts() {
    let live = apply_as(None, "kubectl", &config(2, json!({}), &[("c", "x")]), false).unwrap();
    let error = apply_as(Some(&live), "deployer", &config(5, json!({}), &[("c", "x")]), false).unwrap_err();
    let ApplyError::Conflicts(conflicts) = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        conflicts.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#
    );
    let conflict = conflicts.iter().next().unwrap();
    assert_eq!(conflict.path.to_string(), ".spec.replicas");
    assert_eq!(conflict.cause_message(), r#"conflict with "kubectl""#);
    // The same values are no conflict: both managers own them.
    let shared = apply_as(Some(&live), "deployer", &config(2, json!({}), &[("c", "x")]), false).unwrap();
    assert!(owned_by(&shared, "deployer", Operation::Apply).contains(&".spec.replicas".to_string()));
    assert!(owned_by(&shared, "kubectl", Operation::Apply).contains(&".spec.replicas".to_string()));
}

#[test]
fn force_takes_the_fields() {
    let live = apply_as(None, "kubectl", &config(2, json!({}), &[("c", "x")]), false).unwrap();
    let forced = apply_as(Some(&live), "deployer", &config(5, json!({}), &[("c", "x")]), true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    assert!(owned_by(&forced, "deployer", Operation::Apply).contains(&".spec.replicas".to_string()));
    assert!(!owned_by(&forced, "kubectl", Operation::Apply).contains(&".spec.replicas".to_string()));
    // kubectl still owns the container it applied.
    assert!(
        owned_by(&forced, "kubectl", Operation::Apply)
            .contains(&r#".spec.template.spec.containers[name="c"].image"#.to_string())
    );
}

#[test]
fn updates_take_what_they_change() {
    let live = apply_as(None, "kubectl", &config(2, json!({}), &[("c", "x")]), false).unwrap();
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(7);
    edited["metadata"]["annotations"] = json!({"note": "scaled"});
    let entries = update(Some(&live), &edited, writer("kubectl-edit"), &schema(), &at(200));
    edited["metadata"]["managedFields"] = serde_json::to_value(&entries).unwrap();
    assert_eq!(
        entry_names(&edited),
        [
            ("kubectl".into(), "Apply".into()),
            ("kubectl-edit".into(), "Update".into())
        ]
    );
    assert_eq!(
        owned_by(&edited, "kubectl-edit", Operation::Update),
        [".metadata.annotations", ".metadata.annotations.note", ".spec.replicas"]
    );
    assert_eq!(edited["metadata"]["managedFields"][1]["time"], "1970-01-01T00:03:20Z");
    assert!(!owned_by(&edited, "kubectl", Operation::Apply).contains(&".spec.replicas".to_string()));
    // Applying the old replicas again conflicts with the editor.
    let error = apply_as(Some(&edited), "kubectl", &config(2, json!({}), &[("c", "x")]), false).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn updates_that_remove_fields_take_them_from_their_owners() {
    let live = apply_as(None, "kubectl", &config(2, json!({"app": "web"}), &[("c", "x")]), false).unwrap();
    let mut new = live.clone();
    new["metadata"].as_object_mut().unwrap().remove("labels");
    let entries = update(Some(&live), &new, writer("kubectl-label"), &schema(), &at(200));
    new["metadata"]["managedFields"] = serde_json::to_value(&entries).unwrap();
    assert!(!owned_by(&new, "kubectl", Operation::Apply).contains(&".metadata.labels.app".to_string()));
    // Removing alone makes no entry.
    assert_eq!(entry_names(&new), [("kubectl".into(), "Apply".into())]);
}

#[test]
fn creates_record_their_creator_updates_without_managers_record_nothing() {
    let object = config(3, json!({"app": "web"}), &[("c", "x")]);
    let created = update(None, &object, writer("kubectl-create"), &schema(), &at(1));
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].manager.as_deref(), Some("kubectl-create"));
    assert_eq!(created[0].operation.as_deref(), Some("Update"));
    // An object written without managed fields (by a controller) stays without until
    // its first apply.
    let mut changed = object.clone();
    changed["spec"]["replicas"] = json!(4);
    assert!(update(Some(&object), &changed, writer("kubectl"), &schema(), &at(2)).is_empty());
}

#[test]
fn the_first_apply_gives_existing_fields_to_before_first_apply() {
    let existing = config(3, json!({"app": "web"}), &[("c", "x")]);
    let error = apply_as(
        Some(&existing),
        "kubectl",
        &config(2, json!({"app": "web"}), &[("c", "x")]),
        false,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
    );
    let applied = apply_as(
        Some(&existing),
        "kubectl",
        &config(3, json!({"app": "web"}), &[("c", "x")]),
        false,
    )
    .unwrap();
    assert_eq!(
        entry_names(&applied),
        [
            ("kubectl".into(), "Apply".into()),
            (BEFORE_FIRST_APPLY.into(), "Update".into())
        ]
    );
}

#[test]
fn clients_may_replace_or_clear_managed_fields() {
    let live = apply_as(None, "kubectl", &config(2, json!({}), &[("c", "x")]), false).unwrap();
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    assert!(update(Some(&live), &cleared, writer("kubectl-edit"), &schema(), &at(2)).is_empty());
    // Without managed fields in the request, the stored ones are kept.
    let mut omitted = live.clone();
    omitted["metadata"].as_object_mut().unwrap().remove("managedFields");
    let kept = update(Some(&live), &omitted, writer("kubectl-edit"), &schema(), &at(2));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].manager.as_deref(), Some("kubectl"));
    // A status write always starts from the stored ones.
    let status_writer = Writer {
        subresource: "status",
        ..writer("controller")
    };
    let mut status = cleared.clone();
    status["status"] = json!({"replicas": 2});
    let entries = update(Some(&live), &status, status_writer, &schema(), &at(3));
    let names: Vec<_> = entries
        .iter()
        .map(|e| (e.manager.clone(), e.subresource.clone()))
        .collect();
    assert_eq!(
        names,
        [
            (Some("kubectl".into()), None),
            (Some("controller".into()), Some("status".into()))
        ]
    );
}

#[test]
fn a_repeated_apply_changes_nothing() {
    let config = config(2, json!({"app": "web"}), &[("c", "x")]);
    let live = apply_as(None, "kubectl", &config, false).unwrap();
    let again = apply(Some(&live), &config, writer("kubectl"), false, &schema(), &at(500)).unwrap();
    assert!(again.is_unchanged);
    assert_eq!(
        again.object["metadata"]["managedFields"][0]["time"],
        "1970-01-01T00:01:40Z"
    );
    let scaled = config_with_replicas(&config, 3);
    let changed = apply(Some(&live), &scaled, writer("kubectl"), false, &schema(), &at(500)).unwrap();
    assert!(!changed.is_unchanged);
    assert_eq!(
        changed.object["metadata"]["managedFields"][0]["time"],
        "1970-01-01T00:08:20Z"
    );
}

fn config_with_replicas(config: &Value, replicas: i64) -> Value {
    let mut config = config.clone();
    config["spec"]["replicas"] = json!(replicas);
    config
}

#[test]
fn status_is_not_the_main_resources() {
    let mut with_status = config(2, json!({}), &[("c", "x")]);
    with_status["status"] = json!({"replicas": 9});
    let created = apply_as(None, "kubectl", &with_status, false).unwrap();
    assert_eq!(created.get("status"), None);
    assert!(
        owned_by(&created, "kubectl", Operation::Apply)
            .iter()
            .all(|p| !p.starts_with(".status"))
    );
}

#[test]
fn configurations_that_cannot_be_applied_are_bad_requests() {
    let mut owned = config(2, json!({}), &[("c", "x")]);
    owned["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply_as(None, "kubectl", &owned, false).unwrap_err(),
        ApplyError::BadRequest("metadata.managedFields must be nil".into())
    );
    let mut unknown = config(2, json!({}), &[("c", "x")]);
    unknown["spec"]["replicaz"] = json!(1);
    assert_eq!(
        apply_as(None, "kubectl", &unknown, false).unwrap_err().to_string(),
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): \
         .spec.replicaz: field not declared in schema"
    );
    unknown["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
    assert_eq!(
        apply_as(None, "kubectl", &unknown, false).unwrap_err().to_string(),
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): errors:\n  \
         .spec.replicaz: field not declared in schema\n  \
         .spec.template.spec.containers: element 0: associative list with keys has an element that omits key \
         field \"name\" (and doesn't have default value)"
    );
}

#[test]
fn a_manager_that_stops_applying_a_struct_removes_it() {
    let mut with_strategy = config(2, json!({}), &[("c", "x")]);
    with_strategy["spec"]["strategy"] = json!({"type": "Recreate"});
    let live = apply_as(None, "kubectl", &with_strategy, false).unwrap();
    let after = apply_as(Some(&live), "kubectl", &config(2, json!({}), &[("c", "x")]), false).unwrap();
    assert_eq!(after["spec"].get("strategy"), None, "{after}");
}

#[test]
fn kubectl_takes_over_what_it_applied_client_side() {
    // What `kubectl apply` (client-side) leaves: the annotation and an Update entry.
    let mut client_side = config(2, json!({"app": "web"}), &[("c", "x")]);
    let annotation = client_side.to_string();
    client_side["metadata"]["annotations"] = json!({LAST_APPLIED: annotation});
    let entries = update(
        None,
        &client_side,
        writer("kubectl-client-side-apply"),
        &schema(),
        &at(1),
    );
    client_side["metadata"]["managedFields"] = serde_json::to_value(&entries).unwrap();

    // Another manager applying new replicas conflicts with the client-side applier ...
    let scaled = config(3, json!({"app": "web"}), &[("c", "x")]);
    let error = apply_as(Some(&client_side), "deployer", &scaled, false).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    // ... but kubectl takes over what it applied before, and the annotation follows.
    let taken = apply_as(Some(&client_side), "kubectl", &scaled, false).unwrap();
    assert_eq!(taken["spec"]["replicas"], 3);
    assert!(owned_by(&taken, "kubectl", Operation::Apply).contains(&".spec.replicas".to_string()));
    let recorded: Value =
        serde_json::from_str(taken["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap()).unwrap();
    assert_eq!(recorded["spec"]["replicas"], 3);

    // Not once the field has changed since the client-side apply.
    let mut edited = client_side.clone();
    edited["spec"]["replicas"] = json!(5);
    let entries = update(Some(&client_side), &edited, writer("kubectl-edit"), &schema(), &at(2));
    edited["metadata"]["managedFields"] = serde_json::to_value(&entries).unwrap();
    let error = apply_as(Some(&edited), "kubectl", &scaled, false).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#
    );
}
