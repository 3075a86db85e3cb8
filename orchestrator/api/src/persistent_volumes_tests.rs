use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, VolumeResourceRequirements};

use super::*;
use crate::meta::{LabelSelector, named};
use crate::objects::{PersistentVolumeClaimSpec, PersistentVolumeSpec};

fn volume(name: &str, size: &str, class: &str, phase: &str) -> PersistentVolume {
    let mut volume = PersistentVolume::new(
        named("", name),
        PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), Quantity(size.into()))].into()),
            access_modes: Some(vec!["ReadWriteOnce".into(), "ReadOnlyMany".into()]),
            storage_class_name: Some(class.into()).filter(|c: &String| !c.is_empty()),
            ..Default::default()
        },
    );
    volume.status.phase = Some(phase.into());
    volume
}

fn claim(size: &str, class: &str) -> PersistentVolumeClaim {
    let mut claim = PersistentVolumeClaim::new(
        named("default", "data"),
        PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), Quantity(size.into()))].into()),
                ..Default::default()
            }),
            storage_class_name: Some(class.into()),
            ..Default::default()
        },
    );
    claim.metadata.uid = Some("u1".into());
    claim
}

#[test]
fn the_smallest_available_volume_that_fits() {
    let volumes = [
        volume("big", "10Gi", "manual", AVAILABLE),
        volume("small", "1Gi", "manual", AVAILABLE),
        volume("fits", "2Gi", "manual", AVAILABLE),
        volume("fits-bound", "2Gi", "manual", BOUND),
        volume("other-class", "2Gi", "fast", AVAILABLE),
    ];
    let want = claim("1500Mi", "manual");
    assert_eq!(
        best_volume(&want, &volumes, |_| true).map(|v| v.metadata.name()),
        Some("fits")
    );
    assert_eq!(check_match(&volumes[1], &want), Err("too small"));
    assert_eq!(check_match(&volumes[4], &want), Err("another storage class"));
    let mut rwx = want.clone();
    rwx.spec.access_modes = Some(vec!["ReadWriteMany".into()]);
    assert_eq!(best_volume(&rwx, &volumes, |_| true), None);
    assert_eq!(
        best_volume(&want, &volumes, |v| v.metadata.name() != "fits").map(|v| v.metadata.name()),
        Some("big"),
        "a filter (a node's) narrows the choice"
    );
}

#[test]
fn selectors_and_reservations() {
    let mut labelled = volume("labelled", "5Gi", "", AVAILABLE);
    labelled.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
    let plain = volume("plain", "1Gi", "", AVAILABLE);
    let mut gold = claim("1Gi", "");
    gold.spec.selector = Some(LabelSelector {
        match_labels: Some([("tier".to_string(), "gold".to_string())].into()),
        ..Default::default()
    });
    let volumes = [labelled.clone(), plain.clone()];
    assert_eq!(
        best_volume(&gold, &volumes, |_| true).map(|v| v.metadata.name()),
        Some("labelled")
    );
    assert_eq!(check_match(&plain, &gold), Err("not selected"));

    // A volume whose claimRef names another claim is not offered; one naming this
    // claim is preferred over a smaller one.
    let mut reserved = volume("reserved", "8Gi", "", AVAILABLE);
    reserved.spec.claim_ref = Some(ObjectReference {
        namespace: Some("default".into()),
        name: Some("data".into()),
        ..Default::default()
    });
    let want = claim("1Gi", "");
    assert_eq!(
        best_volume(&want, &[plain.clone(), reserved.clone()], |_| true).map(|v| v.metadata.name()),
        Some("reserved")
    );
    let mut elsewhere = reserved;
    elsewhere.spec.claim_ref.as_mut().unwrap().name = Some("other".into());
    assert_eq!(check_match(&elsewhere, &want), Err("claimed by another claim"));
}

#[test]
fn node_affinity_as_kubernetes_reads_it() {
    let mut pinned = volume("pinned", "1Gi", "", AVAILABLE);
    pinned.spec.node_affinity = Some(affinity_to_hostname("n1"));
    let labels = |host: &str| BTreeMap::from([(HOSTNAME_LABEL.to_string(), host.to_string())]);
    assert!(node_allows(&pinned, "n1", &labels("n1")));
    assert!(!node_allows(&pinned, "n2", &labels("n2")));
    assert!(!node_allows(&pinned, "n1", &BTreeMap::new()), "no hostname label");
    assert!(node_allows(
        &volume("free", "1Gi", "", AVAILABLE),
        "n2",
        &BTreeMap::new()
    ));

    let by_name: NodeSelector = serde_json::from_value(serde_json::json!({"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]},
        {"matchExpressions": [{"key": "disks", "operator": "Gt", "values": ["2"]}]}
    ]}))
    .unwrap();
    assert!(node_selector_matches(&by_name, "n2", &BTreeMap::new()));
    assert!(!node_selector_matches(&by_name, "n1", &BTreeMap::new()));
    let three = BTreeMap::from([("disks".to_string(), "3".to_string())]);
    assert!(node_selector_matches(&by_name, "n1", &three), "either term");
    let empty: NodeSelector = serde_json::from_value(serde_json::json!({"nodeSelectorTerms": [{}]})).unwrap();
    assert!(
        !node_selector_matches(&empty, "n1", &three),
        "an empty term selects nothing"
    );
}
