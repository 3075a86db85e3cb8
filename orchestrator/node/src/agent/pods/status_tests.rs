//! The status a pod's memory reports (container states, phase, Ready), and how it is
//! laid over the stored one; the memory is brought there through the plan.

use std::time::{Duration, UNIX_EPOCH};

use super::fixtures::*;
use super::memory::PodMemory;
use super::plan::{Action, Observed, plan, plan_reports};
use super::status::{merge_status, pod_status};
use crate::runtime::ContainerState;
use berth_api::conditions::Condition;
use berth_api::meta::Time;
use berth_api::objects::{ContainerStatus, PodCondition, PodStatus, Quantity, ResourceRequirements};
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
    let memory = PodMemory::new(&p, "fake", now());
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
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "Initialized", "status": "True"}
            ],
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "podIP": "10.0.0.1",
            "podIPs": [{"ip": "10.0.0.1"}],
            "qosClass": "BestEffort",
            "startTime": "2023-11-14T22:13:20Z",
            "containerStatuses": [{
                "name": "main",
                "state": {"running": {"startedAt": "2023-11-14T22:13:20Z"}},
                "lastState": {},
                "ready": true,
                "started": true,
                "restartCount": 0,
                "image": "busybox:1.36",
                "imageID": "busybox:1.36",
                "containerID": "berth-fake://c1",
            }],
        })
    );
}

#[test]
fn a_node_named_by_host_name_gives_its_pods_no_ip() {
    let p = pod("web", "Always");
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &desired(&[&p]), &Observed::default(), t, "c1");
    let status = pod_status(&memory.pods["uid-web"], "node-1.example", t.instant);
    assert_eq!(status.host_ip.as_deref(), Some("node-1.example"));
    assert_eq!((status.host_ips, status.pod_ip, status.pod_ips), (None, None, None));
    let v6 = pod_status(&memory.pods["uid-web"], "fd00::1", t.instant);
    assert_eq!(v6.pod_ip.as_deref(), Some("fd00::1"));
}

#[test]
fn the_qos_class_follows_the_requests_and_limits() {
    let mut p = pod("web", "Always");
    let limits = [("cpu", "500m"), ("memory", "64Mi")]
        .into_iter()
        .map(|(name, q)| (name.to_string(), Quantity(q.to_string())))
        .collect();
    p.spec.containers[0].resources = Some(ResourceRequirements {
        limits: Some(limits),
        ..Default::default()
    });
    let mut memory = memory();
    plan(&mut memory, &desired(&[&p]), &Observed::default(), now());
    assert_eq!(status_of(&memory, &p, now()).qos_class.as_deref(), Some("Guaranteed"));
}

#[test]
fn an_oom_kill_is_reported_as_oom_killed_with_the_runs_container_id() {
    for policy in ["Always", "Never"] {
        let p = pod("hog", policy);
        let pods = desired(&[&p]);
        let mut memory = memory();
        let t = now();
        plan_and_start(&mut memory, &pods, &Observed::default(), t, "hog-1");
        let mut exit = exited(137, t, Duration::from_secs(2));
        if let ContainerState::Exited { oom_killed, signal, .. } = &mut exit {
            (*oom_killed, *signal) = (true, Some(9));
        }
        plan(&mut memory, &pods, &observed(&[("hog-1", exit)]), t);
        let status = status_of(&memory, &p, t);
        let c = &container_statuses(&status)[0];
        let exit = match policy {
            // Waiting to restart: the exit is the last state.
            "Always" => last_terminated_of(c),
            _ => terminated_of(c),
        }
        .unwrap_or_else(|| panic!("{policy}: {c:?}"));
        assert_eq!(exit.reason.as_deref(), Some("OOMKilled"), "{policy}");
        assert_eq!((exit.exit_code, exit.signal), (137, Some(9)), "{policy}");
        assert_eq!(exit.container_id.as_deref(), Some("berth-fake://hog-1"), "{policy}");
        assert_eq!(c.container_id.as_deref(), Some("berth-fake://hog-1"), "{policy}");
        assert_eq!((c.ready, c.started), (false, Some(false)), "{policy}");
    }
    // The same exit code without the OOM killer is an Error.
    let p = pod("killed", "Never");
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &pods, &Observed::default(), t, "k-1");
    plan(
        &mut memory,
        &pods,
        &observed(&[("k-1", exited(137, t, Duration::from_secs(2)))]),
        t,
    );
    let status = status_of(&memory, &p, t);
    let exit = terminated_of(&container_statuses(&status)[0]).unwrap();
    assert_eq!(exit.reason.as_deref(), Some("Error"));
}

#[test]
fn a_restarted_container_reports_the_new_runs_id_and_the_old_one_in_its_last_state() {
    let p = pod("web", "Always");
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    plan_and_start(&mut memory, &pods, &Observed::default(), t, "run-1");
    plan(
        &mut memory,
        &pods,
        &observed(&[("run-1", exited(1, t, Duration::ZERO))]),
        t,
    );
    let after = later(t, BASE);
    plan_and_start(&mut memory, &pods, &observed(&[]), after, "run-2");
    let status = status_of(&memory, &p, after);
    let c = &container_statuses(&status)[0];
    assert_eq!(c.container_id.as_deref(), Some("berth-fake://run-2"));
    assert_eq!(
        last_terminated_of(c).and_then(|t| t.container_id.as_deref()),
        Some("berth-fake://run-1")
    );
    assert_eq!((c.restart_count, c.started), (1, Some(true)));
}

#[test]
fn merging_keeps_what_the_agent_does_not_own() {
    let stored = PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some("Burstable".into()),
        nominated_node_name: Some("n2".into()),
        reason: Some("Preempting".into()),
        message: Some("set by someone else".into()),
        conditions: Some(vec![PodCondition::new("PodScheduled", "True", "", "")]),
        container_statuses: Some(vec![ContainerStatus {
            name: "main".into(),
            image: "busybox:1.36".into(),
            image_id: "docker.io/library/busybox@sha256:0123".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let ours = PodStatus {
        phase: Some("Running".into()),
        qos_class: Some("BestEffort".into()),
        host_ip: Some("10.0.0.1".into()),
        pod_ip: Some("10.0.0.1".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "main".into(),
            image: "busybox:1.36".into(),
            image_id: "busybox:1.36".into(),
            restart_count: 2,
            ..Default::default()
        }]),
        ..Default::default()
    };
    let at = from_system_time(UNIX_EPOCH);
    let merged = merge_status(&stored, &ours, &at);
    assert_eq!(phase_of(&merged), "Running");
    assert_eq!(merged.pod_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(
        merged.qos_class.as_deref(),
        Some("Burstable"),
        "the class set at creation"
    );
    assert_eq!(merged.nominated_node_name.as_deref(), Some("n2"));
    assert_eq!(merged.reason.as_deref(), Some("Preempting"));
    assert_eq!(merged.message.as_deref(), Some("set by someone else"));
    let c = &container_statuses(&merged)[0];
    assert_eq!(c.restart_count, 2);
    assert_eq!(
        c.image_id, "docker.io/library/busybox@sha256:0123",
        "a stored imageID stays"
    );

    // Another image: the stored imageID no longer says anything about it.
    let mut new_image = ours.clone();
    new_image.container_statuses.as_mut().unwrap()[0].image = "busybox:1.37".into();
    new_image.container_statuses.as_mut().unwrap()[0].image_id = "busybox:1.37".into();
    let merged = merge_status(&stored, &new_image, &at);
    assert_eq!(container_statuses(&merged)[0].image_id, "busybox:1.37");

    // No class stored (a pod written by an older server): the agent's fills it in.
    let without_class = PodStatus {
        qos_class: None,
        ..stored
    };
    let merged = merge_status(&without_class, &ours, &at);
    assert_eq!(merged.qos_class.as_deref(), Some("BestEffort"));
}
