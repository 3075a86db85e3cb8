//! `berth.io/auto-rollback`: back to the last revision that became available when
//! a rollout exceeds its deadline, once, with a Warning saying why.

use super::*;
use crate::deployment::revision::BECAME_AVAILABLE_ANNOTATION;

fn auto(replicas: i32) -> World {
    let mut d = deployment("web", replicas, "v1");
    d.spec.strategy = None; // RollingUpdate, 25% each
    d.spec.progress_deadline_seconds = Some(30);
    d.metadata
        .annotations_mut()
        .insert(AUTO_ROLLBACK_ANNOTATION.into(), "true".into());
    World::new(d)
}

/// Ticks of a second, pods one step further, `n` times.
fn ticks(world: &mut World, n: usize, works: impl Fn(&str) -> bool) {
    for _ in 0..n {
        world.now += Duration::from_secs(1);
        world.pods_step(&works);
        world.pass();
    }
}

#[test]
fn a_rollout_past_its_deadline_goes_back_to_the_last_available_revision_once() {
    let mut world = auto(4);
    ticks(&mut world, 10, |_| true);
    assert!(
        annotation(&world.rs_of("v1").metadata, BECAME_AVAILABLE_ANNOTATION).is_some(),
        "a complete rollout marks its ReplicaSet"
    );
    world.set_image("v2");
    ticks(&mut world, 10, |_| true);
    world.set_image("broken");
    ticks(&mut world, 25, |image| image != "broken");
    assert!(world.rollbacks.is_empty(), "within the deadline: {:?}", world.rollbacks);
    assert_eq!(
        world.deployment.spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("broken")
    );

    ticks(&mut world, 15, |image| image != "broken");
    let broken = world.rs_of("broken").metadata.name().to_string();
    assert_eq!(
        world.rollbacks,
        [format!(
            "Rolled back deployment \"web\" to revision 2: replica set \"{broken}\" (revision 3) exceeded its \
             progress deadline"
        )]
    );
    let template = &world.deployment.spec.template;
    assert_eq!(
        template.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some("v2")
    );
    assert!(
        !template
            .metadata
            .as_ref()
            .unwrap()
            .labels()
            .contains_key(TEMPLATE_HASH_LABEL),
        "the template as the user wrote it"
    );
    assert_eq!(
        annotation(&world.deployment.metadata, CHANGE_CAUSE_ANNOTATION),
        Some("set image v2"),
        "the cause comes back with the revision"
    );
    ticks(&mut world, 20, |image| image != "broken");
    assert_eq!(
        world.history(),
        history(&[("v1", "1", 0), ("broken", "3", 0), ("v2", "4", 4)]),
        "v2 is back, as revision 4"
    );
    assert!(is_complete(&world.deployment, &world.deployment.status));
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(NEW_REPLICA_SET_AVAILABLE)
    );
    assert_eq!(world.rollbacks.len(), 1, "once");
}

#[test]
fn a_revision_that_once_became_available_is_not_rolled_back_from() {
    let mut world = auto(2);
    ticks(&mut world, 10, |_| true);
    world.set_image("v2");
    ticks(&mut world, 10, |_| true);
    // v2 worked; then a dependency goes down and only v1 could get ready. A restart
    // (a new template, never available) stalls: it goes back to v2, which stalls
    // too, but became available once: no second rollback, no flapping.
    world.edit(|d| {
        d.spec
            .template
            .metadata
            .get_or_insert_default()
            .annotations_mut()
            .insert(
                "kubectl.kubernetes.io/restartedAt".into(),
                "2027-01-15T10:00:00Z".into(),
            );
    });
    ticks(&mut world, 180, |image| image == "v1");
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(PROGRESS_DEADLINE_EXCEEDED)
    );
    assert_eq!(world.rollbacks.len(), 1, "{:?}", world.rollbacks);
    assert!(world.rollbacks[0].contains("to revision 2"), "{:?}", world.rollbacks);
}

#[test]
fn without_an_available_revision_or_the_annotation_nothing_rolls_back() {
    // The very first revision never gets ready: nothing to go back to.
    let mut world = auto(2);
    ticks(&mut world, 60, |_| false);
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(PROGRESS_DEADLINE_EXCEEDED)
    );
    assert!(world.rollbacks.is_empty());

    // A good revision, then a bad one, with the annotation off.
    let mut world = auto(2);
    world
        .deployment
        .metadata
        .annotations_mut()
        .insert(AUTO_ROLLBACK_ANNOTATION.into(), "false".into());
    ticks(&mut world, 10, |_| true);
    world.set_image("broken");
    ticks(&mut world, 60, |image| image != "broken");
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(PROGRESS_DEADLINE_EXCEEDED)
    );
    assert!(world.rollbacks.is_empty());
}

#[test]
fn the_mark_is_the_controllers_own_and_not_copied_from_the_deployment() {
    // `kubectl rollout undo` copies a ReplicaSet's annotations to the Deployment:
    // the mark there must not make a new revision look available.
    let mut world = auto(2);
    ticks(&mut world, 10, |_| true);
    world
        .deployment
        .metadata
        .annotations_mut()
        .insert(BECAME_AVAILABLE_ANNOTATION.into(), "2027-01-15T10:00:00Z".into());
    world.set_image("broken");
    ticks(&mut world, 5, |image| image != "broken");
    assert_eq!(
        annotation(&world.rs_of("broken").metadata, BECAME_AVAILABLE_ANNOTATION),
        None
    );
}

#[test]
fn a_template_come_back_after_a_timeout_starts_a_rollout_with_a_fresh_deadline() {
    // Two broken pods next to one good: going back to v1 moves no count (one pod
    // fewer updated, one more old), which Kubernetes would read as no progress,
    // still timed out.
    let mut d = rolling("web", 2, "v1", IntOrString::Int(1), IntOrString::Int(1));
    d.spec.progress_deadline_seconds = Some(10);
    let mut world = World::new(d);
    ticks(&mut world, 10, |_| true);
    world.set_image("broken");
    ticks(&mut world, 30, |image| image != "broken");
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(PROGRESS_DEADLINE_EXCEEDED)
    );
    assert_eq!(world.rs_of("broken").status.replicas, 2);

    world.set_image("v1");
    world.pass();
    let condition = progressing(&world.deployment);
    let message = format!("Found new replica set {:?}", world.rs_of("v1").metadata.name());
    assert_eq!(
        reason_and_message(&condition),
        ("True", FOUND_NEW_REPLICA_SET, message.as_str())
    );
    ticks(&mut world, 20, |image| image != "broken");
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(NEW_REPLICA_SET_AVAILABLE)
    );
}
