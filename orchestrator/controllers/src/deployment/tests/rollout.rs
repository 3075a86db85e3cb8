//! Rollouts: the template hash, a new Deployment, progress and its conditions,
//! Recreate ordering, pause, the progress deadline, deletion.

use super::*;

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
fn recreate_waits_for_old_pods_still_terminating() {
    let mut world = World::new(deployment("web", 2, "v1"));
    world.settle();
    world.set_image("v2");
    world.pass();
    world.pods();
    // The ReplicaSet's status leaves out its pods that are terminating.
    let old_uid = world.rs_of("v1").metadata.uid().to_string();
    world.terminating.insert(old_uid, 2);
    let plan = world.pass();
    assert!(
        plan.actions.iter().all(|a| !matches!(a, Action::CreateReplicaSet(_))),
        "{:#?}",
        plan.actions
    );
    assert_eq!(
        plan.requeue,
        Some(Duration::from_secs(1)),
        "no pod event wakes the controller"
    );
    world.terminating.clear();
    let plan = world.pass();
    assert!(
        matches!(plan.actions.first(), Some(Action::CreateReplicaSet(_))),
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
