use std::collections::BTreeMap;

use berth_api::kinds::storage_class::default_class;
use berth_api::objects::{ObjectReference, Quantity};
use berth_api::persistent_volumes::RETAIN;

use super::*;

fn claim(name: &str, size: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut claim = PersistentVolumeClaim::new(
        named("default", name),
        PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(berth_api::objects::VolumeResourceRequirements {
                requests: Some([("storage".to_string(), Quantity(size.into()))].into()),
                ..Default::default()
            }),
            storage_class_name: class.map(String::from),
            ..Default::default()
        },
    );
    claim.metadata.uid = Some(format!("uid-{name}"));
    claim.metadata.resource_version = Some("5".into());
    claim.status.phase = Some(PENDING.into());
    claim
}

fn volume(name: &str, size: &str, phase: &str) -> PersistentVolume {
    let mut volume = PersistentVolume::new(
        named("", name),
        PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), Quantity(size.into()))].into()),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            persistent_volume_reclaim_policy: Some(RETAIN.into()),
            host_path: Some(berth_api::objects::HostPathVolumeSource {
                path: format!("/data/{name}"),
                type_: None,
            }),
            ..Default::default()
        },
    );
    volume.metadata.resource_version = Some("7".into());
    volume.status.phase = Some(phase.into());
    volume
}

fn classes() -> BTreeMap<String, StorageClass> {
    BTreeMap::from([("local".to_string(), default_class())])
}

fn nodes() -> BTreeMap<String, NodeVolumes> {
    BTreeMap::from([(
        "n1".to_string(),
        NodeVolumes {
            labels: BTreeMap::from([(HOSTNAME_LABEL.to_string(), "n1".to_string())]),
            local_volume_dir: Some("/var/lib/berth/n1/volumes".into()),
        },
    )])
}

fn run(claims: &[PersistentVolumeClaim], volumes: &[PersistentVolume]) -> Vec<Action> {
    let claims: Vec<&PersistentVolumeClaim> = claims.iter().collect();
    let volumes: Vec<&PersistentVolume> = volumes.iter().collect();
    plan(&claims, &volumes, &classes(), &nodes())
}

#[test]
fn an_immediate_claim_binds_the_smallest_fit_both_sides() {
    let data = claim("data", "1Gi", Some(""));
    let actions = run(
        &[data],
        &[
            volume("big", "5Gi", AVAILABLE),
            volume("fits", "2Gi", AVAILABLE),
            volume("tiny", "1Mi", AVAILABLE),
        ],
    );
    let Some(Action::Bind {
        volume: Some(volume),
        claim: Some(claim),
    }) = actions.first()
    else {
        panic!("{actions:?}");
    };
    assert_eq!(volume.metadata.name(), "fits");
    assert_eq!(volume.status.phase.as_deref(), Some(BOUND));
    let reference = volume.spec.claim_ref.as_ref().unwrap();
    assert_eq!(
        (reference.name.as_deref(), reference.uid.as_deref()),
        (Some("data"), Some("uid-data"))
    );
    assert_eq!(volume.metadata.annotations()[BOUND_BY_CONTROLLER], "yes");
    assert_eq!(claim.spec.volume_name.as_deref(), Some("fits"));
    assert_eq!(claim.status.phase.as_deref(), Some(BOUND));
    assert_eq!(claim.metadata.annotations()[BIND_COMPLETED], "yes");
    assert_eq!(claim.status.capacity.as_ref().unwrap()["storage"].0, "2Gi");
    // The other volumes had no phase to change.
    assert_eq!(actions.len(), 1, "{actions:?}");
}

#[test]
fn a_claim_waiting_for_its_first_consumer_is_provisioned_on_the_selected_node() {
    let mut data = claim("data", "1Gi", Some("local"));
    assert!(run(std::slice::from_ref(&data), &[]).is_empty(), "no pod scheduled yet");
    data.metadata
        .annotations_mut()
        .insert(SELECTED_NODE.into(), "n1".into());
    let actions = run(std::slice::from_ref(&data), &[]);
    let [Action::Provision { volume, claim }] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(volume.metadata.name(), "pvc-uid-data");
    assert_eq!(
        volume.spec.local.as_ref().unwrap().path,
        "/var/lib/berth/n1/volumes/pvc-uid-data"
    );
    assert!(node_allows(volume, "n1", &nodes()["n1"].labels));
    assert!(!node_allows(
        volume,
        "n2",
        &BTreeMap::from([(HOSTNAME_LABEL.to_string(), "n2".to_string())])
    ));
    assert_eq!(volume.spec.persistent_volume_reclaim_policy.as_deref(), Some(DELETE));
    assert_eq!(volume.spec.capacity.as_ref().unwrap()["storage"].0, "1Gi");
    assert_eq!(volume.metadata.annotations()[PROVISIONED_BY], LOCAL_PROVISIONER);
    assert_eq!(claim.metadata.annotations()[STORAGE_PROVISIONER], LOCAL_PROVISIONER);

    // Next pass, with the volume made: both sides bound.
    let mut made = volume.clone();
    made.metadata.resource_version = Some("9".into());
    let actions = run(std::slice::from_ref(claim), &[made]);
    let [
        Action::Bind {
            volume: Some(v),
            claim: Some(c),
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}");
    };
    assert_eq!(
        (v.status.phase.as_deref(), c.spec.volume_name.as_deref()),
        (Some(BOUND), Some("pvc-uid-data"))
    );

    // A node whose agent does not say where its local volumes go gets none.
    data.metadata
        .annotations_mut()
        .insert(SELECTED_NODE.into(), "n9".into());
    assert!(run(&[data], &[]).is_empty());
}

#[test]
fn a_waiting_claim_takes_an_existing_volume_only_on_its_node() {
    let mut data = claim("data", "1Gi", Some("local"));
    data.metadata
        .annotations_mut()
        .insert(SELECTED_NODE.into(), "n1".into());
    let mut elsewhere = volume("elsewhere", "1Gi", AVAILABLE);
    elsewhere.spec.storage_class_name = Some("local".into());
    elsewhere.spec.node_affinity = Some(affinity_to_hostname("n2"));
    let mut here = elsewhere.clone();
    here.metadata.name = Some("here".into());
    here.spec.capacity = Some([("storage".to_string(), Quantity("3Gi".into()))].into());
    here.spec.node_affinity = Some(affinity_to_hostname("n1"));
    let actions = run(&[data], &[elsewhere, here]);
    let [Action::Bind { volume: Some(v), .. }] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(v.metadata.name(), "here");
}

#[test]
fn released_then_kept_or_failed_by_policy() {
    let mut bound = volume("kept", "1Gi", BOUND);
    bound.spec.claim_ref = Some(ObjectReference {
        namespace: Some("default".into()),
        name: Some("gone".into()),
        uid: Some("uid-gone".into()),
        ..Default::default()
    });
    let actions = run(&[], std::slice::from_ref(&bound));
    let [Action::UpdateVolume(released)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(released.status.phase.as_deref(), Some(RELEASED));
    assert!(
        run(&[], std::slice::from_ref(released)).is_empty(),
        "Retain stays Released"
    );

    // A claim of the same name but another uid is not the one it was bound to.
    let mut again = claim("gone", "1Gi", Some(""));
    again.metadata.uid = Some("uid-new".into());
    let actions = run(&[again], std::slice::from_ref(released));
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a, Action::Bind { volume: Some(v), .. } if v.metadata.name() == "kept")),
        "{actions:?}"
    );

    let mut delete = bound.clone();
    delete.spec.persistent_volume_reclaim_policy = Some(DELETE.into());
    let actions = run(&[], &[delete.clone()]);
    let [Action::UpdateVolume(failed)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(failed.status.phase.as_deref(), Some(FAILED));
    assert!(
        failed
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("no deletable volume plugin matched")
    );

    // A local volume to delete is left Released for its node's agent.
    delete
        .metadata
        .annotations_mut()
        .insert(PROVISIONED_BY.into(), LOCAL_PROVISIONER.into());
    let actions = run(&[], &[delete]);
    let [Action::UpdateVolume(released)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(released.status.phase.as_deref(), Some(RELEASED));
}

#[test]
fn new_volumes_become_available_and_bound_claims_lose_missing_volumes() {
    let actions = run(&[], &[volume("new", "1Gi", PENDING)]);
    let [Action::UpdateVolume(available)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(available.status.phase.as_deref(), Some(AVAILABLE));

    let mut bound = claim("data", "1Gi", Some(""));
    bound.spec.volume_name = Some("vanished".into());
    bound.status.phase = Some(BOUND.into());
    let actions = run(&[bound], &[]);
    let [Action::UpdateClaim(lost)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(lost.status.phase.as_deref(), Some(LOST));
}

#[test]
fn a_bound_local_claim_grows_where_its_class_allows() {
    let mut growing = default_class();
    growing.metadata.name = Some("growing".into());
    growing.allow_volume_expansion = Some(true);
    let mut classes = classes();
    classes.insert("growing".into(), growing);
    let mut data = claim("data", "2Gi", Some("growing"));
    data.spec.volume_name = Some("pvc-uid-data".into());
    data.status.phase = Some(BOUND.into());
    data.status.capacity = Some([("storage".to_string(), Quantity("1Gi".into()))].into());
    data.status.access_modes = Some(vec!["ReadWriteOnce".into()]);
    data.metadata
        .annotations_mut()
        .insert(BIND_COMPLETED.into(), "yes".into());
    let mut local = volume("pvc-uid-data", "1Gi", BOUND);
    local
        .metadata
        .annotations_mut()
        .insert(PROVISIONED_BY.into(), LOCAL_PROVISIONER.into());
    local.spec.claim_ref = Some(ObjectReference {
        namespace: Some("default".into()),
        name: Some("data".into()),
        uid: Some("uid-data".into()),
        ..Default::default()
    });
    let plan_with = |classes: &BTreeMap<String, StorageClass>, claim: &PersistentVolumeClaim| {
        plan(&[claim], &[&local], classes, &nodes())
    };
    let actions = plan_with(&classes, &data);
    let [
        Action::Bind {
            volume: Some(v),
            claim: Some(c),
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}");
    };
    assert_eq!(v.spec.capacity.as_ref().unwrap()["storage"].0, "2Gi");
    assert_eq!(c.status.capacity.as_ref().unwrap()["storage"].0, "2Gi");
    // A class without expansion leaves the volume as it is.
    data.spec.storage_class_name = Some("local".into());
    assert!(plan_with(&classes, &data).is_empty());
}

#[test]
fn a_claim_naming_its_volume_gets_that_one() {
    let mut data = claim("data", "1Gi", Some(""));
    data.spec.volume_name = Some("chosen".into());
    let actions = run(
        &[data.clone()],
        &[volume("chosen", "9Gi", AVAILABLE), volume("better", "1Gi", AVAILABLE)],
    );
    let Some(Action::Bind {
        volume: Some(v),
        claim: Some(c),
    }) = actions.first()
    else {
        panic!("{actions:?}");
    };
    assert_eq!(v.metadata.name(), "chosen");
    assert!(
        !c.metadata.annotations().contains_key(BOUND_BY_CONTROLLER),
        "the user chose it"
    );
    assert!(v.metadata.annotations().contains_key(BOUND_BY_CONTROLLER));

    // Once both sides say so, nothing more to write.
    let settled: Vec<Action> = run(std::slice::from_ref(c), std::slice::from_ref(v));
    assert!(settled.is_empty(), "{settled:?}");
}

#[test]
fn a_claim_without_a_class_gets_the_default_one_first() {
    let written_by_a_controller = claim("www-web-0", "1Gi", None);
    let actions = run(&[written_by_a_controller], &[volume("free", "5Gi", AVAILABLE)]);
    let [Action::UpdateClaim(claim)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(claim.spec.storage_class_name.as_deref(), Some("local"));
    assert_eq!(claim.spec.volume_name, None, "not bound in the same pass");
    // An explicit "" means no class, and a bound claim keeps what it has.
    let mut bound = claim.clone();
    bound.spec.storage_class_name = None;
    bound.spec.volume_name = Some("free".into());
    assert!(with_default_class(&bound, &default_class()).is_none());
    assert!(with_default_class(&self::claim("x", "1Gi", Some("")), &default_class()).is_none());
}
