//! The pure pass: ordered creation waiting on readiness, scale-down order, parallel
//! management, partitioned rolling updates, claims' names, labels and owners.

use std::time::{Duration, SystemTime};

use berth_api::conditions::{Condition, is_terminal};
use berth_api::kinds::stateful_set::{DELETE, ON_DELETE, PARALLEL};
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::objects::{Pod, PodCondition, StatefulSet};
use berth_api::owners::is_controlled_by;
use berth_api::time::from_system_time;
use berth_api::validation::parse_value;

use super::identity::*;
use super::plan::{Why, reconcile};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A set of `replicas` as the API server stores it (defaults filled in).
fn set(replicas: i32) -> StatefulSet {
    let value = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "set-uid", "generation": 1},
        "spec": {"serviceName": "web", "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "data"}},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}});
    parse_value(value).unwrap().object.downcast::<StatefulSet>().unwrap()
}

/// The pod of `ordinal` as it is once created, Running and Ready (or not).
fn pod(set: &StatefulSet, ordinal: i32, ready: bool) -> Pod {
    let mut pod = new_pod(set, &set.spec.template, &revision_of(set), ordinal);
    pod.metadata.uid = Some(format!("pod-{ordinal}"));
    pod.status.phase = Some("Running".into());
    let mut condition = PodCondition::new("Ready", if ready { "True" } else { "False" }, "", "");
    condition.last_transition_time = Some(from_system_time(now() - Duration::from_secs(60)));
    pod.status.conditions = Some(vec![condition]);
    pod
}

fn created(plan: &super::plan::Plan) -> Vec<String> {
    plan.create.iter().map(|p| p.metadata.name().to_string()).collect()
}

fn deleted(plan: &super::plan::Plan) -> Vec<(String, Why)> {
    plan.delete
        .iter()
        .map(|(p, why)| (p.metadata.name().to_string(), *why))
        .collect()
}

#[test]
fn pods_have_stable_names_hostnames_labels_and_claim_volumes() {
    let set = set(3);
    let pod = new_pod(&set, &set.spec.template, &revision_of(&set), 1);
    assert_eq!(pod.metadata.name(), "web-1");
    assert_eq!(pod.spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(pod.spec.subdomain.as_deref(), Some("web"));
    let labels = pod.metadata.labels();
    assert_eq!(labels[POD_NAME_LABEL], "web-1");
    assert_eq!(labels[POD_INDEX_LABEL], "1");
    assert_eq!(labels[REVISION_LABEL], revision_of(&set));
    assert!(revision_of(&set).starts_with("web-"));
    assert_eq!(labels["app"], "web");
    assert!(is_controlled_by(&pod.metadata, "set-uid"));
    let volumes = pod.spec.volumes.as_ref().unwrap();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].name, "www");
    assert_eq!(
        volumes[0].persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-1"
    );
    assert_eq!(pod.status.phase.as_deref(), Some("Pending"));

    // What the pod was made from reads back as the set's template.
    let template = template_of_pod(&set, &pod);
    assert_eq!(
        crate::deployment::template_hash(&template),
        crate::deployment::template_hash(&set.spec.template)
    );
    assert_eq!(
        (ordinal_of("web", "web-12"), ordinal_of("web", "web-01")),
        (Some(12), None)
    );
    assert_eq!((ordinal_of("web", "webx-1"), ordinal_of("web", "web-")), (None, None));
}

#[test]
fn a_set_that_depends_on_services_holds_its_pods_and_reads_their_template_back() {
    let mut set = set(2);
    set.metadata
        .annotations_mut()
        .insert(berth_api::depends_on::ANNOTATION.into(), "db".into());
    let pod = new_pod(&set, &set.spec.template, &revision_of(&set), 0);
    assert!(berth_api::depends_on::is_held(&pod.spec));
    assert_eq!(pod.metadata.annotations()[berth_api::depends_on::ANNOTATION], "db");
    let template = template_of_pod(&set, &pod);
    assert_eq!(
        crate::deployment::template_hash(&template),
        crate::deployment::template_hash(&set.spec.template),
        "the gate and the annotation are the controller's, not the template's"
    );
}

#[test]
fn claims_are_named_per_template_and_ordinal_and_owned_as_the_policy_says() {
    let mut set = set(3);
    let claims = claims_for(&set, 2);
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.metadata.name(), "www-web-2");
    assert_eq!(claim.metadata.namespace(), "default");
    let labels = claim.metadata.labels();
    assert_eq!((labels["app"].as_str(), labels["tier"].as_str()), ("web", "data"));
    assert!(
        claim.metadata.owner_references().is_empty(),
        "Retain: the claim outlives the set"
    );
    assert_eq!(
        claim.spec.access_modes.as_deref(),
        Some(&["ReadWriteOnce".to_string()][..])
    );

    set.spec
        .persistent_volume_claim_retention_policy
        .as_mut()
        .unwrap()
        .when_deleted = Some(DELETE.into());
    let claim = &claims_for(&set, 2)[0];
    let owner = &claim.metadata.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("StatefulSet", "set-uid"));

    let pod = pod(&set, 2, true);
    let owner = pod_owner_ref(&pod);
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Pod", "web-2", "pod-2")
    );
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_each_after_the_one_before_is_ready() {
    let set = set(3);
    let plan = reconcile(&set, &[], None, now());
    assert_eq!(created(&plan), ["web-0"]);

    let web0 = pod(&set, 0, false);
    let plan = reconcile(&set, &[&web0], None, now());
    assert!(plan.create.is_empty(), "web-0 is not ready: web-1 waits");

    let mut pending = pod(&set, 0, false);
    pending.status.phase = Some("Pending".into());
    assert!(reconcile(&set, &[&pending], None, now()).create.is_empty());

    let web0 = pod(&set, 0, true);
    let plan = reconcile(&set, &[&web0], None, now());
    assert_eq!(created(&plan), ["web-1"]);
    let web1 = pod(&set, 1, true);
    let plan = reconcile(&set, &[&web0, &web1], None, now());
    assert_eq!(created(&plan), ["web-2"]);
    let web2 = pod(&set, 2, true);
    let plan = reconcile(&set, &[&web0, &web1, &web2], None, now());
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    let status = plan.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.current_replicas,
            status.updated_replicas
        ),
        (3, Some(3), Some(3), Some(3))
    );
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(status.observed_generation, Some(1));
}

#[test]
fn min_ready_seconds_holds_the_next_pod_back_and_asks_to_look_again() {
    let mut set = set(2);
    set.spec.min_ready_seconds = Some(100);
    let web0 = pod(&set, 0, true);
    let plan = reconcile(&set, &[&web0], None, now());
    assert!(plan.create.is_empty(), "ready for 60 of 100 seconds");
    assert_eq!(plan.requeue, Some(Duration::from_secs(41)));
    assert_eq!(plan.status.unwrap().available_replicas, Some(0));
    let plan = reconcile(&set, &[&web0], None, now() + Duration::from_secs(41));
    assert_eq!(created(&plan), ["web-1"]);
}

#[test]
fn scale_down_goes_from_the_highest_ordinal_one_at_a_time() {
    let set3 = set(3);
    let pods: Vec<Pod> = (0..3).map(|o| pod(&set3, o, true)).collect();
    let all: Vec<&Pod> = pods.iter().collect();
    let set1 = set(1);
    let plan = reconcile(&set1, &all, None, now());
    assert_eq!(deleted(&plan), [("web-2".to_string(), Why::ScaledDown)]);

    let mut leaving = pods[2].clone();
    leaving.metadata.deletion_timestamp = Some(from_system_time(now()));
    let plan = reconcile(&set1, &[&pods[0], &pods[1], &leaving], None, now());
    assert!(plan.delete.is_empty(), "web-1 waits until web-2 is gone");

    let plan = reconcile(&set1, &[&pods[0], &pods[1]], None, now());
    assert_eq!(deleted(&plan), [("web-1".to_string(), Why::ScaledDown)]);

    // An unready pod below holds the scale-down back.
    let web0 = pod(&set3, 0, false);
    assert!(reconcile(&set1, &[&web0, &pods[1]], None, now()).delete.is_empty());
}

#[test]
fn parallel_creates_and_deletes_all_at_once() {
    let mut set = set(3);
    set.spec.pod_management_policy = Some(PARALLEL.into());
    let plan = reconcile(&set, &[], None, now());
    assert_eq!(created(&plan), ["web-0", "web-1", "web-2"]);

    let web0 = pod(&set, 0, false);
    let plan = reconcile(&set, &[&web0], None, now());
    assert_eq!(created(&plan), ["web-1", "web-2"], "no waiting on readiness");

    let pods: Vec<Pod> = (0..4).map(|o| pod(&set, o, true)).collect();
    let all: Vec<&Pod> = pods.iter().collect();
    set.spec.replicas = Some(1);
    let plan = reconcile(&set, &all, None, now());
    let names: Vec<String> = deleted(&plan).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["web-3", "web-2", "web-1"]);
}

#[test]
fn an_ended_pod_is_deleted_and_created_again_with_its_name() {
    let set = set(2);
    let web0 = pod(&set, 0, true);
    let mut failed = pod(&set, 1, false);
    failed.status.phase = Some("Failed".into());
    assert!(is_terminal(&failed));
    let plan = reconcile(&set, &[&web0, &failed], None, now());
    assert_eq!(deleted(&plan), [("web-1".to_string(), Why::Ended)]);
    // Once it is gone, the same name comes back.
    let plan = reconcile(&set, &[&web0], None, now());
    assert_eq!(created(&plan), ["web-1"]);
}

/// The set with a new image, its status naming the old revision as current.
fn updated(old: &StatefulSet, partition: i32) -> StatefulSet {
    let mut set = old.clone();
    set.spec.template.spec.as_mut().unwrap().containers[0].image = Some("busybox:2".into());
    let strategy = set.spec.update_strategy.as_mut().unwrap();
    strategy.rolling_update.as_mut().unwrap().partition = Some(partition);
    set.status.current_revision = Some(revision_of(old));
    set
}

#[test]
fn a_rolling_update_replaces_pods_from_the_highest_down_to_the_partition() {
    let old = set(3);
    let set = updated(&old, 1);
    assert_ne!(revision_of(&set), revision_of(&old));
    let pods: Vec<Pod> = (0..3).map(|o| pod(&old, o, true)).collect();
    let plan = reconcile(&set, &[&pods[0], &pods[1], &pods[2]], None, now());
    assert_eq!(deleted(&plan), [("web-2".to_string(), Why::Update)]);
    let status = plan.status.unwrap();
    assert_eq!((status.current_replicas, status.updated_replicas), (Some(3), Some(0)));

    // web-2 gone: created anew at the update revision.
    let plan = reconcile(&set, &[&pods[0], &pods[1]], None, now());
    assert_eq!(created(&plan), ["web-2"]);
    assert_eq!(plan.create[0].metadata.labels()[REVISION_LABEL], revision_of(&set));
    assert_eq!(plan.create[0].spec.containers[0].image.as_deref(), Some("busybox:2"));

    // The new web-2 not ready yet: web-1 waits.
    let new2 = pod(&set, 2, false);
    assert!(
        reconcile(&set, &[&pods[0], &pods[1], &new2], None, now())
            .delete
            .is_empty()
    );
    let new2 = pod(&set, 2, true);
    let plan = reconcile(&set, &[&pods[0], &pods[1], &new2], None, now());
    assert_eq!(deleted(&plan), [("web-1".to_string(), Why::Update)]);

    // web-0 is below the partition: it keeps its revision, and is re-created at it.
    let new1 = pod(&set, 1, true);
    let plan = reconcile(&set, &[&pods[0], &new1, &new2], None, now());
    assert!(plan.delete.is_empty() && plan.create.is_empty());
    let status = plan.status.unwrap();
    assert_eq!((status.current_replicas, status.updated_replicas), (Some(1), Some(2)));
    assert_eq!(
        status.current_revision,
        Some(revision_of(&old)),
        "partitioned: not complete"
    );
    // Below a partition of 2, a deleted web-0 comes back at the current revision,
    // its template read from web-1.
    let set2 = updated(&old, 2);
    let plan = reconcile(&set2, &[&pods[1], &new2], None, now());
    assert_eq!(created(&plan), ["web-0"]);
    assert_eq!(plan.create[0].metadata.labels()[REVISION_LABEL], revision_of(&old));
    assert_eq!(plan.create[0].spec.containers[0].image.as_deref(), Some("busybox:1"));
    assert_eq!(plan.create[0].spec.hostname.as_deref(), Some("web-0"));

    // Partition 0: web-0 goes too, and the update revision becomes current.
    let set = updated(&old, 0);
    let plan = reconcile(&set, &[&pods[0], &new1, &new2], None, now());
    assert_eq!(deleted(&plan), [("web-0".to_string(), Why::Update)]);
    let new0 = pod(&set, 0, true);
    let status = reconcile(&set, &[&new0, &new1, &new2], None, now()).status.unwrap();
    assert_eq!(status.current_revision, Some(revision_of(&set)));
    assert_eq!(status.current_replicas, Some(3));
}

#[test]
fn on_delete_replaces_nothing_by_itself() {
    let old = set(2);
    let mut set = updated(&old, 0);
    set.spec.update_strategy = Some(berth_api::objects::StatefulSetUpdateStrategy {
        type_: Some(ON_DELETE.into()),
        rolling_update: None,
    });
    let pods: Vec<Pod> = (0..2).map(|o| pod(&old, o, true)).collect();
    let plan = reconcile(&set, &[&pods[0], &pods[1]], None, now());
    assert!(plan.delete.is_empty());
    // A pod deleted by hand comes back at the update revision.
    let plan = reconcile(&set, &[&pods[0]], None, now());
    assert_eq!(plan.create[0].metadata.labels()[REVISION_LABEL], revision_of(&set));
}

#[test]
fn ordinals_start_where_the_set_says() {
    let mut set = set(2);
    set.spec.ordinals = Some(berth_api::objects::StatefulSetOrdinals { start: Some(5) });
    assert_eq!(created(&reconcile(&set, &[], None, now())), ["web-5"]);
    let web5 = pod(&set, 5, true);
    assert_eq!(created(&reconcile(&set, &[&web5], None, now())), ["web-6"]);
    let web0 = pod(&set, 0, true);
    let web6 = pod(&set, 6, true);
    let plan = reconcile(&set, &[&web0, &web5, &web6], None, now());
    assert_eq!(deleted(&plan), [("web-0".to_string(), Why::ScaledDown)]);
}

#[test]
fn a_set_being_deleted_only_reports() {
    let mut set = set(2);
    set.metadata = ObjectMeta {
        deletion_timestamp: Some(from_system_time(now())),
        ..set.metadata
    };
    let plan = reconcile(&set, &[], None, now());
    assert!(plan.create.is_empty() && plan.status.is_some());
}

#[test]
fn a_revision_holds_its_template_and_pods_below_the_partition_are_made_from_it() {
    let old = set(3);
    let revision = super::revisions::new_revision(&old, 1);
    assert_eq!(revision.metadata.name(), revision_of(&old));
    assert_eq!(revision.revision, 1);
    let labels = revision.metadata.labels();
    assert_eq!(labels["app"], "web");
    assert!(revision_of(&old).ends_with(&labels[super::revisions::HASH_LABEL]));
    assert!(is_controlled_by(&revision.metadata, "set-uid"));
    assert_eq!(
        revision.data.as_ref().unwrap().0["spec"]["template"]["$patch"],
        "replace"
    );
    let template = super::revisions::template_of(&revision).unwrap();
    assert_eq!(template, old.spec.template);

    // The last pod of the old revision is gone: its revision gives the template.
    let set = updated(&old, 1);
    let (new1, new2) = (pod(&set, 1, true), pod(&set, 2, true));
    let plan = reconcile(&set, &[&new1, &new2], Some(&template), now());
    assert_eq!(created(&plan), ["web-0"]);
    assert_eq!(plan.create[0].metadata.labels()[REVISION_LABEL], revision_of(&old));
    assert_eq!(plan.create[0].spec.containers[0].image.as_deref(), Some("busybox:1"));
}
