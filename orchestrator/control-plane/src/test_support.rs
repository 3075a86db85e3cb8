//! For the control loops' integration tests: a real store with the leader's loops
//! running on it, nodes with heartbeats, and waiting for a condition (with a
//! generous "it hangs" timeout, never a timing assertion).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{ControlSettings, Exit, claim, run_while_leader};
use berth_api::conditions::{Condition, is_active, is_pod_ready, set_condition};
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::objects::{
    Deployment, DeploymentSpec, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodSpec, Quantity,
    ReplicaSet, ReplicaSetSpec, Resource,
};
pub use berth_api::testing::deployment;
use berth_client::kv::Kv;
use berth_client::registry::Registry;
use berth_client::testing::TestStore;
use berth_controller_runtime::informer::HEARTBEAT_PREFIX;
use berth_testkit::HANG_TIMEOUT;
/// Waits for a condition, with the testkit's generous "it hangs" timeout.
pub use berth_testkit::eventually;

pub struct ControlPlane {
    /// Kept so the store runs as long as the loops.
    _store: TestStore,
    pub registry: Registry,
    pub kv: Kv,
    stop: watch::Sender<bool>,
    running: Option<JoinHandle<Exit>>,
}

impl ControlPlane {
    pub async fn stop(mut self) -> Exit {
        let _ = self.stop.send(true);
        let running = self.running.take().expect("running");
        tokio::time::timeout(HANG_TIMEOUT, running)
            .await
            .expect("the loops stop")
            .expect("the loops do not panic")
    }

    /// Stops the loops and starts them again under a new claim at `term`, as a new
    /// leader would: they know only what their caches list.
    pub async fn lead_again(&mut self, term: u64, settings: ControlSettings) {
        let _ = self.stop.send(true);
        if let Some(running) = self.running.take() {
            let _ = tokio::time::timeout(HANG_TIMEOUT, running)
                .await
                .expect("the loops stop");
        }
        let fence = claim(&self.kv, term, 1, "test-leader").await.expect("claim");
        let (stop, stop_rx) = watch::channel(false);
        self.stop = stop;
        self.running = Some(tokio::spawn(run_while_leader(
            self.kv.clone(),
            fence,
            settings,
            stop_rx,
        )));
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// A store, claimed at term 1, with the loops running on it.
pub async fn start(settings: ControlSettings) -> ControlPlane {
    let store = berth_client::testing::store().await;
    let kv = store.kv.clone();
    let fence = claim(&kv, 1, 1, "test-leader").await.expect("claim");
    let (stop, stop_rx) = watch::channel(false);
    let running = tokio::spawn(run_while_leader(kv.clone(), fence.clone(), settings, stop_rx));
    ControlPlane {
        registry: store.registry(),
        _store: store,
        kv,
        stop,
        running: Some(running),
    }
}

/// Quick loops: a 1 s resync and the given grace period.
pub fn settings(grace: Duration) -> ControlSettings {
    ControlSettings {
        node_monitor_grace_period: grace,
        resync: Duration::from_secs(1),
        ..Default::default()
    }
}

/// Registers a ready Node offering `cpu` and 4Gi, as its agent would, and its
/// heartbeat key on a fresh lease (returned, for the test to revoke).
pub async fn add_node(kv: &Kv, name: &str, cpu: &str) -> i64 {
    let offer: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity(cpu.to_string())),
        ("memory".to_string(), Quantity("4Gi".to_string())),
    ]
    .into();
    let mut node = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.status = NodeStatus {
        capacity: Some(offer.clone()),
        allocatable: Some(offer),
        conditions: Some(vec![NodeCondition::new("Ready", "True", "KubeletReady", "")]),
        ..Default::default()
    };
    let lease = kv.grant(60).await.expect("a lease");
    kv.put(&format!("{HEARTBEAT_PREFIX}{name}"), name.as_bytes().to_vec(), lease)
        .await
        .expect("the heartbeat key");
    Registry::new(kv.clone()).create(&node, None).await.expect("the node");
    lease
}

pub async fn pods(registry: &Registry) -> Vec<Pod> {
    registry.list::<PodSpec>(None).await.expect("list pods").0
}

pub async fn replica_sets(registry: &Registry) -> Vec<ReplicaSet> {
    registry.list::<ReplicaSetSpec>(None).await.expect("list replicasets").0
}

pub async fn deployment_named(registry: &Registry, name: &str) -> Deployment {
    registry
        .get::<DeploymentSpec>("default", name)
        .await
        .expect("get deployment")
        .expect("the deployment exists")
}

/// What the agents would report (these tests run none): every active pod running
/// and ready, its `Ready` condition turned true now.
pub async fn make_pods_ready(registry: &Registry) {
    for pod in pods(registry).await {
        if !is_active(&pod) || is_pod_ready(&pod) {
            continue;
        }
        let (namespace, name) = (pod.metadata.namespace(), pod.metadata.name());
        // Gone meanwhile (replaced by a rollout): nothing to report.
        let _ = registry
            .modify::<PodSpec>(namespace, name, None, |pod| {
                pod.status.phase = Some("Running".into());
                let conditions = pod.status.conditions.get_or_insert_default();
                set_condition(
                    conditions,
                    PodCondition::new("Ready", "True", "", ""),
                    &berth_api::time::now(),
                );
                true
            })
            .await;
    }
}

pub async fn node(registry: &Registry, name: &str) -> Node {
    registry
        .get::<NodeSpec>("", name)
        .await
        .expect("get node")
        .expect("the node exists")
}

/// Counts the pods ever created under `/registry/pods/` from now on.
pub async fn count_pod_creations(kv: &Kv) -> watch::Receiver<usize> {
    let (_, at) = kv.list("/registry/pods/").await.expect("list");
    let mut stream = kv.watch("/registry/pods/", at + 1).await.expect("watch");
    let (tx, rx) = watch::channel(0);
    tokio::spawn(async move {
        while let Some(Ok((_, events))) = stream.next().await {
            let created = events
                .iter()
                .filter(|e| matches!(e, berth_client::kv::Event::Put(kv) if kv.create_revision == kv.mod_revision))
                .count();
            tx.send_modify(|n| *n += created);
        }
    });
    rx
}
