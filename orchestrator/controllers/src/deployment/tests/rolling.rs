//! RollingUpdate: the bounds of a rollout as pods become ready one at a time, the
//! strategy's numbers, proportional scaling midway, pause, the deadline, cleanup.

use super::*;
use crate::deployment::strategy::{max_surge, max_unavailable};

fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}

fn pct(text: &str) -> IntOrString {
    IntOrString::String(text.into())
}

/// Ticks of a second (the pods one step further, then a pass) until the rollout
/// is complete, checking after each that no more than `replicas + maxSurge` pods
/// are wanted and no fewer than `replicas - maxUnavailable` are available; returns
/// the most pods wanted at once and the fewest available.
fn roll(world: &mut World, works: impl Fn(&str) -> bool) -> (i32, i32) {
    let d = world.deployment.clone();
    let replicas = spec_replicas(d.spec.replicas);
    let (most, least) = (replicas + max_surge(&d), replicas - max_unavailable(&d));
    let (mut most_seen, mut least_seen) = (0, i32::MAX);
    for _ in 0..200 {
        world.now += Duration::from_secs(1);
        world.pods_step(&works);
        let (_, available) = world.counts();
        least_seen = least_seen.min(available);
        assert!(
            available >= least,
            "{available} available, below {least}: {:#?}",
            world.sets
        );
        let plan = world.pass();
        let (wanted, _) = world.counts();
        most_seen = most_seen.max(wanted);
        assert!(wanted <= most, "{wanted} pods wanted, above {most}: {:#?}", world.sets);
        if plan.actions.is_empty() && is_complete(&world.deployment, &world.deployment.status) {
            return (most_seen, least_seen);
        }
    }
    panic!("the rollout did not finish: {:#?}\n{:#?}", world.deployment, world.sets);
}

#[test]
fn the_strategy_resolves_surge_up_and_unavailability_down() {
    let of = |replicas, surge, unavailable| {
        let d = rolling("web", replicas, "v1", surge, unavailable);
        (max_surge(&d), max_unavailable(&d))
    };
    assert_eq!(of(10, pct("25%"), pct("25%")), (3, 2));
    assert_eq!(of(1, pct("25%"), pct("25%")), (1, 0));
    assert_eq!(of(4, int(0), pct("0%")), (0, 1), "both 0: one may be unavailable");
    assert_eq!(of(3, int(0), int(5)), (0, 3), "never more unavailable than all");
    assert_eq!(of(0, int(1), int(1)), (1, 0));
    let mut defaulted = deployment("web", 8, "v1");
    defaulted.spec.strategy = None;
    assert_eq!((max_surge(&defaulted), max_unavailable(&defaulted)), (2, 2));
    assert_eq!(
        (
            max_surge(&deployment("web", 8, "v1")),
            max_unavailable(&deployment("web", 8, "v1"))
        ),
        (0, 0)
    );
}

#[test]
fn a_rolling_update_stays_within_its_surge_and_unavailability() {
    let cases = [
        (4, int(1), int(0)),
        (4, int(0), int(1)),
        (10, pct("25%"), pct("25%")),
        (3, pct("50%"), pct("0%")),
        (5, int(2), int(2)),
        (1, int(1), int(0)),
    ];
    for (replicas, surge, unavailable) in cases {
        let case = format!("{replicas} replicas, surge {surge:?}, unavailable {unavailable:?}");
        let mut world = World::new(rolling("web", replicas, "v1", surge, unavailable));
        world.settle();
        world.set_image("v2");
        let d = world.deployment.clone();
        let (most, least) = roll(&mut world, |_| true);
        // The surge was used: the rollout went as fast as its bounds allow.
        assert_eq!(most, replicas + max_surge(&d), "{case}");
        assert!(least >= replicas - max_unavailable(&d), "{case}");
        assert_eq!(
            world.history(),
            history(&[("v1", "1", 0), ("v2", "2", replicas)]),
            "{case}"
        );
        assert_eq!(
            progressing(&world.deployment).reason.as_deref(),
            Some(NEW_REPLICA_SET_AVAILABLE),
            "{case}"
        );
        assert_eq!(available(&world.deployment).status, "True", "{case}");
    }
}

#[test]
fn the_first_step_surges_the_new_replica_set_and_keeps_every_old_pod() {
    let mut world = World::new(rolling("web", 4, "v1", int(1), int(0)));
    world.settle();
    world.set_image("v2");
    let plan = world.pass();
    let [Action::CreateReplicaSet(new), Action::UpdateDeployment(d)] = plan.actions.as_slice() else {
        panic!("{:#?}", plan.actions)
    };
    assert_eq!((image_of(new), new.spec.replicas), ("v2", Some(1)));
    assert_eq!(annotation(&new.metadata, DESIRED_REPLICAS_ANNOTATION), Some("4"));
    assert_eq!(annotation(&new.metadata, MAX_REPLICAS_ANNOTATION), Some("5"));
    assert_eq!(
        (
            d.status.replicas,
            d.status.updated_replicas,
            d.status.available_replicas
        ),
        (Some(4), Some(0), Some(4))
    );
    // The new pod is not ready: nothing more moves.
    world.pods_step(|image| image == "v1");
    assert!(
        world
            .pass()
            .actions
            .iter()
            .all(|a| matches!(a, Action::UpdateDeployment(_)))
    );
    assert_eq!(world.history(), history(&[("v1", "1", 4), ("v2", "2", 1)]));
    // Ready: one old pod goes, then one more new one comes.
    world.pods_step(|_| true);
    world.pass();
    assert_eq!(world.history(), history(&[("v1", "1", 3), ("v2", "2", 1)]));
    world.pods_step(|_| true);
    world.pass();
    assert_eq!(world.history(), history(&[("v1", "1", 3), ("v2", "2", 2)]));
}

#[test]
fn a_rollout_of_a_template_that_never_gets_ready_keeps_the_old_pods_and_times_out() {
    let mut d = rolling("web", 3, "v1", int(1), int(0));
    d.spec.progress_deadline_seconds = Some(30);
    let mut world = World::new(d);
    world.settle();
    world.set_image("broken");
    for _ in 0..40 {
        world.now += Duration::from_secs(1);
        world.pods_step(|image| image != "broken");
        world.pass();
        assert_eq!(world.counts().1, 3, "every old pod stays available");
    }
    assert_eq!(world.history(), history(&[("v1", "1", 3), ("broken", "2", 1)]));
    let timed_out = progressing(&world.deployment);
    assert_eq!(
        (timed_out.status.as_str(), timed_out.reason.as_deref()),
        ("False", Some(PROGRESS_DEADLINE_EXCEEDED))
    );
    assert_eq!(available(&world.deployment).status, "True", "the old pods serve");
    assert!(world.rollbacks.is_empty(), "no rollback without the annotation");
}

#[test]
fn unavailable_old_pods_go_first_so_they_cannot_stall_a_rollout() {
    // Two of four old pods are not available: already below the 3 that must be.
    // Scaling down an available one is not allowed, but an unavailable one costs
    // nothing, and makes room for a new pod.
    let mut world = World::new(rolling("web", 4, "v1", int(0), int(1)));
    world.settle();
    world.sets[0].status.ready_replicas = Some(2);
    world.sets[0].status.available_replicas = Some(2);
    world.set_image("v2");
    world.pass();
    assert_eq!(world.history(), history(&[("v1", "1", 3), ("v2", "2", 0)]));
    world.pass();
    assert_eq!(world.history(), history(&[("v1", "1", 3), ("v2", "2", 1)]));
}

#[test]
fn scaling_midway_scales_new_and_old_in_proportion() {
    // Kubernetes' documented example: 10 replicas, maxSurge 3, maxUnavailable 2, a
    // rollout stuck on a template whose pods never get ready, then scaled to 15.
    let mut world = World::new(rolling("web", 10, "v1", int(3), int(2)));
    world.settle();
    world.set_image("stuck");
    for _ in 0..5 {
        world.now += Duration::from_secs(1);
        world.pods_step(|image| image != "stuck");
        world.pass();
    }
    assert_eq!(world.history(), history(&[("v1", "1", 8), ("stuck", "2", 5)]));
    world.edit(|d| d.spec.replicas = Some(15));
    world.pods_step(|image| image != "stuck");
    world.pass();
    assert_eq!(
        world.history(),
        history(&[("v1", "1", 11), ("stuck", "2", 7)]),
        "18 pods (15 + 3 surge), shared as 8:5 was"
    );
    for rs in &world.sets {
        assert_eq!(annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION), Some("15"));
        assert_eq!(annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION), Some("18"));
    }
    // Scaled down again, in proportion too; then the stuck image is fixed.
    world.edit(|d| d.spec.replicas = Some(5));
    world.pods_step(|image| image != "stuck");
    world.pass();
    let (wanted, _) = world.counts();
    assert_eq!(wanted, 8, "5 + 3 surge: {:?}", world.history());
    assert!(world.history().iter().all(|(_, _, n)| *n > 0), "{:?}", world.history());
    roll(&mut world, |_| true);
    assert_eq!(world.history(), history(&[("v1", "1", 0), ("stuck", "2", 5)]));
}

#[test]
fn a_paused_rollout_holds_its_ground_until_resumed() {
    let mut world = World::new(rolling("web", 4, "v1", int(1), int(0)));
    world.settle();
    world.set_image("v2");
    world.pass();
    world.edit(|d| d.spec.paused = Some(true));
    for _ in 0..10 {
        world.now += Duration::from_secs(1);
        world.pods_step(|_| true);
        world.pass();
    }
    assert_eq!(
        world.history(),
        history(&[("v1", "1", 4), ("v2", "2", 1)]),
        "paused midway"
    );
    assert_eq!(
        progressing(&world.deployment).reason.as_deref(),
        Some(DEPLOYMENT_PAUSED)
    );
    world.edit(|d| d.spec.paused = None);
    roll(&mut world, |_| true);
    assert_eq!(world.history(), history(&[("v1", "1", 0), ("v2", "2", 4)]));
}

#[test]
fn a_finished_rolling_update_keeps_only_the_history_limit() {
    let mut d = rolling("web", 2, "v1", int(1), int(0));
    d.spec.revision_history_limit = Some(1);
    let mut world = World::new(d);
    world.settle();
    for image in ["v2", "v3", "v4"] {
        world.set_image(image);
        roll(&mut world, |_| true);
        world.settle();
    }
    assert_eq!(world.history(), history(&[("v3", "3", 0), ("v4", "4", 2)]));
}
