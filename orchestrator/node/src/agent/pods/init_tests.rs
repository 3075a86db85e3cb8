//! Start order inside a pod, with a made-up clock: init containers one at a time,
//! each to success, before the app containers; a failing one retried by the pod's
//! restartPolicy (or failing the pod under Never); sidecars that start in order,
//! do not block once started and keep running; postStart hooks that hold back the
//! containers after theirs.

use std::time::Duration;

use super::fixtures::*;
use super::memory::Memory;
use super::plan::{Action, Observed, plan};
use super::probe::ProbeKind;
use berth_api::kinds::pod::pod_status as status_column;
use berth_api::meta::MetaExt;
use berth_api::objects::{Container, ContainerStatus, LifecycleHandler, Pod};
use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, Probe};

fn command(name: &str) -> Container {
    Container {
        name: name.into(),
        command: Some(vec!["run".into(), name.into()]),
        ..Default::default()
    }
}

fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..command(name)
    }
}

fn exec_hook() -> LifecycleHandler {
    LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(vec!["hook".into()]),
        }),
        ..Default::default()
    }
}

/// A pod with `init` containers before its app containers `apps`.
fn with_init(name: &str, policy: &str, init: Vec<Container>, apps: &[&str]) -> Pod {
    let mut pod = pod_of(name, policy, apps);
    pod.spec.init_containers = Some(init);
    pod
}

/// Records that the container `name` of `pod` started as `id`.
fn started(memory: &mut Memory, pod: &Pod, name: &str, id: &str, at: super::memory::Now) {
    memory
        .pods
        .get_mut(pod.metadata.uid())
        .unwrap()
        .containers
        .get_mut(name)
        .unwrap()
        .started(id.into(), at);
}

fn init_statuses(status: &berth_api::objects::PodStatus) -> &[ContainerStatus] {
    status.init_container_statuses.as_deref().unwrap_or_default()
}

/// The STATUS column kubectl shows for the pod with this status.
fn column(pod: &Pod, memory: &Memory, at: super::memory::Now) -> String {
    let mut pod = pod.clone();
    pod.status = status_of(memory, &pod, at);
    status_column(&pod)
}

fn condition(status: &berth_api::objects::PodStatus, type_: &str) -> (String, String) {
    let c = conditions_of(status).iter().find(|c| c.type_ == type_).unwrap();
    (c.status.clone(), c.message.clone().unwrap_or_default())
}

#[test]
fn init_containers_run_one_at_a_time_each_to_success_before_the_app() {
    let p = with_init("p", "Always", vec![command("one"), command("two")], &["main"]);
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    assert_eq!(
        starts(&plan(&mut memory, &pods, &Observed::default(), t)),
        ["default/p/one"]
    );
    started(&mut memory, &p, "one", "i1", t);
    let status = status_of(&memory, &p, t);
    assert_eq!(phase_of(&status), "Pending");
    assert_eq!(
        condition(&status, "Initialized"),
        ("False".into(), "containers with incomplete status: [one two]".into())
    );
    let waiting = |s: &ContainerStatus| waiting_of(s).and_then(|w| w.reason.clone());
    assert_eq!(waiting(&init_statuses(&status)[1]).as_deref(), Some("PodInitializing"));
    assert_eq!(
        waiting(&container_statuses(&status)[0]).as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(column(&p, &memory, t), "Init:0/2");

    // Running: nothing else starts.
    let t1 = later(t, Duration::from_secs(1));
    assert_eq!(
        starts(&plan(&mut memory, &pods, &observed(&[("i1", running(t))]), t1)),
        Vec::<String>::new()
    );
    // Completed: the next one starts in the same pass, and only it.
    let t2 = later(t1, Duration::from_secs(1));
    let done = observed(&[("i1", exited(0, t, Duration::from_secs(1)))]);
    assert_eq!(starts(&plan(&mut memory, &pods, &done, t2)), ["default/p/two"]);
    started(&mut memory, &p, "two", "i2", t2);
    assert_eq!(column(&p, &memory, t2), "Init:1/2");
    let t3 = later(t2, Duration::from_secs(1));
    let done = observed(&[("i2", exited(0, t2, Duration::from_secs(1)))]);
    assert_eq!(starts(&plan(&mut memory, &pods, &done, t3)), ["default/p/main"]);
    started(&mut memory, &p, "main", "m1", t3);

    let status = status_of(&memory, &p, t3);
    assert_eq!(phase_of(&status), "Running");
    assert_eq!(condition(&status, "Initialized").0, "True");
    let inits = init_statuses(&status);
    assert!(
        inits
            .iter()
            .all(|s| terminated_of(s).is_some_and(|t| t.exit_code == 0) && s.ready),
        "{inits:?}"
    );
    assert_eq!(column(&p, &memory, t3), "Running");
    // Never again, though the pod's policy is Always.
    let t4 = later(t3, Duration::from_secs(60));
    assert_eq!(
        starts(&plan(&mut memory, &pods, &observed(&[("m1", running(t3))]), t4)),
        Vec::<String>::new()
    );
}

#[test]
fn a_failing_init_container_is_retried_with_the_back_off_and_blocks_the_app() {
    for policy in ["Always", "OnFailure"] {
        let p = with_init("p", policy, vec![command("fail"), command("two")], &["main"]);
        let pods = desired(&[&p]);
        let mut memory = memory();
        let t = now();
        plan(&mut memory, &pods, &Observed::default(), t);
        started(&mut memory, &p, "fail", "f1", t);
        let t1 = later(t, Duration::from_secs(1));
        let actions = plan(
            &mut memory,
            &pods,
            &observed(&[("f1", exited(3, t, Duration::from_secs(1)))]),
            t1,
        );
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Remove { backing_off: true, .. })),
            "{policy}: {actions:?}"
        );
        assert_eq!(starts(&actions), Vec::<String>::new(), "{policy}");
        let status = status_of(&memory, &p, t1);
        assert_eq!(phase_of(&status), "Pending", "{policy}");
        assert_eq!(column(&p, &memory, t1), "Init:CrashLoopBackOff", "{policy}");
        // After the back-off it runs again, and only it.
        let t2 = later(t1, BASE);
        assert_eq!(
            starts(&plan(&mut memory, &pods, &Observed::default(), t2)),
            ["default/p/fail"],
            "{policy}"
        );
        started(&mut memory, &p, "fail", "f2", t2);
        let status = status_of(&memory, &p, t2);
        assert_eq!(init_statuses(&status)[0].restart_count, 1, "{policy}");
    }
}

#[test]
fn under_restart_policy_never_a_failing_init_container_fails_the_pod() {
    let p = with_init("p", "Never", vec![command("fail")], &["main"]);
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    plan(&mut memory, &pods, &Observed::default(), t);
    started(&mut memory, &p, "fail", "f1", t);
    let t1 = later(t, Duration::from_secs(1));
    plan(
        &mut memory,
        &pods,
        &observed(&[("f1", exited(1, t, Duration::from_secs(1)))]),
        t1,
    );
    let t2 = later(t1, Duration::from_secs(600));
    assert_eq!(
        starts(&plan(&mut memory, &pods, &Observed::default(), t2)),
        Vec::<String>::new()
    );
    let status = status_of(&memory, &p, t2);
    assert_eq!(phase_of(&status), "Failed");
    assert_eq!(column(&p, &memory, t2), "Init:Error");
}

#[test]
fn sidecars_start_in_order_do_not_block_and_keep_running_until_the_app_finished() {
    let mut proxy = sidecar("proxy");
    proxy.startup_probe = Some(Probe {
        exec: Some(ExecAction {
            command: Some(vec!["ready".into()]),
        }),
        ..Default::default()
    });
    let p = with_init("p", "OnFailure", vec![proxy.clone(), command("setup")], &["main"]);
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    assert_eq!(
        starts(&plan(&mut memory, &pods, &Observed::default(), t)),
        ["default/p/proxy"]
    );
    started(&mut memory, &p, "proxy", "s1", t);
    // Running, but its startup probe has not passed: the next one waits.
    let t1 = later(t, Duration::from_secs(1));
    assert_eq!(
        starts(&plan(&mut memory, &pods, &observed(&[("s1", running(t))]), t1)),
        Vec::<String>::new()
    );
    memory
        .pods
        .get_mut("uid-p")
        .unwrap()
        .containers
        .get_mut("proxy")
        .unwrap()
        .health
        .record(&proxy, "s1", ProbeKind::Startup, true);
    let t2 = later(t1, Duration::from_secs(1));
    assert_eq!(
        starts(&plan(&mut memory, &pods, &observed(&[("s1", running(t))]), t2)),
        ["default/p/setup"]
    );
    started(&mut memory, &p, "setup", "i1", t2);
    let t3 = later(t2, Duration::from_secs(1));
    let seen = observed(&[("s1", running(t)), ("i1", exited(0, t2, Duration::from_secs(1)))]);
    assert_eq!(starts(&plan(&mut memory, &pods, &seen, t3)), ["default/p/main"]);
    started(&mut memory, &p, "main", "m1", t3);
    let status = status_of(&memory, &p, t3);
    assert_eq!(phase_of(&status), "Running");
    assert!(running_of(&init_statuses(&status)[0]).is_some(), "{status:?}");
    let mut shown = p.clone();
    shown.status = status;
    let row = berth_api::kinds::KINDS
        .iter()
        .find(|k| k.kind == "Pod")
        .map(|k| (k.cells)(&berth_api::objects::Object::new(shown), t3.wall))
        .unwrap();
    assert_eq!(row[1], "2/2", "the sidecar counts: {row:?}");

    // The sidecar exits with 0: restarted anyway (its policy is Always), beside the app.
    let t4 = later(t3, Duration::from_secs(1));
    let seen = observed(&[("s1", exited(0, t, Duration::from_secs(4))), ("m1", running(t3))]);
    plan(&mut memory, &pods, &seen, t4);
    let t5 = later(t4, BASE);
    assert_eq!(
        starts(&plan(&mut memory, &pods, &observed(&[("m1", running(t3))]), t5)),
        ["default/p/proxy"]
    );
    started(&mut memory, &p, "proxy", "s2", t5);

    // The app finishes for good: the sidecar is stopped, and not restarted.
    let t6 = later(t5, Duration::from_secs(1));
    let seen = observed(&[("s2", running(t5)), ("m1", exited(0, t3, Duration::from_secs(3)))]);
    let actions = plan(&mut memory, &pods, &seen, t6);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::KillUnhealthy { id, .. } if id == "s2")),
        "{actions:?}"
    );
    let t7 = later(t6, Duration::from_secs(1));
    let seen = observed(&[("s2", exited(143, t5, Duration::from_secs(2)))]);
    let t8 = later(t7, Duration::from_secs(600));
    plan(&mut memory, &pods, &seen, t7);
    assert_eq!(
        starts(&plan(&mut memory, &pods, &Observed::default(), t8)),
        Vec::<String>::new()
    );
    assert_eq!(phase_of(&status_of(&memory, &p, t8)), "Succeeded");
}

#[test]
fn a_post_start_hook_holds_the_container_out_of_running_and_the_next_one_back() {
    let mut p = pod_of("p", "Always", &["first", "second"]);
    p.spec.containers[0].lifecycle = Some(Lifecycle {
        post_start: Some(exec_hook()),
        ..Default::default()
    });
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    let actions = plan(&mut memory, &pods, &Observed::default(), t);
    assert_eq!(
        starts(&actions),
        ["default/p/first"],
        "the hook's container first, alone"
    );
    assert!(
        matches!(
            &actions[0],
            Action::Start {
                post_start: Some(Ok(_)),
                ..
            }
        ),
        "{actions:?}"
    );
    started(&mut memory, &p, "first", "a1", t);
    let first = memory
        .pods
        .get_mut("uid-p")
        .unwrap()
        .containers
        .get_mut("first")
        .unwrap();
    first.post_start_pending = Some("a1".into());
    let t1 = later(t, Duration::from_secs(1));
    let seen = observed(&[("a1", running(t))]);
    assert_eq!(starts(&plan(&mut memory, &pods, &seen, t1)), Vec::<String>::new());
    let status = status_of(&memory, &p, t1);
    let reason = waiting_of(&container_statuses(&status)[0]).and_then(|w| w.reason.as_deref());
    assert_eq!(reason, Some("ContainerCreating"), "not Running while its hook runs");

    // The hook finished: the next one starts.
    let first = memory
        .pods
        .get_mut("uid-p")
        .unwrap()
        .containers
        .get_mut("first")
        .unwrap();
    first.post_start_pending = None;
    let t2 = later(t1, Duration::from_secs(1));
    assert_eq!(starts(&plan(&mut memory, &pods, &seen, t2)), ["default/p/second"]);
    assert!(running_of(&container_statuses(&status_of(&memory, &p, t2))[0]).is_some());
}

#[test]
fn a_restarted_agent_does_not_run_the_init_containers_of_an_initialized_pod_again() {
    let mut p = with_init("p", "Always", vec![command("one")], &["main"]);
    let pods = desired(&[&p]);
    let mut memory = memory();
    let t = now();
    plan(&mut memory, &pods, &Observed::default(), t);
    started(&mut memory, &p, "one", "i1", t);
    let t1 = later(t, Duration::from_secs(1));
    plan(
        &mut memory,
        &pods,
        &observed(&[("i1", exited(0, t, Duration::from_secs(1)))]),
        t1,
    );
    p.status = status_of(&memory, &p, t1);
    let mut fresh = super::fixtures::memory();
    assert_eq!(
        starts(&plan(&mut fresh, &desired(&[&p]), &Observed::default(), t1)),
        ["default/p/main"]
    );
}
