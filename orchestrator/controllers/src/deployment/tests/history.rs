//! Revisions and the revision history: revisions across templates, the history
//! limit, scaling and the annotations a new ReplicaSet takes.

use super::*;

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
