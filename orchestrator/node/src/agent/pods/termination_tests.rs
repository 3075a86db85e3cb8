//! Graceful termination against the fake runtime: a deleted pod's preStop hooks run
//! before its SIGTERM and count against its grace, a container that ignores SIGTERM
//! is killed at the deadline, and the pod's object is removed only once its
//! containers stopped; a container a liveness probe kills goes the same way (hook,
//! SIGTERM, SIGKILL at the probe's grace, else the pod's) before its restart; sidecars
//! stop after the app containers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::executor::Executor;
use super::fixtures::{BASE, desired, now, pod};
use super::memory::Now;
use super::plan::Action;
use crate::runtime::FakeRuntime;
use berth_api::objects::Pod;
use berth_api::time::from_system_time;
use serde_json::{Value, json};

/// One pass; the pods it asks to remove for good (their statuses are taken as written).
fn pass(executor: &mut Executor, pods: &BTreeMap<String, Pod>, now: Now) -> Vec<String> {
    let mut removed = Vec::new();
    for action in executor.pass(pods, now) {
        match action {
            Action::ReportStatus { pod_uid, status } => executor.reported(&pod_uid, *status),
            Action::DeletePod { uid, .. } => removed.push(uid),
            other => panic!("a pass returns only writes: {other:?}"),
        }
    }
    removed
}

fn with_pre_stop(mut pod: Pod, handler: Value) -> Pod {
    pod.spec.containers[0].lifecycle = Some(serde_json::from_value(json!({ "preStop": handler })).unwrap());
    pod
}

/// The pod as a DELETE with `grace` seconds leaves it.
fn deleted(mut pod: Pod, grace: i64) -> Pod {
    pod.metadata.deletion_timestamp = Some(from_system_time(now().wall + Duration::from_secs(grace as u64)));
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    pod
}

/// Passes until the executor asks to remove a pod (its stop finished); the uids.
async fn until_removed(executor: &mut Executor, pods: &BTreeMap<String, Pod>) -> Vec<String> {
    for _ in 0..1000 {
        let removed = pass(executor, pods, now());
        if !removed.is_empty() {
            return removed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the deleted pod was never removed");
}

#[tokio::test(start_paused = true)]
async fn the_pre_stop_hook_runs_before_sigterm_and_a_stubborn_container_is_killed_at_the_deadline() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = Executor::new(runtime.clone(), BASE, "10.0.0.1".into());
    let web = with_pre_stop(
        pod("web", ""),
        json!({"exec": {"command": ["sh", "-c", "touch /drained"]}}),
    );
    pass(&mut executor, &desired(&[&web]), now());
    let id = runtime.running().pop().unwrap();
    runtime.ignore_sigterm(&id);

    let web = deleted(web, 5);
    let begin = Instant::now();
    assert!(
        pass(&mut executor, &desired(&[&web]), now()).is_empty(),
        "not while it stops"
    );
    let removed = until_removed(&mut executor, &desired(&[&web])).await;
    assert_eq!(removed, ["uid-web"]);
    assert_eq!(
        runtime.calls(),
        [format!("exec {id} sh -c touch /drained"), format!("stop {id}")],
        "the hook, then SIGTERM"
    );
    assert_eq!(
        runtime.stops(),
        [(id.clone(), Duration::from_secs(5))],
        "the deletion's grace"
    );
    assert!(
        begin.elapsed() >= Duration::from_secs(5),
        "SIGKILL only at the deadline"
    );
    assert_eq!(runtime.removed(), [id], "stopped and removed before the object goes");
}

#[tokio::test(start_paused = true)]
async fn the_hooks_time_counts_against_the_grace_and_the_object_waits_for_the_stop() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = Executor::new(runtime.clone(), BASE, "10.0.0.1".into());
    let web = with_pre_stop(pod("web", ""), json!({"sleep": {"seconds": 3}}));
    pass(&mut executor, &desired(&[&web]), now());
    let id = runtime.running().pop().unwrap();
    let web = deleted(web, 10);
    let begin = Instant::now();
    assert!(pass(&mut executor, &desired(&[&web]), now()).is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(runtime.stops().is_empty(), "no SIGTERM while the hook sleeps");
    assert!(
        pass(&mut executor, &desired(&[&web]), now()).is_empty(),
        "the object stays while the hook runs"
    );
    until_removed(&mut executor, &desired(&[&web])).await;
    assert!(begin.elapsed() >= Duration::from_secs(3));
    assert_eq!(
        runtime.stops(),
        [(id, Duration::from_secs(7))],
        "10 s less the hook's 3"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_pod_that_never_ran_here_goes_at_once_and_a_forced_one_is_just_stopped() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = Executor::new(runtime.clone(), BASE, "10.0.0.1".into());
    let never = deleted(pod("never", ""), 30);
    assert_eq!(pass(&mut executor, &desired(&[&never]), now()), ["uid-never"]);
    assert!(runtime.starts().is_empty(), "nothing started for a deleted pod");

    // Removed from the store at once (--force --grace-period=0): stopped with the
    // pod's own grace, nothing left to remove.
    let forced = pod("forced", "");
    pass(&mut executor, &desired(&[&forced]), now());
    assert_eq!(runtime.running().len(), 1);
    assert!(pass(&mut executor, &BTreeMap::new(), now()).is_empty());
    for _ in 0..100 {
        if runtime.running().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(runtime.running().is_empty());
    assert!(pass(&mut executor, &BTreeMap::new(), now()).is_empty());
}

/// A liveness probe that always fails: a tcpSocket probe of a port nothing listens on,
/// every second, failing at once.
fn failing_liveness(mut pod: Pod, probe_grace: Option<i64>) -> Pod {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    pod.spec.containers[0].liveness_probe = Some(
        serde_json::from_value(json!({
            "tcpSocket": {"port": closed},
            "periodSeconds": 1,
            "failureThreshold": 1,
            "terminationGracePeriodSeconds": probe_grace,
        }))
        .unwrap(),
    );
    pod
}

/// Passes every 100 ms until `what` holds of the runtime; panics after 1000 passes.
async fn passes_until(
    executor: &mut Executor,
    pods: &BTreeMap<String, Pod>,
    runtime: &FakeRuntime,
    what: impl Fn(&FakeRuntime) -> bool,
) {
    for _ in 0..1000 {
        pass(executor, pods, now());
        if what(runtime) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never got there: calls {:?}", runtime.calls());
}

#[tokio::test(start_paused = true)]
async fn a_container_killed_by_its_liveness_probe_runs_its_pre_stop_hook_then_gets_the_pods_grace() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = Executor::new(runtime.clone(), BASE, "127.0.0.1".into());
    let mut web = with_pre_stop(
        failing_liveness(pod("web", "Always"), None),
        json!({"exec": {"command": ["sh", "-c", "touch /drained"]}}),
    );
    web.spec.termination_grace_period_seconds = Some(5);
    let pods = desired(&[&web]);
    pass(&mut executor, &pods, now());
    let id = runtime.running().pop().unwrap();
    runtime.ignore_sigterm(&id);

    passes_until(&mut executor, &pods, &runtime, |r| !r.stops().is_empty()).await;
    let killed = Instant::now();
    assert_eq!(
        runtime.calls(),
        [format!("exec {id} sh -c touch /drained"), format!("stop {id}")],
        "the hook, then SIGTERM"
    );
    assert_eq!(
        runtime.stops(),
        [(id.clone(), Duration::from_secs(5))],
        "the pod's grace: the hook took no time"
    );
    passes_until(&mut executor, &pods, &runtime, |r| r.starts().len() == 2).await;
    assert!(
        killed.elapsed() >= Duration::from_secs(5),
        "SIGKILL only at the deadline, the restart after it"
    );
    assert!(
        runtime.removed().contains(&id),
        "the killed run is removed as any exited one"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probes_own_grace_bounds_the_hook_and_the_stop_and_passes_go_on_meanwhile() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = Executor::new(runtime.clone(), BASE, "127.0.0.1".into());
    let mut web = with_pre_stop(
        failing_liveness(pod("web", "Always"), Some(6)),
        json!({"sleep": {"seconds": 2}}),
    );
    web.spec.termination_grace_period_seconds = Some(30);
    let pods = desired(&[&web]);
    pass(&mut executor, &pods, now());
    let id = runtime.running().pop().unwrap();

    // The kill is decided (the container's run is no longer probed), the hook sleeps:
    // passes go on, no SIGTERM yet.
    for _ in 0..50 {
        if executor.probes_running() == 0 {
            break;
        }
        pass(&mut executor, &pods, now());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(executor.probes_running(), 0, "the liveness probe failed");
    let hook_began = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    pass(&mut executor, &pods, now());
    assert!(runtime.stops().is_empty(), "no SIGTERM while the hook sleeps");

    passes_until(&mut executor, &pods, &runtime, |r| !r.stops().is_empty()).await;
    assert!(hook_began.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        runtime.stops(),
        [(id, Duration::from_secs(4))],
        "the probe's 6 s less the hook's 2, not the pod's 30"
    );
}

#[tokio::test(start_paused = true)]
async fn sidecars_stop_after_the_app_containers_in_the_grace_left() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = Executor::new(runtime.clone(), BASE, "10.0.0.1".into());
    let mut web = pod("web", "");
    web.spec.init_containers = Some(vec![berth_api::objects::Container {
        name: "proxy".into(),
        command: Some(vec!["proxy".into()]),
        restart_policy: Some("Always".into()),
        ..Default::default()
    }]);
    pass(&mut executor, &desired(&[&web]), now());
    pass(&mut executor, &desired(&[&web]), now());
    let started: Vec<String> = runtime.starts().iter().map(|s| s.name.clone()).collect();
    assert_eq!(started, ["proxy", "main"], "the sidecar first, then the app");
    let (proxy, main) = ("uid-web-proxy-1".to_string(), "uid-web-main-2".to_string());
    runtime.ignore_sigterm(&main);

    let web = deleted(web, 5);
    assert!(pass(&mut executor, &desired(&[&web]), now()).is_empty());
    let removed = until_removed(&mut executor, &desired(&[&web])).await;
    assert_eq!(removed, ["uid-web"]);
    assert_eq!(
        runtime.stops(),
        [(main, Duration::from_secs(5)), (proxy, Duration::from_secs(2))],
        "the app with the grace, then the sidecar with what is left (the minimum)"
    );
}
