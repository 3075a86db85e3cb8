//! The agent against a real store and real processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::runtime::ContainerState;
use crate::runtime::{ProcessRuntime, Runtime};
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::objects::{Container, ContainerStatus, PodSpec, PodStatus};
use berth_client::testing::{TestStore, free_port, store};
use berth_testkit::eventually;

struct TestAgent {
    config: AgentConfig,
    runtime: Arc<ProcessRuntime>,
    task: tokio::task::JoinHandle<()>,
}

fn config(t: &TestStore, dir: &std::path::Path) -> AgentConfig {
    AgentConfig {
        name: "n1".into(),
        store_endpoints: vec![t.client_url.clone()],
        store_tls: None,
        data_dir: dir.to_path_buf(),
        local_volume_dir: dir.join("volumes"),
        listen: ([127, 0, 0, 1], free_port()).into(),
        advertise_address: "127.0.0.1".into(),
        cpu_millis: 2000,
        memory_bytes: 1 << 30,
        labels: BTreeMap::new(),
        lease_ttl: Duration::from_secs(3),
        restart_backoff: Duration::from_millis(300),
        stop_pods_on_exit: false,
        cni: crate::network::CniSettings::new(dir.join("network")),
        pod_routes: None,
        dns: super::dns::ClusterDnsConfig::default(),
        proxy: None,
        envelope: None,
        tls: None,
        api: None,
    }
}

fn start(config: AgentConfig) -> TestAgent {
    let runtime = Arc::new(ProcessRuntime::new(config.data_dir.clone()).unwrap());
    let task = tokio::spawn({
        let (config, runtime) = (config.clone(), runtime.clone());
        async move {
            run(config, runtime, std::future::pending()).await.unwrap();
        }
    });
    TestAgent { config, runtime, task }
}

fn pod(name: &str, script: &str, restart_policy: &str) -> Pod {
    let mut pod = Pod::new(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        PodSpec {
            containers: vec![Container {
                name: "main".into(),
                command: Some(vec!["sh".into(), "-c".into(), script.into()]),
                ..Default::default()
            }],
            restart_policy: Some(restart_policy.into()),
            node_name: Some("n1".into()),
            termination_grace_period_seconds: Some(2),
            ..Default::default()
        },
    );
    pod.metadata.labels_mut().insert("test".into(), name.into());
    pod
}

async fn status_of(registry: &Registry, name: &str) -> Option<Pod> {
    registry.get::<PodSpec>("default", name).await.ok().flatten()
}

fn phase_of(status: &PodStatus) -> &str {
    status.phase.as_deref().unwrap_or_default()
}

fn container_statuses(status: &PodStatus) -> &[ContainerStatus] {
    status.container_statuses.as_deref().unwrap_or_default()
}

fn running_pids(runtime: &ProcessRuntime) -> Vec<u32> {
    runtime
        .list()
        .into_iter()
        .filter_map(|c| match c.state {
            ContainerState::Running { pid, .. } => Some(pid),
            ContainerState::Exited { .. } => None,
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_pod_runs_reports_serves_logs_and_stops_when_deleted() {
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start(config(&t, dir.path()));
    let registry = t.registry();
    let node = eventually("the node to register", async || {
        registry.get::<NodeSpec>("", "n1").await.ok().flatten()
    })
    .await;
    let allocatable = node.status.allocatable.as_ref();
    assert_eq!(allocatable.and_then(|a| a.get("cpu")).map(|q| q.0.as_str()), Some("2"));
    assert!(
        node.status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    assert!(t.kv.get(&heartbeat_key("n1")).await.unwrap().is_some());

    registry
        .create(&pod("web", "echo hello from $BERTH_POD_NAME; exec sleep 60", ""), None)
        .await
        .unwrap();
    let running = eventually("the pod to run", async || {
        status_of(&registry, "web")
            .await
            .filter(|p| phase_of(&p.status) == "Running")
    })
    .await;
    let status = &container_statuses(&running.status)[0];
    assert!(status.state.as_ref().is_some_and(|s| s.running.is_some()), "{status:?}");
    assert!(
        running
            .status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let pids = running_pids(&agent.runtime);
    assert_eq!(pids.len(), 1);
    assert!(alive(pids[0]));

    let logs = berth_client::http_client::HttpClient::new(vec![format!("http://{}", agent.config.listen)]);
    let text = eventually("the log to have the greeting", async || {
        let r = logs
            .request("GET", "/containerLogs/default/web/main", None)
            .await
            .ok()?;
        let text = String::from_utf8(r.body).ok()?;
        text.contains("hello from web").then_some(text)
    })
    .await;
    assert_eq!(text.trim(), "hello from web");
    let missing = logs
        .request("GET", "/containerLogs/default/nope/main", None)
        .await
        .unwrap();
    assert_eq!(missing.status, 404);

    registry.delete::<PodSpec>("default", "web", None, None).await.unwrap();
    eventually("the process to stop", async || (!alive(pids[0])).then_some(())).await;
    eventually("the runtime to forget it", async || {
        agent.runtime.list().is_empty().then_some(())
    })
    .await;
    agent.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_and_growing_back_off() {
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start(config(&t, dir.path()));
    let registry = t.registry();
    registry.create(&pod("crash", "exit 3", "Always"), None).await.unwrap();
    registry
        .create(&pod("done", "exit 0", "OnFailure"), None)
        .await
        .unwrap();
    registry.create(&pod("fail", "exit 4", "Never"), None).await.unwrap();

    // Record when each restart count is first seen; the gaps must grow.
    let mut seen_at = Vec::new();
    let mut saw_backoff = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen_at.len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "restarts stalled at {seen_at:?}"
        );
        if let Some(p) = status_of(&registry, "crash").await
            && let Some(s) = container_statuses(&p.status).first()
        {
            let waiting = s.state.as_ref().and_then(|s| s.waiting.as_ref());
            saw_backoff |= waiting.is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
            if s.restart_count as usize > seen_at.len() {
                let last_terminated = s.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                assert_eq!(last_terminated.map(|t| t.exit_code), Some(3), "{s:?}");
                seen_at.push(tokio::time::Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_backoff, "a crashing container waits in CrashLoopBackOff");
    let first_gap = seen_at[1] - seen_at[0];
    let last_gap = seen_at[4] - seen_at[3];
    assert!(
        last_gap > first_gap * 2,
        "back-off must grow: first gap {first_gap:?}, last gap {last_gap:?}"
    );

    let done = eventually("OnFailure + exit 0 to succeed", async || {
        status_of(&registry, "done")
            .await
            .filter(|p| phase_of(&p.status) == "Succeeded")
    })
    .await;
    assert_eq!(container_statuses(&done.status)[0].restart_count, 0);
    let failed = eventually("Never + exit 4 to fail", async || {
        status_of(&registry, "fail")
            .await
            .filter(|p| phase_of(&p.status) == "Failed")
    })
    .await;
    let failed = &container_statuses(&failed.status)[0];
    let terminated = failed.state.as_ref().and_then(|s| s.terminated.clone()).unwrap();
    assert_eq!(terminated.exit_code, 4);
    assert_eq!(failed.restart_count, 0);
    agent.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_its_containers_and_stops_what_was_deleted_meanwhile() {
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&t, dir.path());
    let registry = t.registry();
    registry.create(&pod("keep", "exec sleep 60", ""), None).await.unwrap();
    registry.create(&pod("drop", "exec sleep 60", ""), None).await.unwrap();
    let first = start(config.clone());
    eventually("both pods to run", async || {
        (running_pids(&first.runtime).len() == 2).then_some(())
    })
    .await;
    let keep_pid = first
        .runtime
        .list()
        .into_iter()
        .find(|c| c.pod.ends_with("/keep"))
        .and_then(|c| match c.state {
            ContainerState::Running { pid, .. } => Some(pid),
            ContainerState::Exited { .. } => None,
        })
        .unwrap();
    let drop_pid = running_pids(&first.runtime)
        .into_iter()
        .find(|p| *p != keep_pid)
        .unwrap();

    // The agent dies without stopping anything; meanwhile one pod is deleted.
    first.task.abort();
    let _ = first.task.await;
    drop(first.runtime);
    registry.delete::<PodSpec>("default", "drop", None, None).await.unwrap();
    assert!(alive(keep_pid) && alive(drop_pid));

    let second = start(config);
    eventually("the deleted pod's process to stop", async || {
        (!alive(drop_pid)).then_some(())
    })
    .await;
    // The kept pod still runs in the same process: adopted, not started again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(alive(keep_pid));
    assert_eq!(running_pids(&second.runtime), vec![keep_pid]);
    let keep = status_of(&registry, "keep").await.unwrap();
    assert_eq!(container_statuses(&keep.status)[0].restart_count, 0);
    registry.delete::<PodSpec>("default", "keep", None, None).await.unwrap();
    eventually("the kept pod's process to stop", async || {
        (!alive(keep_pid)).then_some(())
    })
    .await;
    second.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_loses_its_lease_stops_its_workloads() {
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start(config(&t, dir.path()));
    let registry = t.registry();
    registry
        .create(&pod("fenced", "exec sleep 60", ""), None)
        .await
        .unwrap();
    let pid = eventually("the pod to run", async || running_pids(&agent.runtime).first().copied()).await;
    // The lease behind the heartbeat goes away (as when the store expires it).
    let heartbeat = t.kv.get(&heartbeat_key("n1")).await.unwrap().unwrap();
    t.kv.revoke(heartbeat.lease).await.unwrap();
    eventually("the workload to be stopped", async || (!alive(pid)).then_some(())).await;
    // It registers again with a new lease and runs the pod (still bound to it) anew.
    let new_pid = eventually("the pod to run again", async || {
        running_pids(&agent.runtime).first().copied().filter(|p| *p != pid)
    })
    .await;
    assert!(alive(new_pid));
    let heartbeat_again = t.kv.get(&heartbeat_key("n1")).await.unwrap().unwrap();
    assert_ne!(heartbeat_again.lease, heartbeat.lease);
    agent.task.abort();
    let _ = agent.task.await;
    let runtime = agent.runtime;
    for c in runtime.list() {
        let _ = runtime.stop(&c.id, Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_statuses_carry_addresses_and_ids_and_keep_what_others_wrote() {
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start(config(&t, dir.path()));
    let registry = t.registry();
    // As stored before the agent's first report: the class the API server set (the
    // agent alone would say BestEffort), a field of the scheduler's, and a digest
    // another writer knew.
    let mut p = pod("kept", "exec sleep 60", "");
    p.spec.containers[0].image = Some("busybox:1.36".into());
    p.status = PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some("Burstable".into()),
        nominated_node_name: Some("n1".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "main".into(),
            image: "busybox:1.36".into(),
            image_id: "docker.io/library/busybox@sha256:0123".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    registry.create(&p, None).await.unwrap();
    let running = eventually("the pod to run", async || {
        status_of(&registry, "kept")
            .await
            .filter(|p| phase_of(&p.status) == "Running")
    })
    .await;
    let status = &running.status;
    assert_eq!(status.qos_class.as_deref(), Some("Burstable"), "{status:?}");
    assert_eq!(status.nominated_node_name.as_deref(), Some("n1"), "{status:?}");
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.1"));
    let host_ips: Vec<&str> = status.host_ips.iter().flatten().map(|ip| ip.ip.as_str()).collect();
    let pod_ips: Vec<&str> = status.pod_ips.iter().flatten().map(|ip| ip.ip.as_str()).collect();
    assert_eq!((host_ips, pod_ips), (vec!["127.0.0.1"], vec!["127.0.0.1"]));
    let c = &container_statuses(status)[0];
    assert_eq!(c.image_id, "docker.io/library/busybox@sha256:0123");
    assert_eq!(c.started, Some(true));
    let id = agent.runtime.list()[0].id.clone();
    assert_eq!(
        c.container_id.as_deref(),
        Some(format!("berth-process://{id}").as_str())
    );

    registry.delete::<PodSpec>("default", "kept", None, None).await.unwrap();
    eventually("the runtime to forget it", async || {
        agent.runtime.list().is_empty().then_some(())
    })
    .await;
    agent.task.abort();
}

/// Whether the process runtime can limit memory here: a memory cgroup we may write.
fn memory_cgroup_is_writable() -> bool {
    let parent = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "/sys/fs/cgroup/berth"
    } else {
        "/sys/fs/cgroup/memory/berth"
    };
    std::fs::create_dir_all(parent).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_ends_oom_killed() {
    if !memory_cgroup_is_writable() {
        berth_testkit::skip("a memory cgroup this test may write");
        return;
    }
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start(config(&t, dir.path()));
    let registry = t.registry();
    // `tail -c N` from a pipe holds the last N bytes in memory: 200 MiB, over 50 MiB.
    let mut hog = pod(
        "hog",
        "head -c 209715200 /dev/zero | tail -c 209715200 > /dev/null",
        "Never",
    );
    hog.spec.containers[0].resources = Some(berth_api::objects::ResourceRequirements {
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity("50Mi".into()))])),
        ..Default::default()
    });
    registry.create(&hog, None).await.unwrap();
    let failed = eventually("the hog to fail", async || {
        status_of(&registry, "hog")
            .await
            .filter(|p| phase_of(&p.status) == "Failed")
    })
    .await;
    let c = &container_statuses(&failed.status)[0];
    let terminated = c.state.as_ref().and_then(|s| s.terminated.as_ref()).unwrap();
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"), "{c:?}");
    assert_eq!(terminated.exit_code, 137);
    assert!(
        terminated
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("berth-process://")),
        "{terminated:?}"
    );
    assert_eq!(c.container_id, terminated.container_id);
    assert_eq!(c.started, Some(false));
    agent.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_keeps_the_pod_cidr_the_control_plane_gave_the_node() {
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let registry = t.registry();
    let mut node = Node::new(
        ObjectMeta {
            name: Some("n1".into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.spec.pod_cidr = Some("10.244.3.0/24".into());
    node.spec.pod_cidrs = Some(vec!["10.244.3.0/24".into()]);
    registry.create(&node, None).await.unwrap();
    let agent = start(config(&t, dir.path()));
    let registered = eventually("the agent writes its Node's status", async || {
        let node = registry.get::<NodeSpec>("", "n1").await.ok()??;
        node.status.conditions.is_some().then_some(node)
    })
    .await;
    assert_eq!(registered.spec.pod_cidr.as_deref(), Some("10.244.3.0/24"));
    assert_eq!(registered.spec.pod_cidrs, Some(vec!["10.244.3.0/24".to_string()]));
    let handlers: Vec<Option<String>> = registered
        .status
        .runtime_handlers
        .iter()
        .flatten()
        .map(|h| h.name.clone())
        .collect();
    assert_eq!(
        handlers,
        [Some("process".to_string())],
        "the runtimes it offers, for the scheduler"
    );
    agent.task.abort();
    let _ = agent.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_the_pod_network_learns_its_pod_cidr_from_its_node() {
    use crate::network::routes::NodeRoutes;
    use crate::network::tests::fixtures::{Host, can_run};
    if !can_run() {
        return;
    }
    // The node's routes and iptables changes go to a namespace of the test's.
    let host = Host::new("agent");
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&t, dir.path());
    config.pod_routes = Some(NodeRoutes::for_network("n1", host.network()));
    let agent = start(config);
    let registry = t.registry();
    eventually("the agent registers its Node", async || {
        registry.get::<NodeSpec>("", "n1").await.ok()?
    })
    .await;
    assert_eq!(
        *host.network().pod_cidr().borrow(),
        None,
        "no block before the control plane gives one"
    );
    registry
        .modify::<NodeSpec>("", "n1", None, |node| {
            node.spec.pod_cidr = Some("10.244.5.0/24".into());
            true
        })
        .await
        .unwrap();
    eventually("the network learns the node's block", async || {
        host.network()
            .pod_cidr()
            .borrow()
            .filter(|c| c.to_string() == "10.244.5.0/24")
    })
    .await;
    agent.task.abort();
    let _ = agent.task.await;
}

/// The agent runs the service proxy and the network policy filter while it runs,
/// and their rules go when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_programs_the_services_while_it_runs_and_removes_its_rules_when_it_stops() {
    use crate::network::tests::fixtures::{Host, can_run};
    use crate::proxy::ProxySettings;
    if !can_run() {
        return;
    }
    // The node's iptables changes go to a namespace of the test's.
    let host = Host::new("agentpx");
    let t = store().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&t, dir.path());
    config.proxy = Some(ProxySettings {
        node_name: "n1".into(),
        tag: "berth0".into(),
        host_netns: Some(host.netns.clone()),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        route_bridge: None,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = Arc::new(ProcessRuntime::new(config.data_dir.clone()).unwrap());
    let task = tokio::spawn(async move {
        run(config, runtime, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]},
    });
    t.kv.put("/registry/services/default/web", service.to_string().into_bytes(), 0)
        .await
        .unwrap();
    let nat = || crate::network::netns::run_in(Some(&host.netns), "iptables-save", &[]).unwrap();
    eventually("the agent's proxy writes the Service's rules", async || {
        tokio::task::block_in_place(nat)
            .contains("default/web has no endpoints")
            .then_some(())
    })
    .await;
    // The network policy filter runs beside the proxy, jumped to from FORWARD.
    eventually("the agent's network policy filter is in place", async || {
        tokio::task::block_in_place(nat)
            .contains("-A FORWARD -m comment --comment \"berth network policies\" -j BERTH-NETPOL-berth0")
            .then_some(())
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the agent stops")
        .unwrap();
    let saved = tokio::task::block_in_place(nat);
    assert!(
        !saved.contains("BERTH-"),
        "nothing of the proxy's or the filter's is left:\n{saved}"
    );
}
