//! Moving from client-side apply (`kubectl apply`, which keeps the configuration in
//! the `kubectl.kubernetes.io/last-applied-configuration` annotation) to server-side
//! apply, as kube-apiserver eases it for the manager `kubectl`:
//!
//! - conflicts on fields the annotation set, to the value the object still has, are
//!   not conflicts: those fields were kubectl's own, and the apply takes them;
//! - after the apply, an object that has the annotation gets the applied
//!   configuration in it, so a later client-side apply starts from the truth.
//!
//! Other managers opt out by not being `kubectl`.

use serde_json::Value;

use super::applied_fields::applied_fields;
use super::compare::compare;
use super::field_set::FieldSet;
use crate::patch::PatchSchema;

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager whose applies keep the annotation.
pub(crate) const KUBECTL: &str = "kubectl";

fn annotation(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|text| !text.is_empty())
}

/// The fields the annotation of `live` (without its managed fields) set to the value
/// they still have; `None` when it has no usable annotation.
pub(crate) fn fields_still_as_last_applied(live: &Value, api_version: &str, schema: &PatchSchema) -> Option<FieldSet> {
    let last_applied: Value = serde_json::from_str(annotation(live)?).ok()?;
    if last_applied.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let fields = applied_fields(&last_applied, schema).ok()?;
    let comparison = compare(&last_applied, live, schema);
    Some(
        fields
            .difference(&comparison.modified)
            .difference(&comparison.added)
            .difference(&comparison.removed),
    )
}

/// Writes `config` (without the annotation) into the annotation of `object` if `live`
/// had one; returns whether the annotation changed.
pub(crate) fn record(object: &mut Value, live: Option<&Value>, config: &Value) -> bool {
    let Some(previous) = live.and_then(annotation) else {
        return false;
    };
    let mut config = config.clone();
    if let Some(Value::Object(annotations)) = config.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED);
    }
    let text = config.to_string();
    if text == previous {
        return false;
    }
    match object.pointer_mut("/metadata/annotations") {
        Some(Value::Object(annotations)) => {
            annotations.insert(LAST_APPLIED.into(), text.into());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::path::Path;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    fn live(replicas: i64) -> Value {
        let last = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                          "spec": {"replicas": 2, "paused": false}});
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "annotations": {LAST_APPLIED: last.to_string(), "other": "x"}},
               "spec": {"replicas": replicas, "paused": false, "minReadySeconds": 5}})
    }

    #[test]
    fn fields_last_applied_and_unchanged_since_are_kubectls() {
        let schema = PatchSchema::for_type::<Deployment>();
        let still = fields_still_as_last_applied(&live(2), "apps/v1", &schema).unwrap();
        assert!(still.contains(&Path::fields(&["spec", "replicas"]).0));
        assert!(still.contains(&Path::fields(&["spec", "paused"]).0));
        assert!(!still.contains(&Path::fields(&["spec", "minReadySeconds"]).0));
        // Someone scaled since: replicas are no longer kubectl's.
        let scaled = fields_still_as_last_applied(&live(7), "apps/v1", &schema).unwrap();
        assert!(!scaled.contains(&Path::fields(&["spec", "replicas"]).0));
        assert_eq!(fields_still_as_last_applied(&live(2), "apps/v2", &schema), None);
        assert_eq!(
            fields_still_as_last_applied(&json!({"metadata": {}}), "apps/v1", &schema),
            None
        );
    }

    #[test]
    fn the_annotation_follows_the_applied_configuration() {
        let live = live(2);
        let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web", "annotations": {LAST_APPLIED: "stale"}},
                            "spec": {"replicas": 3}});
        let mut object = live.clone();
        assert!(record(&mut object, Some(&live), &config));
        let recorded: Value =
            serde_json::from_str(object["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap()).unwrap();
        assert_eq!(
            recorded,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "annotations": {}}, "spec": {"replicas": 3}})
        );
        assert_eq!(object["metadata"]["annotations"]["other"], "x");
        // No annotation before: none after.
        let mut bare = json!({"metadata": {"annotations": {"other": "x"}}});
        assert!(!record(&mut bare.clone(), Some(&bare.clone()), &config));
        assert!(!record(&mut bare, None, &config));
    }
}
