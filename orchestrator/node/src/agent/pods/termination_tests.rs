//! Graceful termination against the fake runtime: a deleted pod's preStop hooks run
//! before its SIGTERM and count against its grace, a container that ignores SIGTERM
//! is killed at the deadline, and the pod's object is removed only once its
//! containers stopped.

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
