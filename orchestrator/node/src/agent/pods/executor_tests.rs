//! The executor against the fake runtime, with a made-up clock: crash loops, agent
//! restarts, deletions and fencing without a process or a store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::executor::Executor;
use super::fixtures::{
    BASE, container_statuses, desired, last_terminated_of, later, now, phase_of, pod, running_of, terminated_of,
    waiting_of,
};
use super::memory::Now;
use super::plan::Action;
use crate::runtime::{ContainerState, FakeRuntime, Runtime};
use berth_api::objects::{ContainerStatus, Pod, PodStatus};

fn executor(runtime: &Arc<FakeRuntime>) -> Executor {
    Executor::new(runtime.clone(), BASE, "10.0.0.1".into())
}

/// One pass; the statuses it reports, by pod uid, confirmed as written.
fn pass(executor: &mut Executor, pods: &BTreeMap<String, Pod>, now: Now) -> BTreeMap<String, PodStatus> {
    let mut written = BTreeMap::new();
    for action in executor.pass(pods, now) {
        let Action::ReportStatus { pod_uid, status } = action else {
            // A deleted pod's removal, once stopped (termination_tests.rs).
            assert!(
                matches!(action, Action::DeletePod { .. }),
                "a pass returns only writes: {action:?}"
            );
            continue;
        };
        executor.reported(&pod_uid, (*status).clone());
        written.insert(pod_uid, *status);
    }
    written
}

fn main_status(statuses: &BTreeMap<String, PodStatus>, uid: &str) -> ContainerStatus {
    container_statuses(&statuses[uid])[0].clone()
}

/// Lets the background stops run (time is paused: sleeps end at once when idle).
async fn settle(runtime: &FakeRuntime, what: impl Fn(&FakeRuntime) -> bool) {
    for _ in 0..1000 {
        if what(runtime) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the background stops never finished");
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_backs_off_without_real_processes() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = executor(&runtime);
    let crash = pod("crash", "Always");
    let pods = desired(&[&crash]);
    let t0 = now();
    let statuses = pass(&mut executor, &pods, t0);
    assert_eq!(
        phase_of(&statuses["uid-crash"]),
        "Running",
        "reported in the pass that started it"
    );
    let mut started_at = vec![Duration::ZERO];
    let mut t = t0;
    while started_at.len() < 5 {
        let id = runtime.running().pop().expect("one container runs");
        runtime.exit(&id, 3);
        let statuses = pass(&mut executor, &pods, t);
        assert_eq!(runtime.removed().last(), Some(&id));
        let status = main_status(&statuses, "uid-crash");
        assert_eq!(
            waiting_of(&status).and_then(|w| w.reason.as_deref()),
            Some("CrashLoopBackOff")
        );
        assert_eq!(last_terminated_of(&status).map(|t| t.exit_code), Some(3));
        // Step the clock 1 s at a time until it starts again.
        let starts = runtime.starts().len();
        while runtime.starts().len() == starts {
            t = later(t, Duration::from_secs(1));
            pass(&mut executor, &pods, t);
        }
        started_at.push(t.instant - t0.instant);
        assert_eq!(
            main_status(&executor_statuses(&executor), "uid-crash").restart_count as usize,
            started_at.len() - 1
        );
    }
    let secs: Vec<u64> = started_at.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![0, 10, 30, 70, 150], "waits of 10, 20, 40, 80 s");
    assert_eq!(runtime.running().len(), 1);
}

/// Every pod's status as the executor would report it now (none is pending a write).
fn executor_statuses(executor: &Executor) -> BTreeMap<String, PodStatus> {
    executor
        .memory()
        .pods
        .iter()
        .map(|(uid, p)| (uid.clone(), p.reported.clone().expect("reported")))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_agent_restart_adopts_what_runs_and_stops_what_was_deleted_meanwhile() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut keep = pod("keep", "");
    let dropped = pod("drop", "");
    let t = now();
    let statuses = pass(&mut executor(&runtime), &desired(&[&keep, &dropped]), t);
    let started = runtime.running();
    assert_eq!(started.len(), 2);
    let keep_id = started.iter().find(|id| id.starts_with("uid-keep")).unwrap().clone();

    // The first executor is gone without stopping anything; the store still has the
    // status it wrote; "drop" was deleted meanwhile.
    keep.status = statuses["uid-keep"].clone();
    let mut second = executor(&runtime);
    let statuses = pass(&mut second, &desired(&[&keep]), later(t, Duration::from_secs(1)));
    assert_eq!(runtime.starts().len(), 2, "adopted, not started again");
    settle(&runtime, |r| r.removed_logs() == vec!["uid-drop".to_string()]).await;
    assert_eq!(runtime.running(), vec![keep_id.clone()]);
    let status = main_status(&statuses, "uid-keep");
    assert!(running_of(&status).is_some(), "{status:?}");
    assert_eq!(status.restart_count, 0);
    let ContainerState::Running { started_at, .. } = runtime.state(&keep_id).unwrap() else {
        panic!("kept container stopped");
    };
    assert_eq!(
        running_of(&status).unwrap().started_at,
        Some(berth_api::time::from_system_time(started_at))
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_pod_is_stopped_with_its_grace_then_removed_with_its_logs() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = executor(&runtime);
    let mut web = pod("web", "");
    let t = now();
    pass(&mut executor, &desired(&[&web]), t);
    let id = runtime.running().pop().unwrap();
    runtime.ignore_sigterm(&id);
    web.metadata.deletion_timestamp = Some(berth_api::time::from_system_time(
        berth_api::time::parse_rfc3339("2023-11-14T22:13:20Z").unwrap(),
    ));
    let begin = Instant::now();
    let statuses = pass(&mut executor, &desired(&[&web]), t);
    assert!(statuses.is_empty(), "a pod being deleted is no longer reported");
    settle(&runtime, |r| !r.removed_logs().is_empty()).await;
    assert_eq!(runtime.stops(), vec![(id.clone(), Duration::from_secs(2))]);
    assert!(
        begin.elapsed() >= Duration::from_secs(2),
        "SIGKILL only after the grace"
    );
    assert_eq!(runtime.removed(), vec![id]);
    assert_eq!(runtime.removed_logs(), vec!["uid-web".to_string()]);
    assert!(runtime.list().is_empty());
    assert_eq!(runtime.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn fencing_stops_everything_and_the_next_pass_starts_anew() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = executor(&runtime);
    let pods = desired(&[&pod("a", ""), &pod("b", "")]);
    let t = now();
    pass(&mut executor, &pods, t);
    let first = runtime.running();
    assert_eq!(first.len(), 2);
    executor.stop_all(Duration::from_secs(1)).await;
    assert!(runtime.list().is_empty(), "stopped and removed");
    assert!(executor.memory().pods.is_empty());
    assert!(!executor.memory().adopted, "the next pass adopts afresh");
    let statuses = pass(&mut executor, &pods, later(t, Duration::from_secs(1)));
    let again = runtime.running();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|id| !first.contains(id)), "{again:?} {first:?}");
    assert_eq!(statuses.len(), 2, "reported anew");
}

#[tokio::test(start_paused = true)]
async fn a_refused_start_is_reported_and_retried_after_the_back_off() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = executor(&runtime);
    let pods = desired(&[&pod("p", "Always")]);
    runtime.fail_starts(Some("not on this host"));
    let t = now();
    let statuses = pass(&mut executor, &pods, t);
    let status = main_status(&statuses, "uid-p");
    let waiting = waiting_of(&status).unwrap();
    let message = waiting.message.as_deref().unwrap_or_default();
    assert_eq!(waiting.reason.as_deref(), Some("RunContainerError"));
    assert!(message.contains("not on this host"), "{message}");
    runtime.fail_starts(None);
    pass(&mut executor, &pods, later(t, BASE - Duration::from_millis(1)));
    assert_eq!(runtime.starts().len(), 1, "not before the back-off");
    let statuses = pass(&mut executor, &pods, later(t, BASE));
    assert_eq!(runtime.running().len(), 1);
    assert_eq!(main_status(&statuses, "uid-p").restart_count, 1);
}

#[tokio::test(start_paused = true)]
async fn never_and_on_failure_pods_complete() {
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = executor(&runtime);
    let pods = desired(&[&pod("done", "OnFailure"), &pod("fail", "Never")]);
    let t = now();
    pass(&mut executor, &pods, t);
    for id in runtime.running() {
        runtime.exit(&id, if id.starts_with("uid-done") { 0 } else { 4 });
    }
    let statuses = pass(&mut executor, &pods, t);
    assert_eq!(phase_of(&statuses["uid-done"]), "Succeeded");
    assert_eq!(phase_of(&statuses["uid-fail"]), "Failed");
    assert_eq!(terminated_of(&main_status(&statuses, "uid-fail")).unwrap().exit_code, 4);
    assert_eq!(pass(&mut executor, &pods, later(t, Duration::from_secs(600))).len(), 0);
    assert_eq!(runtime.starts().len(), 2, "neither restarts");
    assert!(runtime.list().is_empty(), "both removed");
}

/// Passes every 10 ms of (paused) time until `what` holds: the background work and
/// its outcomes, which each pass takes in, have come through.
async fn pass_until(
    executor: &mut Executor,
    runtime: &FakeRuntime,
    pods: &BTreeMap<String, Pod>,
    mut t: Now,
    what: impl Fn(&FakeRuntime) -> bool,
) -> Now {
    for _ in 0..1000 {
        if what(runtime) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        t = later(t, Duration::from_millis(10));
        pass(executor, pods, t);
    }
    panic!("the background work never finished");
}

fn with_post_start(mut pod: Pod, handler: berth_api::objects::LifecycleHandler) -> Pod {
    pod.spec.containers[0].lifecycle = Some(k8s_openapi::api::core::v1::Lifecycle {
        post_start: Some(handler),
        ..Default::default()
    });
    pod
}

#[tokio::test(start_paused = true)]
async fn post_start_hooks_hold_the_next_container_back_and_a_failing_one_kills_its_own() {
    use k8s_openapi::api::core::v1::{HTTPGetAction, LifecycleHandler, SleepAction};
    // A hook that takes a while: the second container starts only after it.
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = executor(&runtime);
    let mut two = super::fixtures::pod_of("two", "Always", &["first", "second"]);
    two = with_post_start(
        two,
        LifecycleHandler {
            sleep: Some(SleepAction { seconds: 5 }),
            ..Default::default()
        },
    );
    let pods = desired(&[&two]);
    let t0 = now();
    let statuses = pass(&mut executor, &pods, t0);
    assert_eq!(runtime.starts().len(), 1);
    let first = &container_statuses(&statuses["uid-two"])[0];
    assert_eq!(
        waiting_of(first).and_then(|w| w.reason.as_deref()),
        Some("ContainerCreating"),
        "{first:?}"
    );
    pass_until(&mut executor, &runtime, &pods, t0, |r| r.starts().len() == 2).await;
    assert!(
        container_statuses(&executor_statuses(&executor)["uid-two"])
            .iter()
            .all(|s| running_of(s).is_some())
    );

    // A hook that fails (nothing listens on port 1): its container is killed, and
    // restarted after the back-off as its policy says.
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = self::executor(&runtime);
    let failing = with_post_start(
        pod("failing", "Always"),
        LifecycleHandler {
            http_get: Some(HTTPGetAction {
                host: Some("127.0.0.1".into()),
                port: berth_api::objects::IntOrString::Int(1),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let pods = desired(&[&failing]);
    pass(&mut executor, &pods, t0);
    let t = pass_until(&mut executor, &runtime, &pods, t0, |r| !r.stops().is_empty()).await;
    pass_until(&mut executor, &runtime, &pods, t, |r| r.removed().len() == 1).await;
    let restarted = later(t, BASE + Duration::from_secs(1));
    pass(&mut executor, &pods, restarted);
    assert_eq!(runtime.starts().len(), 2, "restarted after the back-off");
    let statuses = executor_statuses(&executor);
    let status = &container_statuses(&statuses["uid-failing"])[0];
    assert_eq!(status.restart_count, 1, "{status:?}");
}
