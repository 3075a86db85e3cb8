//! The executor with the real pieces: runc containers from a busybox image built in
//! the test, and the pod network of real CNI plugins in a network namespace standing
//! for the host. Only the image store is a fake (it answers with the test's image).
//! Needs root, runc, overlayfs, cgroup v1 and the CNI plugins: skipped without them on
//! a developer's machine, failing under CI. The fixtures' Drops remove every
//! container, namespace and pod network, whether the test passed or not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::executor::Executor;
use super::fixtures::{desired, later, now, pod};
use crate::agent::workloads::{Runtimes, Workloads};
use crate::image::fake::{FakeImages, pulled};
use crate::image::{ImageConfig, PulledImage};
use crate::network::tests::fixtures::{Host, can_run};
use crate::network::{CniNetwork, PodNetwork};
use crate::runtime::oci::tests::fixture::{DEADLINE, Fixture};
use crate::runtime::{ContainerState, OciRuntime, Runtime};
use berth_api::meta::MetaExt;
use berth_api::objects::Pod;

const IMAGE: &str = "127.0.0.1:5000/busybox:test";

/// Passes (real time) until `what` holds, or panics naming `waiting_for`.
async fn pass_until(
    executor: &mut Executor,
    pods: &BTreeMap<String, Pod>,
    waiting_for: &str,
    what: impl Fn(&Executor) -> bool,
) {
    let start = Instant::now();
    let mut t = now();
    while start.elapsed() < DEADLINE {
        for action in executor.pass(pods, t) {
            if let super::plan::Action::ReportStatus { pod_uid, status } = action {
                executor.reported(&pod_uid, *status);
            }
        }
        if what(executor) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        t = later(t, Duration::from_millis(100));
    }
    panic!("gave up waiting for {waiting_for}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_from_its_image_in_its_own_network_and_leaves_nothing_behind() {
    let Some(fixture) = Fixture::new() else { return };
    if !can_run() {
        return;
    }
    let host = Host::new("agent");
    let network = Arc::new(CniNetwork::new(host.network().settings().clone()));
    network.set_pod_cidr(Some("10.244.7.0/24".parse().unwrap()));
    let runtime = Arc::new(OciRuntime::new(fixture.state.path().to_path_buf()).unwrap());
    let images = Arc::new(FakeImages::new());
    images.answer(
        IMAGE,
        Ok(PulledImage {
            layers: fixture.layers.clone(),
            config: ImageConfig {
                entrypoint: vec!["/bin/sh".into(), "-c".into()],
                cmd: vec!["hostname; cat /etc/hosts; echo ready; exec sleep 300".into()],
                env: vec!["PATH=/bin".into()],
                ..Default::default()
            },
            ..pulled(IMAGE)
        }),
    );
    let sandboxes = tempfile::tempdir().unwrap();
    let workloads = Workloads {
        runtimes: Runtimes::new(runtime.clone(), true),
        images: Some(images),
        network: Some(network.clone()),
    };
    let mut executor = Executor::new(workloads, Duration::from_secs(10), "10.0.0.1".into())
        .with_sandbox_dir(sandboxes.path().to_path_buf(), "n1");
    let mut web = pod("web", "Always");
    // Unique on the host: cgroup names are host-wide.
    web.metadata.uid = Some(format!("agent-e2e-{}", std::process::id()));
    web.spec.containers[0].command = None;
    web.spec.containers[0].image = Some(IMAGE.into());
    let uid = web.metadata.uid().to_string();
    pass_until(&mut executor, &desired(&[&web]), "the container to run", |_| {
        runtime.list().iter().any(|c| c.state.is_running())
    })
    .await;

    let status = executor.memory().pods[&uid].reported.clone().expect("a status");
    let pod_ip = status.pod_ip.expect("a pod IP");
    assert!(pod_ip.starts_with("10.244.7."), "from the node's block: {pod_ip}");
    let info = runtime.list().pop().unwrap();
    let ContainerState::Running { pid, .. } = info.state else {
        panic!("{info:?}")
    };
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(ns(&pid.to_string()), ns("self"), "its own network namespace");
    let log = runtime.log_path(&uid, "main");
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("ready") && start.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(output.starts_with("web\n"), "the pod's hostname: {output}");
    assert!(output.contains(&format!("{pod_ip}\tweb\n")), "its /etc/hosts: {output}");

    web.metadata.deletion_timestamp = Some(berth_api::time::from_system_time(std::time::SystemTime::now()));
    // The sandbox's network goes first, then its namespaces and files: the teardown is
    // over when the pod's directory is gone.
    pass_until(&mut executor, &desired(&[&web]), "the pod's teardown", |_| {
        runtime.list().is_empty() && network.list().is_empty() && !sandboxes.path().join(&uid).exists()
    })
    .await;
    assert!(host.netns_files().is_empty(), "no network namespace left");
    assert!(host.leases().is_empty(), "the address is free again");
}
