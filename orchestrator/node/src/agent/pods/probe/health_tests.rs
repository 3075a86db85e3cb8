//! The probes' pure part with a made-up clock: thresholds, startup gating, the first
//! run's delay, results into the memory (stale ones dropped, kills once, graces), and
//! the statuses that follow.

use std::time::Duration;

use super::health::{Health, Verdict, first_run};
use super::results::take;
use super::workers::ProbeResult;
use super::{Outcome, ProbeKind};
use crate::agent::pods::fixtures::{
    conditions_of, container_statuses, desired, later, memory, now, plan_and_start, pod,
};
use crate::agent::pods::plan::{Action, Observed};
use crate::agent::pods::status::pod_status;
use berth_api::objects::{Container, Pod};
use berth_api::probes::{ExecAction, Probe};

fn probe(success_threshold: i32, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        success_threshold: Some(success_threshold),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn container_with(liveness: Option<Probe>, readiness: Option<Probe>, startup: Option<Probe>) -> Container {
    Container {
        name: "main".into(),
        liveness_probe: liveness,
        readiness_probe: readiness,
        startup_probe: startup,
        ..Default::default()
    }
}

#[test]
fn readiness_flips_only_after_its_thresholds_in_a_row() {
    let c = container_with(None, Some(probe(2, 3)), None);
    let mut health = Health::default();
    assert!(!health.is_ready(&c, "r1"), "a readiness probe starts at failure");
    let steps = [
        (true, false),
        (false, false),
        (true, false),
        (true, true),
        (false, true),
        (false, true),
        (true, true),
        (false, true),
        (false, true),
        (false, false),
        (true, false),
        (true, true),
    ];
    for (i, (success, ready)) in steps.into_iter().enumerate() {
        assert_eq!(health.record(&c, "r1", ProbeKind::Readiness, success), Verdict::None);
        assert_eq!(health.is_ready(&c, "r1"), ready, "step {i}");
    }
}

#[test]
fn liveness_kills_after_its_failure_threshold_once() {
    let c = container_with(Some(probe(1, 3)), None, None);
    let mut health = Health::default();
    assert!(health.is_ready(&c, "r1"), "no readiness probe: ready once running");
    assert_eq!(health.record(&c, "r1", ProbeKind::Liveness, false), Verdict::None);
    assert_eq!(health.record(&c, "r1", ProbeKind::Liveness, false), Verdict::None);
    // A success in between starts the count over.
    assert_eq!(health.record(&c, "r1", ProbeKind::Liveness, true), Verdict::None);
    assert_eq!(health.record(&c, "r1", ProbeKind::Liveness, false), Verdict::None);
    assert_eq!(health.record(&c, "r1", ProbeKind::Liveness, false), Verdict::None);
    assert_eq!(
        health.record(&c, "r1", ProbeKind::Liveness, false),
        Verdict::Kill(ProbeKind::Liveness)
    );
    health.killing("r1", ProbeKind::Liveness);
    assert!(health.is_killed("r1"));
    assert_eq!(health.record(&c, "r1", ProbeKind::Liveness, false), Verdict::None);
    assert_eq!(
        health.wanted(&c, "r1"),
        vec![],
        "a container being killed is not probed"
    );
    // The next run starts afresh.
    assert!(!health.is_killed("r2"));
    assert_eq!(health.wanted(&c, "r2"), vec![ProbeKind::Liveness]);
    assert_eq!(health.record(&c, "r2", ProbeKind::Liveness, false), Verdict::None);
}

#[test]
fn a_startup_probe_gates_the_others_and_kills_when_it_fails() {
    let c = container_with(Some(probe(1, 1)), Some(probe(1, 1)), Some(probe(1, 2)));
    let mut health = Health::default();
    assert_eq!(health.wanted(&c, "r1"), vec![ProbeKind::Startup]);
    assert!(!health.is_started(&c, "r1"));
    assert!(!health.is_ready(&c, "r1"));
    assert_eq!(health.record(&c, "r1", ProbeKind::Startup, true), Verdict::None);
    assert!(health.is_started(&c, "r1"));
    assert!(
        !health.is_ready(&c, "r1"),
        "started, but its readiness probe has not passed"
    );
    assert_eq!(health.wanted(&c, "r1"), vec![ProbeKind::Liveness, ProbeKind::Readiness]);
    health.record(&c, "r1", ProbeKind::Readiness, true);
    assert!(health.is_ready(&c, "r1"));

    // A new run is not started until its own startup probe passes; failing it
    // failureThreshold times in a row kills the container.
    assert!(!health.is_started(&c, "r2"));
    assert_eq!(health.record(&c, "r2", ProbeKind::Startup, false), Verdict::None);
    assert_eq!(
        health.record(&c, "r2", ProbeKind::Startup, false),
        Verdict::Kill(ProbeKind::Startup)
    );

    // Without a readiness probe, a started container is ready.
    let only_startup = container_with(None, None, Some(probe(1, 3)));
    let mut health = Health::default();
    assert!(!health.is_ready(&only_startup, "r1"));
    health.record(&only_startup, "r1", ProbeKind::Startup, true);
    assert!(health.is_ready(&only_startup, "r1"));
    assert_eq!(health.wanted(&only_startup, "r1"), vec![]);
}

#[test]
fn the_first_run_waits_out_the_initial_delay_from_the_container_start() {
    let t = now();
    let delay = Duration::from_secs(15);
    assert_eq!(first_run(t, t.wall, delay), t.instant + delay);
    // Started 10 s ago: 5 s left.
    let t10 = later(t, Duration::from_secs(10));
    assert_eq!(first_run(t10, t.wall, delay), t10.instant + Duration::from_secs(5));
    // Long past (a probe that begins after startup succeeded, or after a restart).
    let t60 = later(t, Duration::from_secs(60));
    assert_eq!(first_run(t60, t.wall, delay), t60.instant);
    assert_eq!(first_run(t, t.wall, Duration::ZERO), t.instant);
}

fn probed_pod(grace: Option<i64>) -> Pod {
    let mut p = pod("web", "Always");
    let c = &mut p.spec.containers[0];
    c.liveness_probe = Some(Probe {
        termination_grace_period_seconds: grace,
        ..probe(1, 2)
    });
    c.readiness_probe = Some(probe(1, 1));
    p
}

fn result(id: &str, kind: ProbeKind, success: bool) -> ProbeResult {
    ProbeResult {
        pod_uid: "uid-web".into(),
        container: "main".into(),
        id: id.into(),
        kind,
        outcome: Outcome {
            success,
            message: if success { "" } else { "no\n" }.into(),
        },
    }
}

#[test]
fn results_drive_readiness_and_a_liveness_kill_through_the_memory() {
    let web = probed_pod(None);
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &desired(&[&web]), &Observed::default(), t, "c1");
    let status =
        |memory: &crate::agent::pods::memory::Memory| pod_status(&memory.pods["uid-web"], "10.0.0.1", t.instant);
    let not_ready = status(&memory);
    assert!(!container_statuses(&not_ready)[0].ready);
    let conditions: Vec<(&str, &str)> = conditions_of(&not_ready)
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        conditions,
        [
            ("Ready", "False"),
            ("ContainersReady", "False"),
            ("Initialized", "True")
        ]
    );
    assert_eq!(
        conditions_of(&not_ready)[0].message.as_deref(),
        Some("containers with unready status: [main]")
    );

    assert_eq!(
        take(&mut memory, vec![result("c1", ProbeKind::Readiness, true)]),
        vec![]
    );
    let ready = status(&memory);
    assert!(container_statuses(&ready)[0].ready);
    assert!(conditions_of(&ready).iter().all(|c| c.status == "True"));

    // A stale result (an earlier run's) changes nothing.
    assert_eq!(
        take(&mut memory, vec![result("c0", ProbeKind::Readiness, false)]),
        vec![]
    );
    assert!(container_statuses(&status(&memory))[0].ready);

    let actions = take(
        &mut memory,
        vec![
            result("c1", ProbeKind::Readiness, false),
            result("c1", ProbeKind::Liveness, false),
            result("c1", ProbeKind::Liveness, false),
            result("c1", ProbeKind::Liveness, false),
        ],
    );
    let unhealthy: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Unhealthy { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        unhealthy,
        [
            "Readiness probe failed: no\n",
            "Liveness probe failed: no\n",
            "Liveness probe failed: no\n"
        ],
        "the third liveness failure comes after the kill: not counted"
    );
    let kills: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::KillUnhealthy { id, grace, message, .. } => Some((id.as_str(), *grace, message.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        kills,
        [(
            "c1",
            Duration::from_secs(2),
            "Container main failed liveness probe, will be restarted"
        )],
        "killed once, with the pod's grace"
    );
    assert!(!container_statuses(&status(&memory))[0].ready);
}

#[test]
fn a_probe_grace_wins_over_the_pod_grace() {
    let web = probed_pod(Some(7));
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &desired(&[&web]), &Observed::default(), t, "c1");
    let actions = take(
        &mut memory,
        vec![
            result("c1", ProbeKind::Liveness, false),
            result("c1", ProbeKind::Liveness, false),
        ],
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::KillUnhealthy { grace, .. } if *grace == Duration::from_secs(7))),
        "{actions:?}"
    );
}
