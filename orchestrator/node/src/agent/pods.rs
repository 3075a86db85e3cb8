//! The agent's pod loop: keeps the containers of the pods bound to this node running
//! as their restartPolicy says, stops what is no longer bound here, and reports
//! each pod's status when it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::PodIndex;
use crate::runtime::{ContainerSpec, ContainerState, Runtime};
use berth_api::objects::{
    Condition, Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodSpec, PodStatus, prefix,
};
use berth_api::quantity::{parse_cpu_millis, parse_memory_bytes};
use berth_api::time::{format_rfc3339, now_rfc3339};
use berth_client::kv::AbortOnDrop;
use berth_client::reflector::reflect;
use berth_client::registry::Registry;

/// The longest restart back-off, as the kubelet's.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts its back-off over.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

pub(crate) struct PodSupervisor {
    node: String,
    registry: Registry,
    runtime: Arc<dyn Runtime>,
    backoff_base: Duration,
    index: PodIndex,
    host_ip: String,
    /// By pod uid.
    runs: BTreeMap<String, PodRun>,
    /// Whether the containers the runtime already had (from before a restart) have
    /// been matched with the store's pods.
    adopted: bool,
}

struct PodRun {
    pod: Pod,
    containers: BTreeMap<String, ContainerRun>,
    start_time: String,
    reported: Option<PodStatus>,
}

#[derive(Default)]
struct ContainerRun {
    id: Option<String>,
    started_at: Option<SystemTime>,
    restart_count: i32,
    /// The latest exit, while the container is not running.
    terminated: Option<ContainerStateTerminated>,
    /// The exit before the current run.
    last_terminated: Option<ContainerStateTerminated>,
    backoff: Duration,
    /// When the next (re)start may happen; `None`: now.
    next_start: Option<Instant>,
    /// The restartPolicy says this container is finished.
    done: bool,
    /// Why the last start failed: (reason, message).
    error: Option<(String, String)>,
}

impl PodSupervisor {
    pub(crate) fn new(
        node: String,
        registry: Registry,
        runtime: Arc<dyn Runtime>,
        backoff_base: Duration,
        index: PodIndex,
        host_ip: String,
    ) -> Self {
        PodSupervisor {
            node,
            registry,
            runtime,
            backoff_base,
            index,
            host_ip,
            runs: BTreeMap::new(),
            adopted: false,
        }
    }

    /// Follows the pods bound to this node and keeps them running; returns only if
    /// the future is dropped.
    pub(crate) async fn run(&mut self) {
        let (tx, mut desired) = tokio::sync::watch::channel::<Option<BTreeMap<String, Pod>>>(None);
        let bound = Arc::new(super::BoundPods::new(self.node.clone(), tx));
        let follower = tokio::spawn(reflect(self.registry.kv.clone(), prefix::<PodSpec>(None), bound, None));
        let _follower = AbortOnDrop(follower);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                changed = desired.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let current = desired.borrow_and_update().clone();
            if let Some(pods) = current {
                self.sync(&pods).await;
            }
        }
    }

    /// Stops every container now (self-fencing or shutdown) and forgets the pods.
    pub(crate) async fn stop_all(&mut self, grace: Duration) {
        let mut ids: Vec<String> = self.runtime.list().into_iter().map(|c| c.id).collect();
        for run in self.runs.values() {
            ids.extend(run.containers.values().filter_map(|c| c.id.clone()));
        }
        ids.sort();
        ids.dedup();
        let stops = ids
            .into_iter()
            .map(|id| stop_and_remove(self.runtime.clone(), id, grace));
        futures::future::join_all(stops).await;
        self.runs.clear();
        self.adopted = false;
        self.index.lock().expect("pod index lock").clear();
    }

    async fn sync(&mut self, desired: &BTreeMap<String, Pod>) {
        let want: BTreeMap<&str, &Pod> = desired
            .values()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (p.metadata.uid.as_str(), p))
            .collect();
        if !self.adopted {
            self.adopt(&want);
        }
        // Pods no longer bound here: stop their containers (in the background).
        let gone: Vec<String> = self
            .runs
            .keys()
            .filter(|uid| !want.contains_key(uid.as_str()))
            .cloned()
            .collect();
        for uid in gone {
            let run = self.runs.remove(&uid).expect("listed above");
            let grace = grace_of(&run.pod.spec);
            tracing::info!(pod = %pod_name(&run.pod), "stopping: the pod is no longer bound to this node");
            let runtime = self.runtime.clone();
            let ids: Vec<String> = run.containers.values().filter_map(|c| c.id.clone()).collect();
            tokio::spawn(async move {
                futures::future::join_all(ids.into_iter().map(|id| stop_and_remove(runtime.clone(), id, grace))).await;
                runtime.remove_pod_logs(&uid);
            });
        }
        for (uid, pod) in want {
            let run = self.runs.entry(uid.to_string()).or_insert_with(|| PodRun::new(pod));
            run.pod = pod.clone();
            run.step(&*self.runtime, self.backoff_base);
        }
        {
            let mut index = self.index.lock().expect("pod index lock");
            index.clear();
            for (uid, run) in &self.runs {
                index.insert(
                    (run.pod.metadata.namespace.clone(), run.pod.metadata.name.clone()),
                    uid.clone(),
                );
            }
        }
        self.report().await;
    }

    /// Matches the runtime's containers with the pods: a restarted agent takes over
    /// what still runs, and stops what belongs to pods that are gone.
    fn adopt(&mut self, want: &BTreeMap<&str, &Pod>) {
        for container in self.runtime.list() {
            match want.get(container.pod_uid.as_str()) {
                Some(pod) if pod.spec.containers.iter().any(|c| c.name == container.name) => {
                    let run = self
                        .runs
                        .entry(container.pod_uid.clone())
                        .or_insert_with(|| PodRun::new(pod));
                    let c = run.containers.entry(container.name.clone()).or_default();
                    if c.id.is_none() {
                        tracing::info!(pod = %pod_name(pod), container = %container.name, "adopting a running container");
                        c.id = Some(container.id.clone());
                        if let ContainerState::Running { started_at, .. } = container.state {
                            c.started_at = Some(started_at);
                        }
                        continue;
                    }
                    tokio::spawn(stop_and_remove(self.runtime.clone(), container.id, DEFAULT_GRACE));
                }
                _ => {
                    tracing::info!(pod = %container.pod, container = %container.name,
                        "stopping a container whose pod is no longer bound to this node");
                    let runtime = self.runtime.clone();
                    let uid = container.pod_uid.clone();
                    tokio::spawn(async move {
                        stop_and_remove(runtime.clone(), container.id, DEFAULT_GRACE).await;
                        runtime.remove_pod_logs(&uid);
                    });
                }
            }
        }
        self.adopted = true;
    }

    /// Writes each pod's status when it changed since it was last written.
    async fn report(&mut self) {
        for (uid, run) in &mut self.runs {
            let status = run.status(&self.host_ip);
            if run.reported.as_ref() == Some(&status) {
                continue;
            }
            let pod = &run.pod;
            let result = self
                .registry
                .modify::<PodSpec>(&pod.metadata.namespace, &pod.metadata.name, None, |stored| {
                    if stored.metadata.uid != *uid || stored.spec.node_name != pod.spec.node_name {
                        return false;
                    }
                    let merged = merge_status(&stored.status, &status);
                    if merged == stored.status {
                        return false;
                    }
                    stored.status = merged;
                    true
                })
                .await;
            match result {
                Ok(_) | Err(berth_client::kv::KvError::NotFound) => run.reported = Some(status),
                Err(e) => tracing::debug!(pod = %pod_name(pod), error = %e, "cannot report pod status yet"),
            }
        }
    }
}

impl PodRun {
    fn new(pod: &Pod) -> Self {
        let mut containers = BTreeMap::new();
        // A restarted agent keeps counting restarts where the last one left off.
        // A pod that already ended stays ended.
        let ended = matches!(pod.status.phase.as_str(), "Succeeded" | "Failed");
        for status in &pod.status.container_statuses {
            containers.insert(
                status.name.clone(),
                ContainerRun {
                    restart_count: status.restart_count,
                    last_terminated: status.last_state.terminated.clone(),
                    terminated: status.state.terminated.clone(),
                    done: ended,
                    ..Default::default()
                },
            );
        }
        PodRun {
            pod: pod.clone(),
            containers,
            start_time: if pod.status.start_time.is_empty() {
                now_rfc3339()
            } else {
                pod.status.start_time.clone()
            },
            reported: None,
        }
    }

    /// Observes exits and (re)starts containers as the restart policy allows.
    fn step(&mut self, runtime: &dyn Runtime, backoff_base: Duration) {
        let policy = self.pod.spec.restart_policy.clone();
        let pod_name = pod_name(&self.pod);
        let uid = self.pod.metadata.uid.clone();
        let now = Instant::now();
        for container in self.pod.spec.containers.clone() {
            let c = self.containers.entry(container.name.clone()).or_default();
            if c.backoff.is_zero() {
                c.backoff = backoff_base;
            }
            if let Some(id) = c.id.clone() {
                match runtime.state(&id) {
                    Ok(ContainerState::Running { .. }) => continue,
                    Ok(ContainerState::Exited {
                        exit_code,
                        signal,
                        started_at,
                        finished_at,
                    }) => {
                        let ran = finished_at.duration_since(started_at).unwrap_or_default();
                        if ran >= BACKOFF_RESET {
                            c.backoff = backoff_base;
                        }
                        c.terminated = Some(ContainerStateTerminated {
                            exit_code,
                            signal,
                            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
                            started_at: format_rfc3339(started_at),
                            finished_at: format_rfc3339(finished_at),
                        });
                        tracing::info!(pod = %pod_name, container = %container.name, exit_code, "container exited");
                        if let Err(e) = runtime.remove(&id)
                            && !e.is_not_found()
                        {
                            tracing::warn!(pod = %pod_name, error = %e, "cannot remove an exited container");
                        }
                        c.id = None;
                        let restart = match policy.as_str() {
                            "Never" => false,
                            "OnFailure" => exit_code != 0,
                            _ => true,
                        };
                        if restart {
                            c.next_start = Some(now + c.backoff);
                            c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                        } else {
                            c.done = true;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(pod = %pod_name, container = %container.name, error = %e,
                            "lost track of a container; starting it again");
                        c.id = None;
                    }
                }
            }
            if c.done || c.next_start.is_some_and(|at| at > now) {
                continue;
            }
            let spec = container_spec(&uid, &pod_name, &self.pod.metadata.namespace, &container);
            let restarting = c.terminated.is_some() || c.error.is_some() || c.started_at.is_some();
            match runtime.start(&spec) {
                Ok(id) => {
                    tracing::info!(pod = %pod_name, container = %container.name, %id, "container started");
                    if restarting {
                        c.restart_count += 1;
                    }
                    c.id = Some(id);
                    c.started_at = Some(SystemTime::now());
                    c.last_terminated = c.terminated.take().or(c.last_terminated.take());
                    c.next_start = None;
                    c.error = None;
                }
                Err(e) => {
                    tracing::warn!(pod = %pod_name, container = %container.name, error = %e, "cannot start container");
                    c.error = Some(("RunContainerError".into(), e.to_string()));
                    c.next_start = Some(now + c.backoff);
                    c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn status(&self, host_ip: &str) -> PodStatus {
        let now = Instant::now();
        let mut statuses = Vec::new();
        for container in &self.pod.spec.containers {
            let c = self.containers.get(&container.name);
            let mut status = ContainerStatus {
                name: container.name.clone(),
                image: container.image.clone(),
                ..Default::default()
            };
            if let Some(c) = c {
                status.restart_count = c.restart_count;
                status.last_state.terminated = c.last_terminated.clone();
                status.state = if c.id.is_some() {
                    status.ready = true;
                    ApiState {
                        running: Some(ContainerStateRunning {
                            started_at: c.started_at.map(format_rfc3339).unwrap_or_default(),
                        }),
                        ..Default::default()
                    }
                } else if c.done {
                    ApiState {
                        terminated: c.terminated.clone(),
                        ..Default::default()
                    }
                } else if let Some((reason, message)) = &c.error {
                    ApiState {
                        waiting: Some(ContainerStateWaiting {
                            reason: reason.clone(),
                            message: message.clone(),
                        }),
                        ..Default::default()
                    }
                } else if c.terminated.is_some() && c.next_start.is_some_and(|at| at > now) {
                    status.last_state.terminated = c.terminated.clone();
                    let wait = c.next_start.map_or(0, |at| at.saturating_duration_since(now).as_secs());
                    ApiState {
                        waiting: Some(ContainerStateWaiting {
                            reason: "CrashLoopBackOff".into(),
                            message: format!(
                                "back-off {}s restarting failed container={} pod={}",
                                (c.backoff / 2).as_secs().max(wait),
                                container.name,
                                self.pod.metadata.name
                            ),
                        }),
                        ..Default::default()
                    }
                } else {
                    waiting("ContainerCreating")
                };
            } else {
                status.state = waiting("ContainerCreating");
            }
            statuses.push(status);
        }
        let all_running = statuses.iter().all(|s| s.state.running.is_some());
        let all_done = statuses.iter().all(|s| s.state.terminated.is_some());
        let phase = if all_done {
            if statuses
                .iter()
                .all(|s| s.state.terminated.as_ref().is_some_and(|t| t.exit_code == 0))
            {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if all_running || self.containers.values().any(|c| c.started_at.is_some()) {
            "Running"
        } else {
            "Pending"
        };
        PodStatus {
            phase: phase.into(),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if all_running { "True" } else { "False" }.into(),
                ..Default::default()
            }],
            host_ip: host_ip.to_string(),
            start_time: self.start_time.clone(),
            container_statuses: statuses,
            ..Default::default()
        }
    }
}

fn waiting(reason: &str) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.into(),
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// The agent's view of the status laid over the stored one: conditions it does not
/// own (PodScheduled) are kept, and a condition's transition time changes only when
/// its status does.
fn merge_status(stored: &PodStatus, ours: &PodStatus) -> PodStatus {
    let mut merged = ours.clone();
    let owned: BTreeSet<&str> = ours.conditions.iter().map(|c| c.type_.as_str()).collect();
    merged.conditions = stored
        .conditions
        .iter()
        .filter(|c| !owned.contains(c.type_.as_str()))
        .cloned()
        .collect();
    for condition in &ours.conditions {
        let mut condition = condition.clone();
        condition.last_transition_time = match stored.conditions.iter().find(|c| c.type_ == condition.type_) {
            Some(old) if old.status == condition.status => old.last_transition_time.clone(),
            _ => now_rfc3339(),
        };
        merged.conditions.push(condition);
    }
    merged
}

fn container_spec(uid: &str, pod: &str, namespace: &str, c: &Container) -> ContainerSpec {
    let name = pod.rsplit('/').next().unwrap_or(pod);
    let mut env: Vec<(String, String)> = vec![
        ("HOSTNAME".into(), name.to_string()),
        ("BERTH_POD_NAME".into(), name.to_string()),
        ("BERTH_POD_NAMESPACE".into(), namespace.to_string()),
    ];
    env.extend(c.env.iter().map(|e| (e.name.clone(), e.value.clone())));
    ContainerSpec {
        pod_uid: uid.to_string(),
        pod: pod.to_string(),
        name: c.name.clone(),
        argv: c.command.iter().chain(&c.args).cloned().collect(),
        env,
        working_dir: (!c.working_dir.is_empty()).then(|| c.working_dir.clone().into()),
        cpu_limit_millis: c.resources.limits.get("cpu").and_then(|q| parse_cpu_millis(q).ok()),
        memory_limit_bytes: c
            .resources
            .limits
            .get("memory")
            .and_then(|q| parse_memory_bytes(q).ok()),
    }
}

fn grace_of(spec: &PodSpec) -> Duration {
    spec.termination_grace_period_seconds
        .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64))
}

fn pod_name(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace, pod.metadata.name)
}

async fn stop_and_remove(runtime: Arc<dyn Runtime>, id: String, grace: Duration) {
    if let Err(e) = runtime.stop(&id, grace).await
        && !e.is_not_found()
    {
        tracing::warn!(%id, error = %e, "cannot stop container");
    }
    if let Err(e) = runtime.remove(&id)
        && !e.is_not_found()
    {
        tracing::warn!(%id, error = %e, "cannot remove container");
    }
}
