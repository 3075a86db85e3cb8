//! Carries out the plan against the runtimes, the images and the pod network:
//! observes the runtimes, calls [`plan`] with the memory and the pass's clock, and
//! does what it returns. Every decision is the plan's; what is left here is calls,
//! their errors, the events and the log lines.
//!
//! Stops, pulls and sandbox setups run in the background (`background`), so a pass
//! never waits on a container that is going away, a registry or a CNI plugin. The
//! pulls' and setups' outcomes come back through a channel and go to the memory in
//! the next pass, after the plan and before the reports:
//!
//! ```text
//!  pass: observe ─► plan ─► carry out ─► completions ─► memory ─► plan_reports
//!                              │ Pull, SetUpSandbox          ▲
//!                              └──► background tasks ───────┘ (channel)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::background::{
    Completion, PullJob, SecretSource, sandbox_dirs, set_up_sandbox, stop_and_remove, tear_down_sandbox,
};
use super::config_env::ConfigObjects;
use super::container_spec::with_service_env;
use super::dns_config::{ClusterNames, SandboxDns};
use super::hooks::{self, Hook, MIN_GRACE_AFTER_HOOK};
use super::memory::{Memory, Now};
use super::plan::{Action, Observed, StopReason, plan, plan_reports};
use super::probe::workers::ProbeWorkers;
use super::pull::ImageState;
use crate::agent::workloads::{Runtimes, Workloads};
use crate::image::{Images, PullError};
use crate::network::PodNetwork;
use berth_api::kinds::event::ObjectReference;
use berth_api::objects::{Pod, PodStatus};
use berth_client::events::{EventType, Recorder};
use berth_dns::service_env::service_env;

/// What a sandbox's resolv.conf is made from (blocking: reads the host's file).
/// Without the node's DNS: no cluster nameserver, so the host's file.
fn sandbox_dns(dns: Option<&crate::agent::dns::NodeDns>) -> SandboxDns {
    match dns {
        Some(dns) => SandboxDns {
            cluster: dns.cluster_names(),
            host: dns.host_resolv_conf(),
        },
        None => SandboxDns {
            cluster: ClusterNames {
                domain: berth_dns::DEFAULT_CLUSTER_DOMAIN.into(),
                nameservers: Vec::new(),
            },
            host: berth_dns::resolv::host_resolv_conf(std::path::Path::new(berth_dns::resolv::DEFAULT_RESOLV_CONF)),
        },
    }
}

mod completion;
mod post_start;
mod stopping;

use stopping::pre_stop;

pub(crate) struct Executor {
    runtimes: Runtimes,
    images: Option<Arc<dyn Images>>,
    network: Option<Arc<dyn PodNetwork>>,
    secrets: Option<Arc<dyn SecretSource>>,
    /// Where the pods' /etc files are written, and the node's name (a host-network
    /// pod's hostname).
    sandbox_dir: PathBuf,
    node: String,
    /// Whether sandboxes hold IPC and UTS namespaces for their pods' containers to
    /// share (off in tests of the executor on a fake runtime: making them needs root).
    pod_namespaces: bool,
    memory: Memory,
    host_ip: String,
    /// The statuses this pass has to write, for the supervisor (which holds the store).
    writes: Vec<Action>,
    /// Where the events about containers go (none in tests of the executor alone).
    events: Option<Recorder>,
    completions_tx: mpsc::UnboundedSender<Completion>,
    completions: mpsc::UnboundedReceiver<Completion>,
    /// When the images were last garbage collected.
    last_image_gc: Option<tokio::time::Instant>,
    /// The node's cluster DNS and Services (none in tests of the executor alone: pods
    /// get the host's resolv.conf and no service variables).
    dns: Option<Arc<crate::agent::dns::NodeDns>>,
    /// The probes of the running containers, on their own timers.
    probes: ProbeWorkers,
    /// The claims the pods' volumes name, as read before the pass.
    claims: super::volumes::Claims,
}

/// How often unused images are collected, as the kubelet's image GC period.
pub(crate) const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

/// The reference an event about a pod names; with a container, its field path as
/// Kubernetes writes it (`spec.containers{http}`).
fn reference(pod: &str, pod_uid: &str, container: Option<&str>) -> ObjectReference {
    let (namespace, name) = pod.split_once('/').unwrap_or(("default", pod));
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        uid: Some(pod_uid.to_string()),
        field_path: container.map(|c| format!("spec.containers{{{c}}}")),
        resource_version: None,
    }
}

impl Executor {
    pub(crate) fn new(workloads: impl Into<Workloads>, backoff_base: Duration, host_ip: String) -> Self {
        let workloads = workloads.into();
        let runtimes = workloads.runtimes;
        let mut memory = Memory::new(backoff_base, runtimes.default_handler());
        memory.handlers = runtimes.runs_images();
        memory.node.host_ip = host_ip.clone();
        let (completions_tx, completions) = mpsc::unbounded_channel();
        Executor {
            memory,
            runtimes,
            images: workloads.images,
            network: workloads.network,
            secrets: None,
            sandbox_dir: PathBuf::from("pods"),
            node: String::new(),
            pod_namespaces: false,
            host_ip,
            writes: Vec::new(),
            events: None,
            completions_tx,
            completions,
            last_image_gc: None,
            dns: None,
            probes: ProbeWorkers::default(),
            claims: Default::default(),
        }
    }

    /// Tells pods the node's cluster DNS and gives their containers the Services'
    /// variables.
    pub(crate) fn with_dns(mut self, dns: Arc<crate::agent::dns::NodeDns>) -> Self {
        self.dns = Some(dns);
        self
    }

    /// Records events about the pods with `recorder` (Started, Pulling, Failed, ...).
    pub(crate) fn with_events(mut self, recorder: Recorder) -> Self {
        self.events = Some(recorder);
        self
    }

    /// Reads `imagePullSecrets` from `secrets`.
    pub(crate) fn with_secrets(mut self, secrets: Arc<dyn SecretSource>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Writes the pods' /etc files under `dir`; `node` is the node's name.
    pub(crate) fn with_sandbox_dir(mut self, dir: PathBuf, node: &str) -> Self {
        self.sandbox_dir = dir;
        self.node = node.to_string();
        self
    }

    /// Makes each pod's sandbox hold the IPC and UTS namespaces its containers share.
    pub(crate) fn with_pod_namespaces(mut self) -> Self {
        self.pod_namespaces = true;
        self
    }

    /// Notified when a probe's result may change a pod's status: a pass then reports
    /// it without waiting for its tick.
    pub(crate) fn probe_results_wake(&self) -> Arc<tokio::sync::Notify> {
        self.probes.wake()
    }

    /// How many probes run now.
    #[cfg(test)]
    pub(crate) fn probes_running(&self) -> usize {
        self.probes.running()
    }

    pub(crate) fn memory(&self) -> &Memory {
        &self.memory
    }

    /// What a container without a limit may use, for `resourceFieldRef`: the
    /// node's allocatable.
    pub(crate) fn with_allocatable(mut self, cpu_millis: u64, memory_bytes: u64) -> Self {
        self.memory.node.cpu_millis = cpu_millis;
        self.memory.node.memory_bytes = memory_bytes;
        self
    }

    /// The ConfigMaps and Secrets the next pass builds environments from.
    pub(crate) fn learn_config(&mut self, objects: ConfigObjects) {
        self.memory.config = objects;
    }

    /// The bound directories of the claims the pods name, for the next pass.
    pub(crate) fn learn_claims(&mut self, claims: super::volumes::Claims) {
        self.claims = claims;
    }

    /// Sets up the volumes of the pods of runtimes that run images, and brings the
    /// files of those set up up to date; a new failure is a `FailedMount` event.
    fn sync_volumes(&mut self) {
        let ctx = super::volumes::Context {
            pods_dir: &self.sandbox_dir,
            objects: &self.memory.config,
            claims: &self.claims,
            node: &self.memory.node,
        };
        let mut failures = Vec::new();
        for (uid, pod) in &mut self.memory.pods {
            if !pod.runs_images
                || pod.pod.metadata.deletion_timestamp.is_some()
                || self.memory.terminating.contains(uid)
            {
                continue;
            }
            if let Some(message) = super::volumes::sync(&pod.pod, &ctx, &mut pod.volumes) {
                failures.push((super::plan::pod_name(&pod.pod), uid.clone(), message));
            }
        }
        for (pod, uid, message) in failures {
            tracing::warn!(%pod, %message, "cannot set up a pod's volumes");
            self.emit(&pod, &uid, None, EventType::Warning, "FailedMount", message);
        }
    }

    /// Learns the handler of the RuntimeClass `class`.
    pub(crate) fn learn_class(&mut self, class: &str, handler: String) {
        self.memory.class_handlers.insert(class.to_string(), handler);
    }

    /// One pass at `now` over the pods bound to this node (by store key): returns the
    /// statuses to write (`Action::ReportStatus`), each to be confirmed with
    /// [`reported`](Self::reported) once written.
    pub(crate) fn pass(&mut self, desired: &BTreeMap<String, Pod>, now: Now) -> Vec<Action> {
        let observed = self.observe();
        for action in plan(&mut self.memory, desired, &observed, now) {
            self.carry_out(action, now);
        }
        self.sync_volumes();
        let results = self.probes.results();
        for action in super::probe::results::take(&mut self.memory, results) {
            self.carry_out(action, now);
        }
        while let Ok(completion) = self.completions.try_recv() {
            self.complete(completion, now);
        }
        // After the starts' outcomes are in the memory: a pod started in this pass is
        // reported Running in this pass.
        for action in plan_reports(&self.memory, &self.host_ip, now) {
            self.carry_out(action, now);
        }
        self.probes.sync(&self.memory, &self.runtimes, &self.host_ip, now);
        self.collect_garbage(now);
        std::mem::take(&mut self.writes)
    }

    /// Every [`IMAGE_GC_PERIOD`], in the background: lets the image store remove the
    /// images no container uses (it does only above its disk threshold). Skipped while
    /// a container's image is not known — a pull under way, or a container adopted
    /// after a restart and not yet restarted — so an image in use is never counted
    /// unused.
    fn collect_garbage(&mut self, now: Now) {
        let Some(images) = self.images.clone() else { return };
        if self.last_image_gc.is_some_and(|at| now.instant < at + IMAGE_GC_PERIOD) {
            return;
        }
        let mut in_use = Vec::new();
        for pod in self.memory.pods.values().filter(|p| p.runs_images) {
            for c in pod.containers.values() {
                match c.image.pulled() {
                    Some(image) => in_use.push(image.config_digest.clone()),
                    None if c.id.is_some() || c.image.state == ImageState::Pulling => return,
                    None => {}
                }
            }
        }
        in_use.sort();
        in_use.dedup();
        self.last_image_gc = Some(now.instant);
        tokio::task::spawn_blocking(move || images.collect_garbage(&in_use));
    }

    /// The status of the pod `uid` is in the store (or the pod is gone from it).
    pub(crate) fn reported(&mut self, uid: &str, status: PodStatus) {
        if let Some(pod) = self.memory.pods.get_mut(uid) {
            pod.reported = Some(status);
        }
    }

    /// What the plan needs: everything the runtimes have and the pod networks on the
    /// node when the pass adopts, and the state of every container the memory holds.
    fn observe(&self) -> Observed {
        let mut observed = Observed::default();
        if !self.memory.adopted {
            for (handler, runtime) in self.runtimes.all() {
                for c in runtime.list() {
                    observed.states.insert(c.id.clone(), Ok(c.state));
                    observed.found_handlers.insert(c.id.clone(), handler.to_string());
                    observed.found.push(c);
                }
            }
            observed.networks = self.network.as_ref().map(|n| n.list()).unwrap_or_default();
            observed.networks.extend(sandbox_dirs(&self.sandbox_dir));
            observed.networks.sort();
            observed.networks.dedup();
        }
        for pod in self.memory.pods.values() {
            let runtime = self.runtimes.get(&pod.handler);
            for id in pod.containers.values().filter_map(|c| c.id.as_deref()) {
                if !observed.states.contains_key(id) {
                    let state = match runtime {
                        Some(r) => r.state(id).map_err(|e| e.to_string()),
                        None => Err(format!("no runtime {:?}", pod.handler)),
                    };
                    observed.states.insert(id.to_owned(), state);
                }
            }
        }
        observed
    }

    fn emit(&self, pod: &str, uid: &str, container: Option<&str>, type_: EventType, reason: &str, message: String) {
        if let Some(events) = &self.events {
            events.emit(reference(pod, uid, container), type_, reason, message);
        }
    }

    fn carry_out(&mut self, action: Action, now: Now) {
        match action {
            Action::Adopt { pod, container, id } => {
                tracing::info!(%pod, %container, %id, "adopting a running container");
            }
            Action::Lost {
                pod,
                container,
                id,
                error,
            } => {
                tracing::warn!(%pod, %container, %id, %error, "lost track of a container; starting it again");
            }
            Action::Remove {
                pod,
                pod_uid,
                handler,
                container,
                id,
                exit_code,
                backing_off,
            } => {
                tracing::info!(%pod, %container, exit_code, "container exited");
                if backing_off {
                    self.emit(
                        &pod,
                        &pod_uid,
                        Some(&container),
                        EventType::Warning,
                        "BackOff",
                        format!("Back-off restarting failed container {container} in pod {pod}"),
                    );
                }
                if let Some(runtime) = self.runtimes.get(&handler)
                    && let Err(e) = runtime.remove(&id)
                    && !e.is_not_found()
                {
                    tracing::warn!(%pod, error = %e, "cannot remove an exited container");
                }
            }
            Action::NoRuntime { pod, pod_uid, message } => {
                tracing::warn!(%pod, %message, "cannot run a pod");
                self.emit(
                    &pod,
                    &pod_uid,
                    None,
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {message}"),
                );
            }
            Action::SetUpSandbox { pod } => {
                let network = self.network.clone();
                let (dir, node, tx) = (self.sandbox_dir.clone(), self.node.clone(), self.completions_tx.clone());
                let namespaces = self.pod_namespaces;
                let dns = self.dns.clone();
                tokio::task::spawn_blocking(move || {
                    let dns = sandbox_dns(dns.as_deref());
                    let result = set_up_sandbox(network.as_deref(), &dir, &pod, &node, namespaces, &dns);
                    let pod_uid = berth_api::meta::MetaExt::uid(&pod.metadata).to_string();
                    let _ = tx.send(Completion::SandboxSetUp { pod_uid, result });
                });
            }
            Action::Pull {
                pod,
                pod_uid,
                container,
                image,
                policy,
                secrets,
            } => {
                let Some(images) = self.images.clone() else {
                    debug_assert!(false, "a runtime that runs images comes with them");
                    return;
                };
                self.emit(
                    &pod,
                    &pod_uid,
                    Some(&container),
                    EventType::Normal,
                    "Pulling",
                    format!("Pulling image {image:?}"),
                );
                let job = PullJob {
                    images,
                    secrets: self.secrets.clone(),
                    namespace: pod.split_once('/').map_or("default", |(ns, _)| ns).to_string(),
                    pod_uid,
                    container,
                    image,
                    policy,
                    secret_names: secrets,
                };
                let tx = self.completions_tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(job.run().await);
                });
            }
            Action::ConfigError {
                pod,
                pod_uid,
                container,
                message,
            } => {
                // The message names objects and keys, never values.
                tracing::warn!(%pod, %container, %message, "cannot build a container's environment");
                self.emit(
                    &pod,
                    &pod_uid,
                    Some(&container),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {message}"),
                );
            }
            Action::PullBackOff {
                pod,
                pod_uid,
                container,
                image,
            } => {
                self.emit(
                    &pod,
                    &pod_uid,
                    Some(&container),
                    EventType::Normal,
                    "BackOff",
                    format!("Back-off pulling image {image:?}"),
                );
                self.emit(
                    &pod,
                    &pod_uid,
                    Some(&container),
                    EventType::Warning,
                    "Failed",
                    "Error: ImagePullBackOff".into(),
                );
            }
            Action::Start {
                pod_uid,
                handler,
                spec,
                links,
                post_start,
                address,
            } => {
                let (mut spec, variables) = match &self.dns {
                    Some(dns) => {
                        let variables = dns.catalog.read(|c| service_env(c, &links.namespace, links.enabled));
                        let given: Vec<(String, String)> = variables
                            .iter()
                            .filter(|(name, _)| !links.declared.contains(name))
                            .cloned()
                            .collect();
                        (Box::new(with_service_env(*spec, variables, &links.declared)), given)
                    }
                    None => (spec, Vec::new()),
                };
                super::expansion::apply(&mut spec, &variables, &links.expansion);
                if let Some(id) = self.start(&pod_uid, &handler, &spec, now)
                    && let Some(hook) = post_start
                {
                    self.post_start(&pod_uid, &handler, &spec.name, id, hook, address);
                }
            }
            Action::Stop {
                pod,
                handler,
                ids,
                containers,
                grace,
                remove_logs_of,
                teardown_sandbox_of,
                reason,
                termination,
            } => {
                match reason {
                    StopReason::PodGone => {
                        tracing::info!(%pod, ?ids, "stopping: the pod is no longer bound to this node");
                        if let Some(uid) = &remove_logs_of {
                            for container in &containers {
                                self.emit(
                                    &pod,
                                    uid,
                                    Some(container),
                                    EventType::Normal,
                                    "Killing",
                                    format!("Stopping container {container}"),
                                );
                            }
                        }
                    }
                    StopReason::Duplicate => {
                        tracing::info!(%pod, ?ids, "stopping a second copy of a container found at adoption");
                    }
                }
                let runtime = self.runtimes.get(&handler).cloned();
                let network = self.network.clone();
                let dir = self.sandbox_dir.clone();
                let done = self.completions_tx.clone();
                let host_ip = self.host_ip.parse().ok();
                let events = self.events.clone();
                tokio::spawn(async move {
                    if let Some(runtime) = &runtime {
                        // The sidecars serve the other containers to their end: they
                        // stop after them, in the grace left (at least the minimum).
                        let started = tokio::time::Instant::now();
                        let sidecars = termination.as_ref().map(|t| t.sidecars.clone()).unwrap_or_default();
                        let (later, first): (Vec<String>, Vec<String>) =
                            ids.into_iter().partition(|id| sidecars.contains(id));
                        let stops = |ids: Vec<String>, grace: Duration| {
                            let (termination, pod, events, runtime) =
                                (termination.clone(), pod.clone(), events.clone(), runtime.clone());
                            ids.into_iter().map(move |id| {
                                let hook = termination.as_ref().and_then(|t| {
                                    let address = t.address.or(host_ip);
                                    t.pre_stop
                                        .get(&id)
                                        .map(|hook| (hook.clone(), address, t.pod_uid.clone()))
                                });
                                let (runtime, pod, events) = (runtime.clone(), pod.clone(), events.clone());
                                async move {
                                    let grace = match hook {
                                        Some((hook, address, uid)) => {
                                            pre_stop(&runtime, &id, hook, address, grace, &pod, &uid, events).await
                                        }
                                        None => grace,
                                    };
                                    stop_and_remove(runtime, id, grace).await
                                }
                            })
                        };
                        futures::future::join_all(stops(first, grace)).await;
                        let left = grace.saturating_sub(started.elapsed()).max(MIN_GRACE_AFTER_HOOK);
                        futures::future::join_all(stops(later, left)).await;
                        if let Some(uid) = remove_logs_of {
                            runtime.remove_pod_logs(&uid);
                        }
                    }
                    if let Some(uid) = teardown_sandbox_of {
                        let teardown =
                            tokio::task::spawn_blocking(move || tear_down_sandbox(network.as_deref(), &dir, &uid));
                        let _ = teardown.await;
                    }
                    if let Some(termination) = termination {
                        let _ = done.send(Completion::Stopped {
                            pod_uid: termination.pod_uid,
                        });
                    }
                });
            }
            Action::Unhealthy {
                pod,
                pod_uid,
                container,
                message,
            } => {
                tracing::info!(%pod, %container, %message, "probe failed");
                self.emit(
                    &pod,
                    &pod_uid,
                    Some(&container),
                    EventType::Warning,
                    "Unhealthy",
                    message,
                );
            }
            Action::KillUnhealthy {
                pod,
                pod_uid,
                handler,
                container,
                id,
                grace,
                pre_stop: hook,
                address,
                message,
            } => {
                tracing::info!(%pod, %container, %id, "{message}");
                self.emit(&pod, &pod_uid, Some(&container), EventType::Normal, "Killing", message);
                if let Some(runtime) = self.runtimes.get(&handler).cloned() {
                    let address = address.or(self.host_ip.parse().ok());
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        let grace = match hook {
                            Some(hook) => pre_stop(&runtime, &id, hook, address, grace, &pod, &pod_uid, events).await,
                            None => grace,
                        };
                        if let Err(e) = runtime.stop(&id, grace).await {
                            tracing::warn!(%pod, %id, error = %e, "cannot kill an unhealthy container");
                        }
                    });
                }
            }
            Action::ReportStatus { .. } => self.writes.push(action),
            Action::DeletePod { .. } => self.writes.push(action),
        }
    }

    /// Starts a container; the run's id when it started.
    fn start(
        &mut self,
        pod_uid: &str,
        handler: &str,
        spec: &crate::runtime::ContainerSpec,
        now: Now,
    ) -> Option<String> {
        let result = match self.runtimes.get(handler) {
            Some(runtime) => runtime.start(spec).map_err(|e| e.to_string()),
            None => Err(format!("no runtime {handler:?}")),
        };
        let event = match &result {
            Ok(id) => {
                tracing::info!(pod = %spec.pod, container = %spec.name, %id, "container started");
                (EventType::Normal, "Started", format!("Started container {}", spec.name))
            }
            Err(e) => {
                tracing::warn!(pod = %spec.pod, container = %spec.name, error = %e, "cannot start container");
                (EventType::Warning, "Failed", format!("Error: {e}"))
            }
        };
        self.emit(&spec.pod, pod_uid, Some(&spec.name), event.0, event.1, event.2);
        let Some(c) = self
            .memory
            .pods
            .get_mut(pod_uid)
            .and_then(|p| p.containers.get_mut(&spec.name))
        else {
            debug_assert!(false, "the plan starts only containers it remembers");
            return None;
        };
        match result {
            Ok(id) => {
                c.started(id.clone(), now);
                Some(id)
            }
            Err(e) => {
                c.start_failed(e, now);
                None
            }
        }
    }
}
