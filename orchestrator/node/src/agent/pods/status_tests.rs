//! The status a pod's memory reports (container states, phase, Ready), and how it is
//! laid over the stored one; the memory is brought there through the plan.

use std::time::{Duration, UNIX_EPOCH};

use super::fixtures::*;
use super::memory::PodMemory;
use super::plan::{Action, Observed, plan, plan_reports};
use super::status::merge_status;
use crate::runtime::ContainerState;
use berth_api::meta::Time;
use berth_api::objects::{ContainerStatus, PodCondition, PodStatus};
use berth_api::time::from_system_time;

#[test]
fn a_crash_loop_waits_in_crash_loop_back_off_and_says_how_long() {
    let p = pod("web", "Always");
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &pods, &Observed::default(), t, "c1");
    plan(
        &mut memory,
        &pods,
        &observed(&[("c1", exited(3, t, Duration::ZERO))]),
        t,
    );
    let status = status_of(&memory, &p, t);
    let c = &container_statuses(&status)[0];
    let waiting = waiting_of(c).unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 10s restarting failed container=main pod=web")
    );
    assert_eq!(last_terminated_of(c).map(|t| t.exit_code), Some(3));
    assert_eq!(last_terminated_of(c).and_then(|t| t.reason.as_deref()), Some("Error"));
    assert!(!c.ready);
    assert_eq!(phase_of(&status), "Running", "it has run");
    assert_eq!(conditions_of(&status)[0].status, "False");
    // Once the back-off has passed it is due, no longer backing off.
    let due = status_of(&memory, &p, later(t, BASE));
    assert_eq!(
        waiting_of(&container_statuses(&due)[0]).unwrap().reason.as_deref(),
        Some("ContainerCreating")
    );
}

#[test]
fn containers_that_finish_end_the_pod_succeeded_or_failed() {
    // (restartPolicy, each container's exit code or None for still running, phase)
    let table: [(&str, &[Option<i32>], &str); 6] = [
        ("Never", &[Some(0)], "Succeeded"),
        ("Never", &[Some(4)], "Failed"),
        ("OnFailure", &[Some(0)], "Succeeded"),
        ("Never", &[Some(0), Some(1)], "Failed"),
        ("Never", &[Some(0), None], "Running"),
        ("OnFailure", &[Some(0), Some(2)], "Running"),
    ];
    for (policy, exits, phase) in table {
        let case = format!("{policy} {exits:?}");
        let names: Vec<String> = (0..exits.len()).map(|i| format!("c{i}")).collect();
        let p = pod_of("job", policy, &names.iter().map(String::as_str).collect::<Vec<_>>());
        let pods = desired(&[&p]);
        let mut memory = memory();
        let t = now();
        plan(&mut memory, &pods, &Observed::default(), t);
        for name in &names {
            let c = memory
                .pods
                .get_mut("uid-job")
                .unwrap()
                .containers
                .get_mut(name)
                .unwrap();
            c.started(format!("id-{name}"), t);
        }
        let ids: Vec<String> = names.iter().map(|n| format!("id-{n}")).collect();
        let states: Vec<(&str, ContainerState)> = ids
            .iter()
            .zip(exits)
            .map(|(id, exit)| {
                (
                    id.as_str(),
                    exit.map_or(running(t), |code| exited(code, t, Duration::from_secs(1))),
                )
            })
            .collect();
        plan(&mut memory, &pods, &observed(&states), t);
        let status = status_of(&memory, &p, t);
        assert_eq!(phase_of(&status), phase, "{case}");
        for (c, exit) in container_statuses(&status).iter().zip(exits) {
            assert_eq!(c.restart_count, 0, "{case}");
            if policy == "Never"
                && let Some(code) = exit
            {
                assert_eq!(terminated_of(c).map(|t| t.exit_code), Some(*code), "{case}");
            }
        }
    }
}

#[test]
fn statuses_are_reported_when_they_change_only() {
    let p = pod("p", "Always");
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &desired(&[&p]), &Observed::default(), t, "c1");
    let reports = plan_reports(&memory, "10.0.0.1", t);
    let [Action::ReportStatus { pod_uid, status }] = &reports[..] else {
        panic!("{reports:?}")
    };
    assert_eq!(
        (
            pod_uid.as_str(),
            phase_of(status),
            status.host_ip.as_deref().unwrap_or_default()
        ),
        ("uid-p", "Running", "10.0.0.1")
    );
    memory.pods.get_mut("uid-p").unwrap().reported = Some((**status).clone());
    assert_eq!(plan_reports(&memory, "10.0.0.1", t), vec![]);
}

#[test]
fn merging_keeps_others_conditions_and_moves_transition_times_only_on_change() {
    let (t0, t1) = (
        from_system_time(UNIX_EPOCH + Duration::from_secs(1)),
        from_system_time(UNIX_EPOCH + Duration::from_secs(2)),
    );
    let condition = |type_: &str, status: &str, at: Option<&Time>| PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: at.cloned(),
        ..Default::default()
    };
    let stored = PodStatus {
        conditions: Some(vec![
            condition("PodScheduled", "True", Some(&t0)),
            condition("Ready", "False", Some(&t0)),
        ]),
        ..Default::default()
    };
    let ours = |ready: &str| PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![condition("Ready", ready, None)]),
        ..Default::default()
    };
    let same = merge_status(&stored, &ours("False"), &t1);
    assert_eq!(
        same.conditions,
        Some(vec![
            condition("PodScheduled", "True", Some(&t0)),
            condition("Ready", "False", Some(&t0))
        ])
    );
    assert_eq!(phase_of(&same), "Running");
    let changed = merge_status(&stored, &ours("True"), &t1);
    assert_eq!(
        changed.conditions,
        Some(vec![
            condition("PodScheduled", "True", Some(&t0)),
            condition("Ready", "True", Some(&t1))
        ])
    );
}

#[test]
fn a_new_pod_memory_counts_on_from_the_stored_status() {
    let mut p = pod("p", "");
    p.status.container_statuses = Some(vec![ContainerStatus {
        name: "main".into(),
        restart_count: 5,
        ..Default::default()
    }]);
    let memory = PodMemory::new(&p, now());
    assert_eq!(memory.containers["main"].restart_count, 5);
    assert!(!memory.containers["main"].done, "a pod still running goes on");
    assert_eq!(json_time(Some(&memory.start_time)), "2023-11-14T22:13:20Z");
}

#[test]
fn a_reported_status_keeps_its_json_and_names_the_image_twice() {
    let mut p = pod("web", "Always");
    p.spec.containers[0].image = Some("busybox:1.36".into());
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &desired(&[&p]), &Observed::default(), t, "c1");
    let status = status_of(&memory, &p, t);
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        serde_json::json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "hostIP": "10.0.0.1",
            "startTime": "2023-11-14T22:13:20Z",
            "containerStatuses": [{
                "name": "main",
                "state": {"running": {"startedAt": "2023-11-14T22:13:20Z"}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": "busybox:1.36",
                "imageID": "busybox:1.36",
            }],
        })
    );
}
