//! The leader's control loops: the controllers and the scheduler, run while this
//! replica holds the leadership record ([`berth_client::leadership`]: [`claim`]
//! returns the [`Fence`] every write of the loops compares, so a deposed leader's
//! late writes fail with `Fenced` instead of racing the new leader's). This is the
//! one crate that sees both the controllers and the scheduler.
//!
//! ```text
//!  Raft leader (term T, node N) ──► claim(T, N) ──► fence ──► run_while_leader
//!                                                    │ informers + controllers + scheduler
//!                                                    ▼
//!                       returns when `stop` flips, or the record changes / a write is Fenced
//! ```

#[cfg(test)]
mod aggregation_tests;
#[cfg(test)]
mod controller_tests;
#[cfg(test)]
mod hpa_tests;
#[cfg(test)]
mod node_ipam_tests;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod rollout_tests;
#[cfg(test)]
mod scheduling_tests;
#[cfg(test)]
mod statefulset_tests;
#[cfg(test)]
mod test_support;

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use berth_client::kv::{Fence, Kv};
use berth_client::registry::Registry;
use berth_controller_runtime::{Caches, Context};

pub use berth_client::leadership::{LEADER_KEY, claim, record};

/// How the control loops behave.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSettings {
    /// How long a node's heartbeat may be absent before it is marked NotReady and its
    /// pods are replaced elsewhere (Kubernetes' `--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    pub scheduler_strategy: berth_scheduler::Strategy,
    /// Every loop does a full pass this often even without events.
    pub resync: Duration,
    /// How node IPAM carves the cluster CIDR into the nodes' pod CIDRs.
    pub node_ipam: berth_controllers::node_ipam::NodeIpamSettings,
    /// How often each HorizontalPodAutoscaler is evaluated (Kubernetes'
    /// `--horizontal-pod-autoscaler-sync-period`, 15 s).
    pub hpa_sync_period: Duration,
    /// How the pods and claims the controllers create are admitted (the API
    /// server's `--pod-security-default-enforce`).
    pub admission: berth_client::admission::Admission,
    /// The cluster's CA (PEM) published in every namespace's `kube-root-ca.crt`
    /// ConfigMap (kube-controller-manager's `--root-ca-file`); none, none published.
    pub root_ca: Option<String>,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            node_monitor_grace_period: Duration::from_secs(10),
            scheduler_strategy: berth_scheduler::Strategy::default(),
            resync: Duration::from_secs(30),
            node_ipam: Default::default(),
            hpa_sync_period: berth_controllers::hpa::DEFAULT_SYNC_PERIOD,
            admission: Default::default(),
            root_ca: None,
        }
    }
}

/// Why [`run_while_leader`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// `stop` flipped (or its sender was dropped).
    Stopped,
    /// The leadership record is no longer the one we claimed: re-check leadership.
    Fenced,
    /// A loop panicked (a bug); the caller may claim again and restart them.
    Failed(String),
}

/// Runs the informers, the controllers (deployment, replicaset, statefulset, garbage
/// collector, node lifecycle, node IPAM, disruption, EndpointSlices, horizontal pod
/// autoscaler, dependencies, the volume binder, storage protection, resource quotas,
/// ServiceAccounts and root CAs) and
/// the scheduler, all writing with `fence`, until `stop` becomes true or the
/// leadership record changes (a write fails with `Fenced`, or the watch
/// of the record sees it replaced). Everything it started is stopped when it returns.
pub async fn run_while_leader(
    kv: Kv,
    fence: Fence,
    settings: ControlSettings,
    mut stop: watch::Receiver<bool>,
) -> Exit {
    if *stop.borrow_and_update() {
        return Exit::Stopped;
    }
    tracing::info!(record = %fence.key, revision = fence.mod_revision, "leading: starting the control loops");
    let ctx = Context {
        registry: Registry::new(kv.clone()),
        caches: Caches::start(&kv),
        fence: fence.clone(),
        events: Default::default(),
        admission: settings.admission,
    };
    let mut loops: JoinSet<&'static str> = JoinSet::new();
    let resync = settings.resync;
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::deployment::run(c, resync).await;
        "deployment"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::replicaset::run(c, resync).await;
        "replicaset"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::statefulset::run(c, resync).await;
        "statefulset"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::gc::run(c, resync).await;
        "garbage-collector"
    });
    let c = ctx.clone();
    let grace = settings.node_monitor_grace_period;
    loops.spawn(async move {
        berth_controllers::node_lifecycle::run(c, grace, resync).await;
        "node-lifecycle"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::taint_eviction::run(c, resync).await;
        "taint-eviction"
    });
    let c = ctx.clone();
    let ipam = settings.node_ipam;
    loops.spawn(async move {
        berth_controllers::node_ipam::run(c, ipam, resync).await;
        "node-ipam"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::disruption::run(c, resync).await;
        "disruption"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::endpointslice::run(c, resync).await;
        "endpointslice"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::depends_on::run(c, resync).await;
        "depends-on"
    });
    let c = ctx.clone();
    let hpa_sync_period = settings.hpa_sync_period;
    loops.spawn(async move {
        berth_controllers::hpa::run(c, hpa_sync_period).await;
        "horizontal-pod-autoscaler"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::volume_binder::run(c, resync).await;
        "volume-binder"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::storage_protection::run(c, resync).await;
        "storage-protection"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::cluster_role_aggregation::run(c, resync).await;
        "clusterrole-aggregation"
    });
    let c = ctx.clone();
    loops.spawn(async move {
        berth_controllers::resource_quota::run(c, resync).await;
        "resource-quota"
    });
    let c = ctx.clone();
    let root_ca = settings.root_ca.clone();
    loops.spawn(async move {
        berth_controllers::service_account::run(c, root_ca, resync).await;
        "serviceaccount"
    });
    let c = ctx.clone();
    let strategy = settings.scheduler_strategy;
    loops.spawn(async move {
        berth_scheduler::run::run(c, strategy, resync).await;
        "scheduler"
    });
    loops.spawn(async move {
        watch_record(kv, fence).await;
        "leadership-record"
    });
    let exit = tokio::select! {
        _ = stop.wait_for(|stop| *stop) => Exit::Stopped,
        Some(done) = loops.join_next() => match done {
            Ok(name) => {
                tracing::warn!(by = name, "lost the leadership record: stopping the control loops");
                Exit::Fenced
            }
            Err(e) => {
                tracing::error!(error = %e, "a control loop failed: stopping the control loops");
                Exit::Failed(e.to_string())
            }
        },
    };
    loops.shutdown().await;
    exit
}

/// Returns once the leadership record no longer has the fence's mod_revision.
async fn watch_record(kv: Kv, fence: Fence) {
    loop {
        let at = match kv.list(&fence.key).await {
            Ok((kvs, at)) => {
                let current = kvs.iter().find(|kv| kv.key == fence.key);
                if current.map(|kv| kv.mod_revision) != Some(fence.mod_revision) {
                    return;
                }
                at
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the leadership record; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(mut watch) = kv.watch(&fence.key, at + 1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(Ok((_, events))) = watch.next().await {
            if events.iter().any(|e| e.key() == fence.key) {
                return;
            }
        }
        // The watch ended: read the record again before watching anew.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::meta::ObjectMeta;
    use berth_api::objects::{Pod, PodSpec};
    use berth_client::kv::KvError;
    use berth_client::registry::Registry;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deposed_leader_stops_and_cannot_write() {
        let t = berth_client::testing::store().await;
        let old = claim(&t.kv, 1, 1, "old").await.unwrap();
        let (_stop, stop_rx) = watch::channel(false);
        let running = tokio::spawn(run_while_leader(
            t.kv.clone(),
            old.clone(),
            ControlSettings::default(),
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!running.is_finished(), "the loops run while the record is ours");

        claim(&t.kv, 2, 1, "new").await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .expect("the deposed leader's loops return")
            .unwrap();
        assert_eq!(exit, Exit::Fenced);

        let pod = Pod::new(
            ObjectMeta {
                name: Some("late".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            PodSpec::default(),
        );
        let registry = Registry::new(t.kv.clone());
        assert_eq!(registry.create(&pod, Some(&old)).await, Err(KvError::Fenced));
        assert_eq!(registry.get::<PodSpec>("default", "late").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_returns() {
        let t = berth_client::testing::store().await;
        let fence = claim(&t.kv, 1, 1, "a").await.unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let running = tokio::spawn(run_while_leader(
            t.kv.clone(),
            fence,
            ControlSettings::default(),
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(true).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(exit, Exit::Stopped);
    }
}
