use serde_json::{Value, json};

use super::*;
use crate::validation::parse_value;

fn volume(spec: Value) -> Result<Object, Vec<String>> {
    let value = json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv1"}, "spec": spec});
    parse_value(value)
        .map(|p| p.object)
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

fn local(extra: Value) -> Value {
    let mut spec = json!({
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "local": {"path": "/mnt/disk1"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}},
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

#[test]
fn a_local_volume_with_its_defaults() {
    let pv = volume(local(json!({}))).unwrap();
    assert_eq!(pv.key(), "/registry/persistentvolumes/pv1");
    let value = pv.to_value();
    assert_eq!(value["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(value["spec"]["volumeMode"], "Filesystem");
    let row = (PERSISTENT_VOLUME.cells)(&pv, SystemTime::now());
    assert_eq!(row[..3], [json!("pv1"), json!("1Gi"), json!("RWO")]);
    assert_eq!(row[7], json!("<unset>"));
}

#[test]
fn kubernetes_refusals() {
    let mut no_affinity = local(json!({}));
    no_affinity.as_object_mut().unwrap().remove("nodeAffinity");
    assert_eq!(
        volume(no_affinity).unwrap_err(),
        ["spec.nodeAffinity: Required value: Local volume requires node affinity"]
    );
    assert_eq!(
        volume(json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]})).unwrap_err(),
        ["spec: Required value: must specify a volume type"]
    );
    assert_eq!(
        volume(local(json!({"hostPath": {"path": "/x"}}))).unwrap_err(),
        ["spec.hostPath: Forbidden: may not specify more than 1 volume type"]
    );
    assert_eq!(
        volume(local(json!({"capacity": {}}))).unwrap_err(),
        ["spec.capacity: Required value"]
    );
    assert_eq!(
        volume(local(json!({"accessModes": []}))).unwrap_err(),
        ["spec.accessModes: Required value: at least 1 access mode is required"]
    );
    assert_eq!(
        volume(local(json!({"accessModes": ["ReadWriteOncePod", "ReadOnlyMany"]}))).unwrap_err(),
        ["spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"]
    );
    assert_eq!(
        volume(local(json!({"persistentVolumeReclaimPolicy": "Keep"}))).unwrap_err(),
        [
            "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\""
        ]
    );
    assert_eq!(
        volume(json!({"hostPath": {"path": "relative"}, "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"]}))
        .unwrap_err(),
        ["spec.hostPath.path: Invalid value: \"relative\": must be an absolute path"]
    );
}

#[test]
fn what_berth_does_not_do_is_refused_by_name() {
    let recycle = volume(local(json!({"persistentVolumeReclaimPolicy": "Recycle"}))).unwrap_err();
    assert!(
        recycle[0].starts_with("spec.persistentVolumeReclaimPolicy: berth does not implement"),
        "{recycle:?}"
    );
    let block = volume(local(json!({"volumeMode": "Block"}))).unwrap_err();
    assert!(
        block[0].starts_with("spec.volumeMode: berth does not implement"),
        "{block:?}"
    );
    let mut nfs = local(json!({"nfs": {"server": "s", "path": "/e"}}));
    nfs.as_object_mut().unwrap().remove("local");
    let nfs = volume(nfs).unwrap_err();
    assert_eq!(nfs.len(), 1, "{nfs:?}");
    assert!(nfs[0].starts_with("spec.nfs: berth does not implement"), "{nfs:?}");
}

#[test]
fn the_source_and_class_are_fixed() {
    let old = volume(local(json!({}))).unwrap();
    let new = volume(local(json!({"local": {"path": "/mnt/other"}, "storageClassName": "x"}))).unwrap();
    let mut errors = Vec::new();
    (PERSISTENT_VOLUME.validate_update)(&old, &new, &mut errors);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.persistentvolumesource", "spec.storageClassName"]);
}
