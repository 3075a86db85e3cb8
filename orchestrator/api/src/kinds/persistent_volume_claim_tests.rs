use serde_json::{Value, json};

use super::*;
use crate::validation::parse_value;

fn claim_spec(extra: Value) -> Value {
    let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

fn claim(spec: Value) -> Result<Object, Vec<String>> {
    let value = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"}, "spec": spec});
    parse_value(value)
        .map(|p| p.object)
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn a_claim_and_its_refusals() {
    let data = claim(claim_spec(json!({}))).unwrap();
    assert_eq!(data.key(), "/registry/persistentvolumeclaims/default/data");
    assert_eq!(data.to_value()["spec"]["volumeMode"], "Filesystem");
    assert_eq!(
        claim(json!({"accessModes": ["ReadWriteOnce"]})).unwrap_err(),
        ["spec.resources[storage]: Required value"]
    );
    assert_eq!(
        claim(claim_spec(json!({"resources": {"requests": {"storage": "0"}}}))).unwrap_err(),
        ["spec.resources.requests[storage]: Invalid value: must be greater than zero"]
    );
    assert_eq!(
        claim(claim_spec(json!({"accessModes": ["WriteSometimes"]})))
            .unwrap_err()
            .len(),
        1
    );
    let refused: Vec<String> = claim(claim_spec(json!({
        "volumeMode": "Block",
        "dataSource": {"kind": "PersistentVolumeClaim", "name": "other"},
    })))
    .unwrap_err();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].starts_with("spec.volumeMode: berth does not implement"),
        "{refused:?}"
    );
    assert_eq!(refused[1], "spec.dataSource: berth does not implement this field yet");
    assert_eq!(
        claim(claim_spec(
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}})
        ))
        .unwrap_err(),
        [
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        ]
    );
}

fn update_errors(old: &Object, new: &Object) -> Vec<String> {
    let mut errors = Vec::new();
    (PERSISTENT_VOLUME_CLAIM.validate_update)(old, new, &mut errors);
    errors.iter().map(ToString::to_string).collect()
}

fn bound(mut object: Object) -> Object {
    object.downcast_mut::<PersistentVolumeClaim>().unwrap().status.phase = Some("Bound".into());
    object
}

#[test]
fn the_spec_is_fixed_but_for_a_bound_claims_growth() {
    let old = claim(claim_spec(json!({}))).unwrap();
    let named = claim(claim_spec(json!({"volumeName": "pv1", "storageClassName": "local"}))).unwrap();
    assert!(update_errors(&old, &named).is_empty(), "volumeName and class set once");
    let other_volume = claim(claim_spec(json!({"volumeName": "pv2", "storageClassName": "local"}))).unwrap();
    assert_eq!(update_errors(&named, &other_volume).len(), 1);
    let bigger = claim(claim_spec(json!({"resources": {"requests": {"storage": "2Gi"}}}))).unwrap();
    assert_eq!(
        update_errors(&old, &bigger),
        [
            "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
        ]
    );
    assert!(update_errors(&bound(old.clone()), &bound(bigger.clone())).is_empty());
    assert!(is_expansion(
        old.downcast_ref().unwrap(),
        bigger.downcast_ref().unwrap()
    ));
    assert_eq!(
        update_errors(&bound(bigger), &bound(old)),
        ["spec.resources.requests.storage: Forbidden: field can not be less than previous value"]
    );
}

#[test]
fn the_row_shows_the_binding() {
    let mut object = bound(claim(claim_spec(json!({"volumeName": "pvc-1", "storageClassName": "local"}))).unwrap());
    let status = &mut object.downcast_mut::<PersistentVolumeClaim>().unwrap().status;
    status.capacity = Some([("storage".to_string(), crate::objects::Quantity("1Gi".into()))].into());
    status.access_modes = Some(vec!["ReadWriteOnce".into()]);
    let row = (PERSISTENT_VOLUME_CLAIM.cells)(&object, SystemTime::now());
    assert_eq!(
        row[..6],
        [
            json!("data"),
            json!("Bound"),
            json!("pvc-1"),
            json!("1Gi"),
            json!("RWO"),
            json!("local")
        ]
    );
}
