//! The Deployment controller's pure pass, alone and in a small simulated world where
//! its writes land and each ReplicaSet's pods follow its replicas.

use std::time::{Duration, SystemTime};

use super::revision::{
    CHANGE_CAUSE_ANNOTATION, DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, REVISION_HISTORY_ANNOTATION,
};
use super::status::*;
use super::*;
use berth_api::meta::selector_matches;
use berth_api::objects::{DeploymentCondition, DeploymentStatus, ReplicaSetStatus};
use berth_api::time::from_system_time;

const T0: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
}

fn image_of(rs: &ReplicaSet) -> &str {
    let spec = rs.spec.template.as_ref().and_then(|t| t.spec.as_ref());
    spec.and_then(|s| s.containers[0].image.as_deref()).unwrap_or_default()
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations().get(key).map(String::as_str)
}

/// A stored Deployment (with a uid, generation, resourceVersion and the defaults
/// the API server fills in).
fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    let mut d = berth_api::testing::deployment(name, replicas, image, "100m");
    d.metadata.uid = Some(format!("uid-{name}"));
    d.metadata.generation = Some(1);
    d.metadata.resource_version = Some("5".into());
    d.spec.revision_history_limit = Some(10);
    d.spec.progress_deadline_seconds = Some(600);
    d
}

fn progressing(d: &Deployment) -> DeploymentCondition {
    condition(&d.status, PROGRESSING)
        .cloned()
        .expect("a Progressing condition")
}

fn available(d: &Deployment) -> DeploymentCondition {
    condition(&d.status, AVAILABLE)
        .cloned()
        .expect("an Available condition")
}

fn reason_and_message(c: &DeploymentCondition) -> (&str, &str, &str) {
    (
        c.status.as_str(),
        c.reason.as_deref().unwrap_or_default(),
        c.message.as_deref().unwrap_or_default(),
    )
}

/// The store, as the Deployment controller's writes and the ReplicaSet controller
/// leave it: every pass's actions applied, and each ReplicaSet's pods following its
/// replicas (ready and available if `pods_ready`).
struct World {
    deployment: Deployment,
    sets: Vec<ReplicaSet>,
    now: SystemTime,
    pods_ready: bool,
    version: i64,
}

impl World {
    fn new(deployment: Deployment) -> World {
        World {
            deployment,
            sets: Vec::new(),
            now: at(0),
            pods_ready: true,
            version: 5,
        }
    }

    fn next_version(&mut self) -> Option<String> {
        self.version += 1;
        Some(self.version.to_string())
    }

    /// One pass of the controller, its writes applied as the store would.
    fn pass(&mut self) -> Plan {
        let owned: Vec<&ReplicaSet> = self.sets.iter().collect();
        let plan = reconcile(&self.deployment, &owned, self.now);
        for action in plan.actions.clone() {
            match action {
                Action::CreateReplicaSet(mut rs) => {
                    assert!(
                        self.sets.iter().all(|s| s.metadata.name != rs.metadata.name),
                        "created twice: {}",
                        rs.metadata.name()
                    );
                    rs.metadata.uid = Some(format!("uid-{}", rs.metadata.name()));
                    rs.metadata.creation_timestamp = Some(from_system_time(self.now));
                    rs.metadata.generation = Some(1);
                    rs.metadata.resource_version = self.next_version();
                    self.sets.push(rs);
                }
                Action::UpdateReplicaSet(mut rs) => {
                    let i = self
                        .sets
                        .iter()
                        .position(|s| s.metadata.name == rs.metadata.name)
                        .unwrap();
                    let stored = &self.sets[i];
                    assert_eq!(rs.metadata.resource_version, stored.metadata.resource_version);
                    assert_eq!(rs.status, stored.status, "the status is the ReplicaSet controller's");
                    if rs.spec != stored.spec {
                        rs.metadata.generation = Some(stored.metadata.generation() + 1);
                    }
                    rs.metadata.resource_version = self.next_version();
                    self.sets[i] = rs;
                }
                Action::DeleteReplicaSet(rs) => {
                    let before = self.sets.len();
                    self.sets.retain(|s| s.metadata.name != rs.metadata.name);
                    assert_eq!(self.sets.len(), before - 1);
                }
                Action::UpdateDeployment(mut d) => {
                    assert_eq!(d.spec, self.deployment.spec, "the controller writes no spec");
                    assert_eq!(d.metadata.resource_version, self.deployment.metadata.resource_version);
                    d.metadata.resource_version = self.next_version();
                    self.deployment = d;
                }
            }
        }
        plan
    }

    /// The ReplicaSet controller: each ReplicaSet has as many pods as it wants.
    fn pods(&mut self) {
        for rs in &mut self.sets {
            let n = spec_replicas(rs.spec.replicas);
            let ready = if self.pods_ready { n } else { 0 };
            rs.status = ReplicaSetStatus {
                replicas: n,
                fully_labeled_replicas: Some(n),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                observed_generation: Some(rs.metadata.generation()),
                ..Default::default()
            };
        }
    }

    /// Passes a second apart, the pods following, until a pass writes nothing.
    fn settle(&mut self) {
        for _ in 0..30 {
            self.now += Duration::from_secs(1);
            self.pods();
            if self.pass().actions.is_empty() {
                return;
            }
        }
        panic!("no fixed point: {:#?}\n{:#?}", self.deployment, self.sets);
    }

    /// A user's change of the spec (the generation moves).
    fn edit(&mut self, change: impl FnOnce(&mut Deployment)) {
        change(&mut self.deployment);
        self.deployment.metadata.generation = Some(self.deployment.metadata.generation() + 1);
        self.deployment.metadata.resource_version = self.next_version();
    }

    /// `kubectl set image` with a change cause.
    fn set_image(&mut self, image: &str) {
        self.edit(|d| {
            let spec = d.spec.template.spec.as_mut().unwrap();
            spec.containers[0].image = Some(image.into());
            d.metadata
                .annotations_mut()
                .insert(CHANGE_CAUSE_ANNOTATION.into(), format!("set image {image}"));
        });
    }

    fn rs_of(&self, image: &str) -> &ReplicaSet {
        self.sets
            .iter()
            .find(|rs| image_of(rs) == image)
            .unwrap_or_else(|| panic!("no ReplicaSet of {image}"))
    }

    /// (image, revision, replicas) of every ReplicaSet, by revision.
    fn history(&self) -> Vec<(String, String, i32)> {
        let mut history: Vec<(String, String, i32)> = self
            .sets
            .iter()
            .map(|rs| {
                (
                    image_of(rs).to_string(),
                    annotation(&rs.metadata, REVISION_ANNOTATION)
                        .unwrap_or_default()
                        .to_string(),
                    spec_replicas(rs.spec.replicas),
                )
            })
            .collect();
        history.sort_by_key(|(_, revision, _)| revision.parse::<i64>().unwrap_or_default());
        history
    }
}

fn history(entries: &[(&str, &str, i32)]) -> Vec<(String, String, i32)> {
    entries
        .iter()
        .map(|(image, revision, replicas)| (image.to_string(), revision.to_string(), *replicas))
        .collect()
}

#[test]
fn the_template_hash_is_stable_and_follows_the_template() {
    let a = deployment("web", 3, "nginx:1");
    let hash = template_hash(&a.spec.template);
    assert_eq!(hash.len(), 10);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    assert_eq!(hash, template_hash(&deployment("web", 3, "nginx:1").spec.template));
    // Golden value: if the hash of an unchanged template changed (say, a new
    // PodSpec field serialized without `skip_serializing_if`), every Deployment
    // would roll out a new ReplicaSet on the next leader's first pass.
    let fixed: PodTemplateSpec = serde_json::from_str(
        r#"{"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1", "command": ["sleep", "1000"]}]}}"#,
    )
    .unwrap();
    assert_eq!(template_hash(&fixed), "358250fcdd");
    // What kubectl sends back on `rollout undo` (Go's encoding of the template:
    // a null creationTimestamp, empty resources) is the same template.
    let from_go: PodTemplateSpec = serde_json::from_str(
        r#"{"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1", "command": ["sleep", "1000"],
                                     "resources": {}}]}}"#,
    )
    .unwrap();
    assert_eq!(template_hash(&from_go), "358250fcdd");
    let scaled = deployment("web", 7, "nginx:1");
    assert_eq!(
        template_hash(&scaled.spec.template),
        hash,
        "replicas are not part of the template"
    );
    assert_ne!(template_hash(&deployment("web", 3, "nginx:2").spec.template), hash);
    let rs = desired_replica_set(&a, &hash);
    assert_eq!(
        template_hash(rs.spec.template.as_ref().unwrap()),
        hash,
        "the label added to the template is ignored"
    );
}

#[test]
fn a_new_deployment_gets_an_owned_labelled_replica_set_of_revision_1() {
    let mut d = deployment("web", 3, "nginx:1");
    let annotations = d.metadata.annotations_mut();
    annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), "first".into());
    annotations.insert("kubectl.kubernetes.io/last-applied-configuration".into(), "{}".into());
    annotations.insert("team".into(), "blue".into());
    d.spec.min_ready_seconds = Some(5);
    let plan = reconcile(&d, &[], at(0));
    let [Action::CreateReplicaSet(rs), Action::UpdateDeployment(written)] = plan.actions.as_slice() else {
        panic!("{:#?}", plan.actions)
    };
    let hash = template_hash(&d.spec.template);
    assert_eq!(rs.metadata.name(), format!("web-{hash}"));
    assert_eq!((rs.spec.replicas, rs.spec.min_ready_seconds), (Some(3), Some(5)));
    assert_eq!(rs.metadata.labels()[TEMPLATE_HASH_LABEL], hash);
    let match_labels = rs.spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(match_labels[TEMPLATE_HASH_LABEL], hash);
    assert_eq!(match_labels["app"], "web");
    let template = rs.spec.template.as_ref().unwrap();
    assert!(selector_matches(
        &rs.spec.selector,
        template.metadata.as_ref().unwrap().labels()
    ));
    let owner = &rs.metadata.owner_references()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("apps/v1", "Deployment", "web", "uid-web", Some(true))
    );
    let expected_annotations: Vec<(&str, &str)> = vec![
        (REVISION_ANNOTATION, "1"),
        (DESIRED_REPLICAS_ANNOTATION, "3"),
        (MAX_REPLICAS_ANNOTATION, "3"),
        (CHANGE_CAUSE_ANNOTATION, "first"),
        ("team", "blue"),
    ];
    let mut got: Vec<(&str, &str)> = rs
        .metadata
        .annotations()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    got.sort();
    let mut expected = expected_annotations;
    expected.sort();
    assert_eq!(got, expected, "the last applied configuration is not copied");

    assert_eq!(annotation(&written.metadata, REVISION_ANNOTATION), Some("1"));
    assert_eq!(written.status.observed_generation, Some(1));
    let created = progressing(written);
    assert_eq!(
        reason_and_message(&created),
        (
            "True",
            NEW_REPLICA_SET_CREATED,
            format!("Created new replica set \"web-{hash}\"").as_str()
        )
    );
    assert_eq!(created.last_update_time, Some(from_system_time(at(0))));
    assert_eq!(
        reason_and_message(&available(written)),
        (
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability."
        )
    );
    assert_eq!(written.status.unavailable_replicas, Some(3));
    assert_eq!(plan.requeue, Some(Duration::from_secs(601)), "a deadline check");
}

#[test]
fn a_rollout_reports_progress_then_success_and_writes_nothing_more() {
    let mut world = World::new(deployment("web", 3, "nginx:1"));
    world.pods_ready = false;
    world.now = at(0);
    world.pass();
    let created = progressing(&world.deployment);
    assert_eq!(created.reason.as_deref(), Some(NEW_REPLICA_SET_CREATED));

    // The pods come, not ready yet: a step forward (more updated pods).
    world.now = at(10);
    world.pods();
    world.pass();
    let name = world.sets[0].metadata.name().to_string();
    let updated = progressing(&world.deployment);
    assert_eq!(
        reason_and_message(&updated),
        (
            "True",
            REPLICA_SET_UPDATED,
            format!("ReplicaSet \"{name}\" is progressing.").as_str()
        )
    );
    assert_eq!(
        updated.last_transition_time, created.last_transition_time,
        "still True: no transition"
    );
    assert_eq!(updated.last_update_time, Some(from_system_time(at(10))));
    let status = &world.deployment.status;
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (Some(3), Some(3), Some(0), Some(0), Some(3))
    );

    // Ready and available: complete.
    world.now = at(20);
    world.pods_ready = true;
    world.pods();
    world.pass();
    let done = progressing(&world.deployment);
    assert_eq!(
        reason_and_message(&done),
        (
            "True",
            NEW_REPLICA_SET_AVAILABLE,
            format!("ReplicaSet \"{name}\" has successfully progressed.").as_str()
        )
    );
    assert_eq!(done.last_transition_time, created.last_transition_time);
    let available = available(&world.deployment);
    assert_eq!(
        reason_and_message(&available),
        (
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability."
        )
    );
    assert_eq!(available.last_transition_time, Some(from_system_time(at(20))));
    let status = &world.deployment.status;
    assert_eq!(
        (status.available_replicas, status.unavailable_replicas),
        (Some(3), Some(0))
    );
    assert!(is_complete(&world.deployment, status));

    // Much later, nothing to write and nothing to time out.
    world.now = at(5000);
    let plan = world.pass();
    assert_eq!(plan, Plan::default(), "a finished rollout is left alone");
}

#[test]
fn recreate_scales_the_old_replica_set_down_before_creating_the_new_one() {
    let mut world = World::new(deployment("web", 3, "nginx:1"));
    world.settle();
    world.set_image("nginx:2");
    let plan = world.pass();
    let [Action::UpdateReplicaSet(old), Action::UpdateDeployment(d)] = plan.actions.as_slice() else {
        panic!("{:#?}", plan.actions)
    };
    assert_eq!((image_of(old), old.spec.replicas), ("nginx:1", Some(0)));
    assert_eq!(annotation(&old.metadata, DESIRED_REPLICAS_ANNOTATION), Some("3"));
    assert_eq!(d.status.observed_generation, Some(2));
    assert_eq!(d.status.updated_replicas, Some(0));
    assert_eq!(
        annotation(&d.metadata, REVISION_ANNOTATION),
        Some("1"),
        "no new ReplicaSet yet"
    );

    // Its pods are still there: no new ReplicaSet until they are gone.
    let plan = world.pass();
    assert!(
        plan.actions.iter().all(|a| !matches!(a, Action::CreateReplicaSet(_))),
        "{:#?}",
        plan.actions
    );
    world.pods();
    let plan = world.pass();
    let Some(Action::CreateReplicaSet(new)) = plan.actions.first() else {
        panic!("{:#?}", plan.actions)
    };
    assert_eq!((image_of(new), new.spec.replicas), ("nginx:2", Some(3)));
    assert_eq!(annotation(&new.metadata, REVISION_ANNOTATION), Some("2"));
    assert_eq!(
        annotation(&new.metadata, CHANGE_CAUSE_ANNOTATION),
        Some("set image nginx:2")
    );
    assert_eq!(annotation(&world.deployment.metadata, REVISION_ANNOTATION), Some("2"));
    world.settle();
    assert_eq!(world.history(), history(&[("nginx:1", "1", 0), ("nginx:2", "2", 3)]));
}

#[test]
fn revisions_follow_templates_and_a_template_that_comes_back_gets_the_next_one() {
    let mut world = World::new(deployment("web", 2, "nginx:1"));
    world.settle();
    world.set_image("nginx:2");
    world.settle();
    world.set_image("nginx:3");
    world.settle();
    assert_eq!(
        world.history(),
        history(&[("nginx:1", "1", 0), ("nginx:2", "2", 0), ("nginx:3", "3", 2)])
    );
    assert_eq!(annotation(&world.deployment.metadata, REVISION_ANNOTATION), Some("3"));

    // `kubectl rollout undo --to-revision=1`: the first template (and its
    // ReplicaSet's annotations) come back; its ReplicaSet is reused.
    let first = world.rs_of("nginx:1").clone();
    world.edit(|d| {
        let mut template = first.spec.template.clone().unwrap();
        template
            .metadata
            .as_mut()
            .unwrap()
            .labels_mut()
            .remove(TEMPLATE_HASH_LABEL);
        d.spec.template = template;
        d.metadata
            .annotations_mut()
            .insert(CHANGE_CAUSE_ANNOTATION.into(), "set image nginx:1".into());
    });
    world.settle();
    assert_eq!(
        world.history(),
        history(&[("nginx:2", "2", 0), ("nginx:3", "3", 0), ("nginx:1", "4", 2)])
    );
    let back = world.rs_of("nginx:1");
    assert_eq!(back.metadata.name, first.metadata.name, "the same ReplicaSet");
    assert_eq!(annotation(&back.metadata, REVISION_HISTORY_ANNOTATION), Some("1"));
    assert_eq!(annotation(&world.deployment.metadata, REVISION_ANNOTATION), Some("4"));
    // Complete. (As in Kubernetes, a Recreate rollout back to an existing ReplicaSet
    // whose old pods all went at once never leaves the finished state: the message
    // still names the ReplicaSet of the rollout before.)
    let done = progressing(&world.deployment);
    assert_eq!(reason_and_message(&done).1, NEW_REPLICA_SET_AVAILABLE);
    assert!(is_complete(&world.deployment, &world.deployment.status));

    // And again: the history grows.
    world.set_image("nginx:2");
    world.settle();
    world.set_image("nginx:1");
    world.settle();
    let back = world.rs_of("nginx:1");
    assert_eq!(annotation(&back.metadata, REVISION_ANNOTATION), Some("6"));
    assert_eq!(annotation(&back.metadata, REVISION_HISTORY_ANNOTATION), Some("1,4"));
    assert_eq!(
        annotation(&world.rs_of("nginx:2").metadata, REVISION_HISTORY_ANNOTATION),
        Some("2")
    );
}

#[test]
fn old_replica_sets_beyond_the_history_limit_go_oldest_first() {
    let mut d = deployment("web", 1, "v1");
    d.spec.revision_history_limit = Some(2);
    let mut world = World::new(d);
    world.settle();
    for image in ["v2", "v3", "v4", "v5"] {
        world.set_image(image);
        world.settle();
    }
    assert_eq!(
        world.history(),
        history(&[("v3", "3", 0), ("v4", "4", 0), ("v5", "5", 1)])
    );

    // Without a limit (the largest i32) nothing goes; with 0, every old one does.
    world.edit(|d| d.spec.revision_history_limit = Some(i32::MAX));
    world.set_image("v6");
    world.settle();
    assert_eq!(world.sets.len(), 4);
    world.edit(|d| d.spec.revision_history_limit = Some(0));
    world.settle();
    assert_eq!(world.history(), history(&[("v6", "6", 1)]));
}

#[test]
fn an_old_replica_set_still_scaling_down_is_not_deleted() {
    let mut d = deployment("web", 1, "v1");
    d.spec.revision_history_limit = Some(0);
    let mut world = World::new(d);
    world.settle();
    world.set_image("v2");
    world.settle();
    assert_eq!(world.sets.len(), 1);
    // An old ReplicaSet with pods left (say, adopted back after a failover) stays.
    let mut old = world.sets[0].clone();
    old.metadata.name = Some("web-old".into());
    old.metadata
        .labels_mut()
        .insert(TEMPLATE_HASH_LABEL.into(), "old".into());
    old.metadata
        .annotations_mut()
        .insert(REVISION_ANNOTATION.into(), "1".into());
    old.spec.replicas = Some(0);
    old.status.replicas = 1;
    let current = world.sets[0].clone();
    let plan = reconcile(&world.deployment, &[&old, &current], at(100));
    assert!(
        plan.actions.iter().all(|a| !matches!(a, Action::DeleteReplicaSet(_))),
        "{:#?}",
        plan.actions
    );
    old.status.replicas = 0;
    old.metadata.generation = Some(3);
    old.status.observed_generation = Some(2);
    let plan = reconcile(&world.deployment, &[&old, &current], at(100));
    assert!(
        plan.actions.iter().all(|a| !matches!(a, Action::DeleteReplicaSet(_))),
        "its last change is not observed yet: {:#?}",
        plan.actions
    );
    old.status.observed_generation = Some(3);
    let plan = reconcile(&world.deployment, &[&old, &current], at(100));
    assert!(
        matches!(plan.actions.as_slice(), [Action::DeleteReplicaSet(rs)] if rs.metadata.name() == "web-old"),
        "{:#?}",
        plan.actions
    );
}

#[test]
fn a_paused_deployment_scales_but_does_not_roll_out_until_resumed() {
    let mut world = World::new(deployment("web", 2, "v1"));
    world.settle();
    world.edit(|d| d.spec.paused = Some(true));
    world.settle();
    let paused = progressing(&world.deployment);
    assert_eq!(
        reason_and_message(&paused),
        ("Unknown", DEPLOYMENT_PAUSED, "Deployment is paused")
    );
    assert_eq!(paused.last_transition_time, paused.last_update_time);

    world.set_image("v2");
    world.edit(|d| d.spec.replicas = Some(4));
    world.settle();
    assert_eq!(world.history(), history(&[("v1", "1", 4)]), "scaled, not rolled out");
    let status = &world.deployment.status;
    assert_eq!(status.observed_generation, world.deployment.metadata.generation);
    assert_eq!((status.replicas, status.updated_replicas), (Some(4), Some(0)));
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(DEPLOYMENT_PAUSED)
    );
    assert_eq!(annotation(&world.deployment.metadata, REVISION_ANNOTATION), Some("1"));

    // A paused rollout never times out.
    world.now = at(100_000);
    let plan = world.pass();
    assert_eq!(plan.requeue, None);
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(DEPLOYMENT_PAUSED)
    );

    world.edit(|d| d.spec.paused = None);
    let plan = world.pass();
    assert!(
        plan.actions.iter().any(|a| matches!(a, Action::UpdateDeployment(d)
            if condition(&d.status, PROGRESSING).and_then(|c| c.reason.as_deref()) == Some(DEPLOYMENT_RESUMED))),
        "{:#?}",
        plan.actions
    );
    world.settle();
    assert_eq!(world.history(), history(&[("v1", "1", 0), ("v2", "2", 4)]));
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(NEW_REPLICA_SET_AVAILABLE)
    );
}

#[test]
fn a_rollout_without_progress_exceeds_its_deadline() {
    let mut d = deployment("web", 2, "v1");
    d.spec.progress_deadline_seconds = Some(30);
    let mut world = World::new(d);
    world.pods_ready = false;
    world.now = at(0);
    world.pods();
    world.pass();
    world.now = at(1);
    world.pods();
    let plan = world.pass();
    let last_update = progressing(&world.deployment).last_update_time.clone().unwrap();
    assert_eq!(last_update, from_system_time(at(1)), "the pods came: progress");
    assert_eq!(plan.requeue, Some(Duration::from_secs(31)));

    world.now = at(20);
    let plan = world.pass();
    assert!(plan.actions.is_empty(), "{:#?}", plan.actions);
    assert_eq!(plan.requeue, Some(Duration::from_secs(12)));

    world.now = at(32);
    world.pass();
    let name = world.sets[0].metadata.name().to_string();
    let timed_out = progressing(&world.deployment);
    assert_eq!(
        reason_and_message(&timed_out),
        (
            "False",
            PROGRESS_DEADLINE_EXCEEDED,
            format!("ReplicaSet \"{name}\" has timed out progressing.").as_str()
        )
    );
    assert_eq!(timed_out.last_transition_time, Some(from_system_time(at(32))));
    assert_eq!(world.pass().requeue, None, "timed out: nothing more to check");

    // Ready pods later still complete the rollout.
    world.pods_ready = true;
    world.now = at(40);
    world.settle();
    assert_eq!(
        reason_and_message(&progressing(&world.deployment)).1,
        NEW_REPLICA_SET_AVAILABLE
    );

    // Without a deadline there is no Progressing condition at all.
    world.edit(|d| d.spec.progress_deadline_seconds = Some(i32::MAX));
    world.settle();
    assert!(condition(&world.deployment.status, PROGRESSING).is_none());
    assert!(condition(&world.deployment.status, AVAILABLE).is_some());
}

#[test]
fn scaling_changes_the_active_replica_set_and_its_annotations() {
    let mut world = World::new(deployment("web", 2, "v1"));
    world.settle();
    world.edit(|d| d.spec.replicas = Some(5));
    let plan = world.pass();
    let Some(Action::UpdateReplicaSet(rs)) = plan.actions.first() else {
        panic!("{:#?}", plan.actions)
    };
    assert_eq!(rs.spec.replicas, Some(5));
    assert_eq!(annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION), Some("5"));
    assert_eq!(annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION), Some("5"));
    world.settle();
    assert_eq!(world.history(), history(&[("v1", "1", 5)]));
    let status = &world.deployment.status;
    assert_eq!((status.replicas, status.available_replicas), (Some(5), Some(5)));

    // A template change and a new scale at once: scaled first, then rolled out.
    world.set_image("v2");
    world.edit(|d| d.spec.replicas = Some(1));
    let plan = world.pass();
    assert!(
        matches!(plan.actions.first(), Some(Action::UpdateReplicaSet(rs)) if image_of(rs) == "v1" && rs.spec.replicas == Some(1)),
        "{:#?}",
        plan.actions
    );
    world.settle();
    assert_eq!(world.history(), history(&[("v1", "1", 0), ("v2", "2", 1)]));
}

#[test]
fn the_new_replica_set_follows_the_deployments_annotations_and_min_ready_seconds() {
    let mut world = World::new(deployment("web", 1, "v1"));
    world.settle();
    world.edit(|d| {
        d.spec.min_ready_seconds = Some(7);
        d.metadata
            .annotations_mut()
            .insert(CHANGE_CAUSE_ANNOTATION.into(), "annotated later".into());
    });
    world.settle();
    let rs = world.rs_of("v1");
    assert_eq!(rs.spec.min_ready_seconds, Some(7));
    assert_eq!(
        annotation(&rs.metadata, CHANGE_CAUSE_ANNOTATION),
        Some("annotated later")
    );
    assert_eq!(annotation(&rs.metadata, REVISION_ANNOTATION), Some("1"));
}

#[test]
fn a_deployment_being_deleted_is_left_to_the_garbage_collector() {
    let mut d = deployment("web", 1, "v1");
    d.metadata.deletion_timestamp = Some(from_system_time(at(0)));
    assert_eq!(reconcile(&d, &[], at(1)), Plan::default());
}

#[test]
fn conditions_change_only_with_their_status_or_reason() {
    let now = from_system_time(at(0));
    let later = from_system_time(at(9));
    let mut status = DeploymentStatus::default();
    set_condition(
        &mut status,
        new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE, "a".into(), &now),
    );
    set_condition(
        &mut status,
        new_condition(PROGRESSING, "True", NEW_REPLICA_SET_CREATED, "b".into(), &now),
    );
    set_condition(
        &mut status,
        new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE, "other".into(), &later),
    );
    assert_eq!(
        available_of(&status).message.as_deref(),
        Some("a"),
        "same status and reason"
    );
    set_condition(
        &mut status,
        new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "c".into(), &later),
    );
    let types: Vec<&str> = status.conditions.iter().flatten().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, [PROGRESSING, AVAILABLE], "a replaced condition goes last");
    assert_eq!(available_of(&status).last_transition_time, Some(later.clone()));
    set_condition(
        &mut status,
        new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, "d".into(), &later),
    );
    let p = condition(&status, PROGRESSING).unwrap();
    assert_eq!(
        (p.last_transition_time.clone(), p.last_update_time.clone()),
        (Some(now), Some(later))
    );
}

fn available_of(status: &DeploymentStatus) -> &DeploymentCondition {
    condition(status, AVAILABLE).unwrap()
}
