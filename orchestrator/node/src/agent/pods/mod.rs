//! The agent's pod loop: keeps the containers of the pods bound to this node running
//! as their restartPolicy says, stops what is no longer bound here, and reports each
//! pod's status when it changes.
//!
//! Decisions apart from effects:
//!
//! - `memory`: what the supervisor remembers between passes (restart counts,
//!   back-offs, earlier exits) and the pure transitions on it;
//! - `plan`: the pure decisions — adoption, restarts, starts, stops, the statuses to
//!   report — as `Action`s, given the memory, what the runtime reported and `now`;
//! - `status`: a pod's status (phase, conditions, container states) from its memory;
//! - `container_step`: one container's exit, restart, pull and start in a pass;
//! - `pull`, `sandbox`: a container's image and a pod's sandbox as remembered, with
//!   their back-offs; `container_spec`: a pod's container merged with its image;
//!   `config_env`: a container's own environment from ConfigMaps, Secrets, the pod's
//!   fields and the containers' resources (read here before each pass);
//! - `probe`: liveness, readiness and startup probes, on timers of their own; their
//!   results come to the memory in the pass, which kills what failed liveness;
//! - `executor`: reads nothing but the runtimes, carries out the actions, with
//!   `background` for the work that may take long (pulls, sandboxes, stops);
//! - here: the loop, the one clock read per pass, and the writes to the store.

mod background;
mod config_env;
mod config_watch;
mod container_spec;
mod container_step;
pub(crate) mod dns_config;
mod executor;
mod expansion;
mod hooks;
mod memory;
mod plan;
mod probe;
mod pull;
mod sandbox;
mod status;
mod tokens;
mod volumes;

pub(crate) use status::merge_status;

#[cfg(test)]
mod container_tests;
#[cfg(test)]
mod executor_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod image_tests;
#[cfg(test)]
mod init_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod sandbox_tests;
#[cfg(test)]
mod status_tests;
#[cfg(test)]
mod termination_tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::cluster::Cluster;
use super::workloads::Workloads;
use super::{IndexedPod, PodIndex};
use berth_api::kinds::pod::POD;
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, PodStatus};
use berth_api::time::from_system_time;
use berth_client::kv::{AbortOnDrop, KvError};
use executor::Executor;
use memory::Now;
use plan::{Action, pod_name};

pub(crate) struct PodSupervisor {
    node: String,
    cluster: Cluster,
    executor: Executor,
    index: PodIndex,
    /// Set when a ConfigMap or Secret may have changed (a watch saw a write, or the
    /// resync period passed): the next pass reads again what the running pods'
    /// volumes name.
    config_changed: Arc<std::sync::atomic::AtomicBool>,
    last_resync: Option<tokio::time::Instant>,
    /// The tokens of the pods' `serviceAccountToken` projections.
    tokens: tokens::Tokens,
}

/// How often the running pods' ConfigMap and Secret volumes are read again even
/// without a change seen (the kubelet's sync period), in case a watch missed one.
const VOLUME_RESYNC: Duration = Duration::from_secs(60);

impl PodSupervisor {
    pub(crate) fn new(
        node: String,
        cluster: Cluster,
        workloads: Workloads,
        backoff_base: Duration,
        index: PodIndex,
        host_ip: String,
        sandbox_dir: std::path::PathBuf,
    ) -> Self {
        // Events still go to the store (through the API server in a later step).
        let events = cluster.recorder("kubelet", &node);
        let executor = Executor::new(workloads, backoff_base, host_ip)
            .with_events(events)
            .with_secrets(Arc::new(cluster.clone()))
            .with_sandbox_dir(sandbox_dir, &node)
            .with_pod_namespaces();
        PodSupervisor {
            node,
            cluster,
            executor,
            index,
            config_changed: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            last_resync: None,
            tokens: tokens::Tokens::default(),
        }
    }

    /// Tells the pods the node's cluster DNS and gives their containers the Services'
    /// variables.
    pub(crate) fn with_dns(self, dns: Arc<super::dns::NodeDns>) -> Self {
        PodSupervisor {
            executor: self.executor.with_dns(dns),
            ..self
        }
    }

    /// Follows the pods bound to this node and keeps them running; returns only if
    /// the future is dropped.
    pub(crate) async fn run(&mut self) {
        let (tx, mut desired) = tokio::sync::watch::channel::<Option<BTreeMap<String, Pod>>>(None);
        let bound = Arc::new(super::BoundPods::new(self.node.clone(), tx));
        // Over the API only this node's pods come (the kubelet's field selector).
        let bound_here = Some(format!("spec.nodeName={}", self.node));
        let follower = tokio::spawn(self.cluster.clone().reflect(&POD, bound_here, bound));
        let _follower = AbortOnDrop(follower);
        // A change wakes the pass at once, so running pods' files follow within a read.
        // From the store, one watch of each kind; through the API, one watch per
        // object the pods name (config_watch.rs).
        let config_wake = Arc::new(tokio::sync::Notify::new());
        let mut watches = self
            .cluster
            .api_source()
            .map(|api| config_watch::ConfigWatches::new(api.clone(), self.config_changed.clone(), config_wake.clone()));
        let _changes = watches.is_none().then(|| {
            AbortOnDrop(tokio::spawn(watch_config(
                self.cluster.store.kv.clone(),
                self.config_changed.clone(),
                config_wake.clone(),
            )))
        });
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let probed = self.executor.probe_results_wake();
        loop {
            tokio::select! {
                changed = desired.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
                _ = probed.notified() => {}
                _ = config_wake.notified() => {}
            }
            let current = desired.borrow_and_update().clone();
            if let Some(pods) = current {
                if let Some(watches) = &mut watches {
                    watches.follow(config_watch::named_by(pods.values()));
                }
                self.sync(&pods).await;
            }
        }
    }

    /// Reads the handlers of the RuntimeClasses the pods name that it has not read
    /// yet (admission checked they exist; one that cannot be read now is read on a
    /// later pass, and meanwhile taken as naming its handler).
    async fn read_runtime_classes(&mut self, desired: &BTreeMap<String, Pod>) {
        use berth_api::kinds::runtime_class::{RUNTIME_CLASS, handler_of_stored};
        let classes: std::collections::BTreeSet<String> = desired
            .values()
            .filter_map(|pod| pod.spec.runtime_class_name.clone())
            .filter(|class| !class.is_empty() && !self.executor.memory().class_handlers.contains_key(class))
            .collect();
        for class in classes {
            match self.cluster.get(&RUNTIME_CLASS.key("", &class)).await {
                Ok(Some(record)) => {
                    if let Some(handler) = handler_of_stored(&record.value) {
                        self.executor.learn_class(&class, handler);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(%class, error = %e, "cannot read the RuntimeClass yet"),
            }
        }
    }

    /// What a container without a limit may use (the node's allocatable), for
    /// `resourceFieldRef`.
    pub(crate) fn with_allocatable(self, cpu_millis: u64, memory_bytes: u64) -> Self {
        PodSupervisor {
            executor: self.executor.with_allocatable(cpu_millis, memory_bytes),
            ..self
        }
    }

    /// Reads the ConfigMaps and Secrets that the environments of containers not
    /// running yet name, for the pass to build them from. One that cannot be read
    /// now is left out: its container waits for a later pass.
    async fn read_config(&mut self, desired: &BTreeMap<String, Pod>) {
        let memory = self.executor.memory();
        let waiting = |pod: &Pod| match memory.pods.get(pod.metadata.uid()) {
            None => true,
            Some(known) => pod
                .spec
                .containers
                .iter()
                .any(|c| known.containers.get(&c.name).is_none_or(|c| c.id.is_none() && !c.done)),
        };
        let now = tokio::time::Instant::now();
        if self.last_resync.is_none_or(|at| now >= at + VOLUME_RESYNC) {
            self.last_resync = Some(now);
            self.config_changed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let changed = self.config_changed.swap(false, std::sync::atomic::Ordering::Relaxed);
        let volumes_pending = |pod: &Pod| {
            memory
                .pods
                .get(pod.metadata.uid())
                .is_none_or(|known| known.volumes.ready.is_none())
        };
        let live = || desired.values().filter(|pod| pod.metadata.deletion_timestamp.is_none());
        let mut wanted: std::collections::BTreeSet<(config_env::Source, String, String)> = live()
            .filter(|pod| waiting(pod))
            .flat_map(|pod| {
                let namespace = pod.metadata.namespace().to_string();
                config_env::references(pod)
                    .into_iter()
                    .map(move |(source, name)| (source, namespace.clone(), name))
            })
            .collect();
        // The volumes' objects: of pods whose volumes wait for them, and of every pod
        // when something changed.
        for pod in live().filter(|pod| changed || volumes_pending(pod)) {
            let namespace = pod.metadata.namespace();
            for (source, name) in volumes::references(pod) {
                wanted.insert((source, namespace.to_string(), name));
            }
        }
        let claims: Vec<(String, String)> = live()
            .filter(|pod| volumes_pending(pod))
            .flat_map(|pod| {
                let namespace = pod.metadata.namespace().to_string();
                volumes::claims(pod)
                    .into_iter()
                    .map(move |claim| (namespace.clone(), claim))
            })
            .collect();
        let mut bound = volumes::Claims::new();
        for (namespace, claim) in claims {
            let path = volumes::claim::bound_path(&self.cluster, &namespace, &claim).await;
            bound.insert((namespace, claim), path);
        }
        self.executor.learn_claims(bound);
        // The running pods' volumes keep what was last read of the objects not read
        // again in this pass, so their files follow the pod itself (the downward
        // API) in every pass.
        let mut objects = config_env::ConfigObjects::default();
        let earlier = &self.executor.memory().config;
        for pod in live() {
            let namespace = pod.metadata.namespace();
            for (source, name) in volumes::references(pod) {
                if !wanted.contains(&(source, namespace.to_string(), name.clone())) {
                    objects.carry(earlier, source, namespace, &name);
                }
            }
        }
        for (source, namespace, name) in wanted {
            match self.cluster.get(&source.key(&namespace, &name)).await {
                Ok(Some(record)) => match serde_json::from_slice::<serde_json::Value>(&record.value) {
                    Ok(stored) => objects.insert(source, &namespace, &name, Some(&stored)),
                    Err(e) => {
                        tracing::warn!(%namespace, %name, error = %e, "cannot parse an object an environment names")
                    }
                },
                Ok(None) => objects.insert(source, &namespace, &name, None),
                Err(e) => {
                    tracing::debug!(%namespace, %name, error = %e, "cannot read an object an environment names yet")
                }
            }
        }
        objects.set_tokens(self.tokens.refresh(&self.cluster, live()).await);
        self.executor.learn_config(objects);
    }

    /// Stops every container now (self-fencing or shutdown) and forgets the pods;
    /// their sandboxes and volumes go with them.
    pub(crate) async fn stop_all(&mut self, grace: Duration) {
        self.executor.stop_all(grace).await;
        self.index.lock().expect("pod index lock").clear();
    }

    async fn sync(&mut self, desired: &BTreeMap<String, Pod>) {
        self.read_runtime_classes(desired).await;
        self.read_config(desired).await;
        let now = Now::read();
        let writes = self.executor.pass(desired, now);
        {
            let mut index = self.index.lock().expect("pod index lock");
            index.clear();
            for (uid, pod) in &self.executor.memory().pods {
                index.insert(
                    (
                        pod.pod.metadata.namespace().to_string(),
                        pod.pod.metadata.name().to_string(),
                    ),
                    IndexedPod {
                        uid: uid.clone(),
                        handler: pod.handler.clone(),
                        pod_ip: pod.sandbox.ready().and_then(|sandbox| sandbox.pod_ip),
                    },
                );
            }
        }
        for write in writes {
            match write {
                Action::ReportStatus { pod_uid, status } => self.report(&pod_uid, *status, now).await,
                Action::DeletePod { namespace, name, uid } => self.remove(&namespace, &name, &uid).await,
                _ => {}
            }
        }
    }

    /// Removes a deleted pod's object for good once its containers stopped: the
    /// kubelet's DELETE with grace 0 and a precondition on the uid, here a delete of
    /// the pod as read, if it is still the one with this uid. One that fails is
    /// tried again on a later pass (the pod is still there, marked).
    async fn remove(&mut self, namespace: &str, name: &str, uid: &str) {
        let result = match self.cluster.get_pod(namespace, name).await {
            Ok(Some(pod)) if pod.metadata.uid() == uid => {
                let version = pod.metadata.resource_version().parse().ok();
                self.cluster.delete_pod(namespace, name, uid, version).await
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                tracing::info!(pod = %format!("{namespace}/{name}"), "removed a deleted pod whose containers stopped")
            }
            Err(KvError::NotFound | KvError::Conflict { .. }) => {}
            Err(e) => {
                tracing::debug!(pod = %format!("{namespace}/{name}"), error = %e, "cannot remove a deleted pod yet")
            }
        }
    }

    /// Writes a pod's status over the stored one, if the pod is still this one and
    /// still bound here.
    async fn report(&mut self, uid: &str, status: PodStatus, now: Now) {
        let Some(pod) = self.executor.memory().pods.get(uid).map(|p| p.pod.clone()) else {
            return;
        };
        let now = from_system_time(now.wall);
        let result = self
            .cluster
            .modify_pod_status(pod.metadata.namespace(), pod.metadata.name(), |stored| {
                if stored.metadata.uid() != uid || stored.spec.node_name != pod.spec.node_name {
                    return false;
                }
                let merged = merge_status(&stored.status, &status, &now);
                if merged == stored.status {
                    return false;
                }
                stored.status = merged;
                true
            })
            .await;
        match result {
            Ok(_) | Err(KvError::NotFound) => self.executor.reported(uid, status),
            Err(e) => tracing::debug!(pod = %pod_name(&pod), error = %e, "cannot report pod status yet"),
        }
    }
}

/// Sets `changed` and wakes the pass whenever a ConfigMap or Secret in the store is
/// written or deleted (the values are not looked at: the supervisor reads what its
/// pods name), and sets it once more after a watch ends, since a change may have
/// been missed.
async fn watch_config(
    kv: berth_client::kv::Kv,
    changed: Arc<std::sync::atomic::AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
) {
    use berth_api::kinds::config_map::CONFIG_MAP;
    use berth_api::kinds::secret::SECRET;
    let watch_one = |prefix: String| {
        let (kv, changed, wake) = (kv.clone(), changed.clone(), wake.clone());
        async move {
            loop {
                match kv.watch(&prefix, 0).await {
                    Ok(mut watch) => {
                        while let Some(batch) = watch.next().await {
                            match batch {
                                Ok((_, events)) if events.is_empty() => {}
                                Ok(_) => {
                                    changed.store(true, Ordering::Relaxed);
                                    wake.notify_one();
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => tracing::debug!(%prefix, error = %e, "cannot watch for volume changes yet"),
                }
                changed.store(true, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tokio::join!(watch_one(CONFIG_MAP.prefix(None)), watch_one(SECRET.prefix(None)));
}
