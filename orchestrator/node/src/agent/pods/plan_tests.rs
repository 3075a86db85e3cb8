//! The plan with a made-up clock and made-up observations: no runtime, no store, no
//! waiting.

use std::time::Duration;

use super::fixtures::*;
use super::memory::Memory;
use super::plan::{Action, DEFAULT_GRACE, Observed, StopReason, Termination, plan};
use berth_api::objects::{ContainerState as ApiState, ContainerStateTerminated, ContainerStatus};
use berth_api::time::{from_system_time, parse_rfc3339};

#[test]
fn a_new_pod_starts_each_container_once_with_its_spec() {
    let web = pod_of("web", "", &["a", "b"]);
    let mut memory = memory();
    let t = now();
    let actions = plan(&mut memory, &desired(&[&web]), &Observed::default(), t);
    assert_eq!(starts(&actions), vec!["default/web/a", "default/web/b"]);
    let Action::Start { pod_uid, spec, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(pod_uid, "uid-web");
    assert_eq!(spec.argv, vec!["serve", "a"]);
    assert!(
        spec.env.contains(&("BERTH_POD_NAME".into(), "web".into())),
        "{:?}",
        spec.env
    );
    let pending = status_of(&memory, &web, t);
    assert_eq!(phase_of(&pending), "Pending");
    assert_eq!(
        waiting_of(&container_statuses(&pending)[0]).unwrap().reason.as_deref(),
        Some("ContainerCreating")
    );

    for (name, id) in [("a", "ida"), ("b", "idb")] {
        memory
            .pods
            .get_mut("uid-web")
            .unwrap()
            .containers
            .get_mut(name)
            .unwrap()
            .started(id.into(), t);
    }
    let seen = observed(&[("ida", running(t)), ("idb", running(t))]);
    assert_eq!(plan(&mut memory, &desired(&[&web]), &seen, later(t, BASE)), vec![]);
    let status = status_of(&memory, &web, t);
    assert_eq!(phase_of(&status), "Running");
    assert_eq!(conditions_of(&status)[0].status, "True");
    assert_eq!(json_time(status.start_time.as_ref()), "2023-11-14T22:13:20Z");
    assert!(
        container_statuses(&status)
            .iter()
            .all(|c| c.ready && c.restart_count == 0)
    );
}

#[test]
fn restart_policy_decides_by_exit_code() {
    // (restartPolicy, exit code, restarted?)
    let table = [
        ("Always", 0, true),
        ("Always", 3, true),
        ("", 0, true),
        ("OnFailure", 0, false),
        ("OnFailure", 3, true),
        ("Never", 0, false),
        ("Never", 4, false),
    ];
    for (policy, exit_code, restarts) in table {
        let case = format!("{policy:?} exit {exit_code}");
        let p = pod("p", policy);
        let mut memory = memory();
        let t = now();
        plan_and_start(&mut memory, &desired(&[&p]), &Observed::default(), t, "c1");
        let end = later(t, Duration::from_secs(1));
        let actions = plan(
            &mut memory,
            &desired(&[&p]),
            &observed(&[("c1", exited(exit_code, t, Duration::from_secs(1)))]),
            end,
        );
        assert_eq!(
            actions,
            vec![Action::Remove {
                pod: "default/p".into(),
                handler: "fake".into(),
                pod_uid: "uid-p".into(),
                container: "main".into(),
                id: "c1".into(),
                exit_code,
                backing_off: restarts,
            }],
            "{case}: removed, not restarted in the same pass"
        );
        let c = &memory.pods["uid-p"].containers["main"];
        assert_eq!(c.done, !restarts, "{case}");
        assert_eq!(c.next_start, restarts.then(|| end.instant + BASE), "{case}");
        let restarted = starts(&plan(
            &mut memory,
            &desired(&[&p]),
            &Observed::default(),
            later(end, BASE),
        ));
        assert_eq!(restarted.len(), usize::from(restarts), "{case}: after the back-off");
    }
}

#[test]
fn back_off_doubles_from_its_base_up_to_five_minutes() {
    let p = pod("crash", "Always");
    let pods = desired(&[&p]);
    let mut memory = memory();
    let mut t = now();
    plan_and_start(&mut memory, &pods, &Observed::default(), t, "c0");
    let mut waits = Vec::new();
    for run in 0..8 {
        let id = format!("c{run}");
        let seen = observed(&[(id.as_str(), exited(3, t, Duration::ZERO))]);
        plan(&mut memory, &pods, &seen, t);
        let next = memory.pods["uid-crash"].containers["main"].next_start.unwrap();
        let wait = next - t.instant;
        waits.push(wait.as_secs());
        let early = later(t, wait - Duration::from_millis(1));
        assert_eq!(
            starts(&plan(&mut memory, &pods, &Observed::default(), early)),
            Vec::<String>::new(),
            "run {run}: too early"
        );
        t = later(t, wait);
        let actions = plan_and_start(&mut memory, &pods, &Observed::default(), t, &format!("c{}", run + 1));
        assert_eq!(starts(&actions).len(), 1, "run {run}: due");
    }
    assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(memory.pods["uid-crash"].containers["main"].restart_count, 8);
}

#[test]
fn a_run_of_ten_minutes_starts_the_back_off_over() {
    let p = pod("p", "Always");
    let pods = desired(&[&p]);
    let mut memory = memory();
    let mut t = now();
    plan_and_start(&mut memory, &pods, &Observed::default(), t, "c0");
    for (run, ran_secs, wait_secs) in [(0, 1, 10), (1, 1, 20), (2, 1, 40), (3, 599, 80), (4, 600, 10)] {
        let id = format!("c{run}");
        t = later(t, Duration::from_secs(ran_secs));
        let seen = observed(&[(id.as_str(), exited(1, t, Duration::from_secs(ran_secs)))]);
        plan(&mut memory, &pods, &seen, t);
        let wait = memory.pods["uid-p"].containers["main"].next_start.unwrap() - t.instant;
        assert_eq!(wait.as_secs(), wait_secs, "run {run} of {ran_secs}s");
        t = later(t, wait);
        plan_and_start(&mut memory, &pods, &Observed::default(), t, &format!("c{}", run + 1));
    }
}

#[test]
fn a_deleted_or_unbound_pod_is_stopped_with_its_grace_and_forgotten() {
    let mut deleted = pod("deleted", "");
    let unbound = pod("unbound", "");
    let mut no_grace = pod("no-grace", "");
    no_grace.spec.termination_grace_period_seconds = None;
    let pods = desired(&[&deleted, &unbound, &no_grace]);
    let mut memory = memory();
    let t = now();
    plan(&mut memory, &pods, &Observed::default(), t);
    for (uid, id) in [("uid-deleted", "d1"), ("uid-unbound", "u1"), ("uid-no-grace", "n1")] {
        memory
            .pods
            .get_mut(uid)
            .unwrap()
            .containers
            .get_mut("main")
            .unwrap()
            .started(id.into(), t);
    }
    deleted.metadata.deletion_timestamp = Some(from_system_time(parse_rfc3339("2023-11-14T22:13:20Z").unwrap()));
    let actions = plan(&mut memory, &desired(&[&deleted]), &Observed::default(), t);
    let stop = |name: &str, id: &str, grace: Duration| Action::Stop {
        pod: format!("default/{name}"),
        handler: "fake".into(),
        teardown_sandbox_of: None,
        ids: vec![id.into()],
        containers: vec!["main".into()],
        grace,
        remove_logs_of: Some(format!("uid-{name}")),
        reason: StopReason::PodGone,
        termination: None,
    };
    let mut stop_deleted = stop("deleted", "d1", Duration::from_secs(2));
    if let Action::Stop { termination, .. } = &mut stop_deleted {
        *termination = Some(Box::new(Termination {
            pod_uid: "uid-deleted".into(),
            pre_stop: Default::default(),
            address: None,
            sidecars: Vec::new(),
        }));
    }
    assert_eq!(
        actions,
        vec![
            stop_deleted,
            stop("no-grace", "n1", DEFAULT_GRACE),
            stop("unbound", "u1", Duration::from_secs(2)),
        ]
    );
    assert!(memory.pods.is_empty());
    assert_eq!(
        plan(&mut memory, &desired(&[&deleted]), &Observed::default(), t),
        vec![],
        "stopped once, and the object stays while it stops"
    );
    memory.terminating.remove("uid-deleted");
    assert_eq!(
        plan(&mut memory, &desired(&[&deleted]), &Observed::default(), t),
        vec![Action::DeletePod {
            namespace: "default".into(),
            name: "deleted".into(),
            uid: "uid-deleted".into()
        }],
        "removed once stopped"
    );
}

#[test]
fn a_restarted_agent_adopts_what_runs_and_stops_the_rest() {
    let t = now();
    let mut keep = pod("keep", "");
    keep.status.start_time = Some(from_system_time(parse_rfc3339("2023-01-01T00:00:00Z").unwrap()));
    keep.status.container_statuses = Some(vec![ContainerStatus {
        name: "main".into(),
        restart_count: 2,
        ..Default::default()
    }]);
    let gone = pod("gone", "");
    let pods = desired(&[&keep]);
    let seen = Observed {
        found: vec![
            found(&keep, "main", "k1", running(t)),
            found(&keep, "main", "k2", running(t)),
            found(&gone, "main", "g1", running(t)),
        ],
        found_handlers: Default::default(),
        networks: Vec::new(),
        states: [("k1", running(t)), ("k2", running(t)), ("g1", running(t))]
            .into_iter()
            .map(|(id, s)| (id.to_owned(), Ok(s)))
            .collect(),
    };
    let mut memory = Memory::new(BASE, "fake");
    let actions = plan(&mut memory, &pods, &seen, t);
    let stop = |pod: &str, id: &str, logs: Option<&str>, reason| Action::Stop {
        pod: pod.into(),
        handler: "fake".into(),
        teardown_sandbox_of: None,
        ids: vec![id.into()],
        containers: vec!["main".into()],
        grace: DEFAULT_GRACE,
        remove_logs_of: logs.map(str::to_owned),
        reason,
        termination: None,
    };
    assert_eq!(
        actions,
        vec![
            Action::Adopt {
                pod: "default/keep".into(),
                container: "main".into(),
                id: "k1".into()
            },
            stop("default/keep", "k2", None, StopReason::Duplicate),
            stop("default/gone", "g1", Some("uid-gone"), StopReason::PodGone),
        ],
        "adopted, not started a second time"
    );
    assert!(memory.adopted);
    let status = status_of(&memory, &keep, t);
    assert_eq!(phase_of(&status), "Running");
    assert_eq!(json_time(status.start_time.as_ref()), "2023-01-01T00:00:00Z");
    assert_eq!(container_statuses(&status)[0].restart_count, 2, "counting goes on");
    assert_eq!(
        plan(&mut memory, &pods, &observed(&[("k1", running(t))]), t),
        vec![],
        "adopts once"
    );
}

#[test]
fn a_container_that_ended_while_no_agent_ran_is_restarted_after_the_back_off() {
    let t = now();
    let p = pod("p", "Always");
    let seen = Observed {
        found: vec![found(&p, "main", "old", exited(137, t, Duration::from_secs(5)))],
        found_handlers: Default::default(),
        networks: Vec::new(),
        states: [("old".to_owned(), Ok(exited(137, t, Duration::from_secs(5))))].into(),
    };
    let mut memory = Memory::new(BASE, "fake");
    let actions = plan(&mut memory, &desired(&[&p]), &seen, t);
    assert!(
        matches!(&actions[..], [Action::Adopt { .. }, Action::Remove { id, exit_code: 137, .. }] if id == "old"),
        "{actions:?}"
    );
    assert_eq!(
        starts(&plan(
            &mut memory,
            &desired(&[&p]),
            &Observed::default(),
            later(t, BASE)
        ))
        .len(),
        1
    );
}

#[test]
fn a_pod_that_ended_stays_ended_after_an_agent_restart() {
    let mut p = pod("job", "Never");
    p.status.phase = Some("Succeeded".into());
    let terminated = ContainerStateTerminated {
        exit_code: 0,
        reason: Some("Completed".into()),
        ..Default::default()
    };
    p.status.container_statuses = Some(vec![ContainerStatus {
        name: "main".into(),
        state: Some(ApiState {
            terminated: Some(terminated),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    let mut memory = Memory::new(BASE, "fake");
    assert_eq!(plan(&mut memory, &desired(&[&p]), &Observed::default(), now()), vec![]);
    assert_eq!(phase_of(&status_of(&memory, &p, now())), "Succeeded");
}

#[test]
fn a_refused_start_waits_the_back_off_and_says_why() {
    let p = pod("p", "Always");
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    plan(&mut memory, &pods, &Observed::default(), t);
    let c = memory
        .pods
        .get_mut("uid-p")
        .unwrap()
        .containers
        .get_mut("main")
        .unwrap();
    c.start_failed("no such command".into(), t);
    let status = status_of(&memory, &p, t);
    let waiting = waiting_of(&container_statuses(&status)[0]).cloned().unwrap();
    assert_eq!(
        (waiting.reason.as_deref(), waiting.message.as_deref()),
        (Some("RunContainerError"), Some("no such command"))
    );
    assert_eq!(phase_of(&status), "Pending");
    assert_eq!(
        plan(&mut memory, &pods, &Observed::default(), later(t, BASE / 2)),
        vec![]
    );
    let retry = later(t, BASE);
    plan_and_start(&mut memory, &pods, &Observed::default(), retry, "c1");
    assert_eq!(container_statuses(&status_of(&memory, &p, retry))[0].restart_count, 1);
}

#[test]
fn a_container_the_runtime_lost_is_started_again_in_the_same_pass() {
    let p = pod("p", "Always");
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &pods, &Observed::default(), t, "c1");
    let actions = plan(&mut memory, &pods, &Observed::default(), t);
    assert!(
        matches!(&actions[0], Action::Lost { id, .. } if id == "c1"),
        "{actions:?}"
    );
    assert_eq!(starts(&actions), vec!["default/p/main"]);
}
