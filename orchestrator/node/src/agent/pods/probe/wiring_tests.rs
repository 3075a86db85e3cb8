//! The executor with the fake runtime and real tcpSocket probes against listeners on
//! loopback (the fake runtime's pods have the node's address, 127.0.0.1 here): the
//! workers start with the container, readiness follows the listener both ways, and a
//! failed liveness probe stops the container, whose exit the next pass records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::agent::pods::executor::Executor;
use crate::agent::pods::fixtures::{BASE, conditions_of, container_statuses, desired, pod};
use crate::agent::pods::memory::Now;
use crate::agent::pods::plan::Action;
use crate::runtime::FakeRuntime;
use berth_api::objects::{IntOrString, Pod, PodStatus};
use berth_api::probes::{Probe, TCPSocketAction};

fn tcp_probe(port: u16) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Default::default()
    }
}

/// Passes (each woken by a probe result or after 100 ms) until `what` holds of the
/// pod's latest status; panics after 20 s.
async fn passes_until(executor: &mut Executor, pods: &BTreeMap<String, Pod>, what: impl Fn(&PodStatus) -> bool) {
    let wake = executor.probe_results_wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut latest = None;
    while tokio::time::Instant::now() < deadline {
        for action in executor.pass(pods, Now::read()) {
            if let Action::ReportStatus { pod_uid, status } = action {
                executor.reported(&pod_uid, (*status).clone());
                latest = Some(*status);
            }
        }
        if latest.as_ref().is_some_and(&what) {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
    }
    panic!("the pod's status never got there: {latest:#?}");
}

fn is_ready(status: &PodStatus) -> bool {
    container_statuses(status).first().is_some_and(|c| c.ready)
        && conditions_of(status).iter().all(|c| c.status == "True")
}

#[tokio::test]
async fn probes_follow_real_listeners_through_the_executor() {
    let readiness = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liveness = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut web = pod("web", "Always");
    web.spec.containers[0].readiness_probe = Some(tcp_probe(readiness.local_addr().unwrap().port()));
    web.spec.containers[0].liveness_probe = Some(tcp_probe(liveness.local_addr().unwrap().port()));
    let pods = desired(&[&web]);
    let runtime = Arc::new(FakeRuntime::new());
    let mut executor = Executor::new(runtime.clone(), BASE, "127.0.0.1".into());

    passes_until(&mut executor, &pods, is_ready).await;
    assert_eq!(executor.probes_running(), 2);
    let id = runtime.running().pop().expect("the container runs");

    drop(readiness);
    passes_until(&mut executor, &pods, |s| !is_ready(s)).await;
    assert!(runtime.stops().is_empty(), "readiness never stops a container");

    drop(liveness);
    passes_until(&mut executor, &pods, |s| {
        container_statuses(s)
            .first()
            .and_then(|c| c.last_state.as_ref()?.terminated.as_ref())
            .is_some()
    })
    .await;
    assert_eq!(
        runtime.stops(),
        vec![(id, Duration::from_secs(2))],
        "killed once, with the pod's grace"
    );
    assert_eq!(executor.probes_running(), 0, "no run, no probes");
}
