//! The pod supervisor's decisions, free of I/O: given the pods bound to this node, what
//! the runtime reported and the supervisor's memory, what to start, stop, remove and
//! report. No clock reads (`now` is a parameter), no runtime calls, no store calls;
//! the memory is updated in place and the effects come back as [`Action`]s for the
//! executor to carry out.
//!
//! ```text
//!  executor:  read the clock ─► observe the runtime ─► plan ─► carry out ─► plan_reports ─► write
//!                                (list once, state     │        (start's     │
//!                                 of every id held)    │         outcome ─►  │
//!                                                      ▼         memory)     ▼
//!  plan:      adopt (first pass) ─► stop pods gone ─► per pod: sandbox, exits, restarts,
//!                                                     image pulls, starts
//! ```
//!
//! A pod whose runtime runs images needs two things before a container starts, each
//! had in the background and found in the memory by a later pass: its sandbox
//! (`sandbox`: network, /etc files) and the container's image (`pull`). A pod of a
//! runtime that runs commands on the host needs neither.
//!
//! A start is the one action whose outcome the pass needs: the executor hands it back
//! to the memory (`ContainerMemory::started` / `start_failed`) before `plan_reports`,
//! so a pod is reported Running in the pass that started it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::config_env::{ConfigObjects, NodeFacts};
use super::container_spec::ServiceLinks;
use super::container_step::Step;
pub(crate) use super::container_step::is_through;
use super::hooks::{Hook, post_start_of, pre_stop_of, pre_stops};
use super::memory::{Memory, Now, PodMemory, RestartPolicy};
use super::sandbox::{SandboxState, is_host_network};
use super::status::pod_status;
use crate::image::PullPolicy;
use crate::runtime::{ContainerInfo, ContainerSpec, ContainerState};
use berth_api::kinds::pod::is_sidecar;
use berth_api::meta::MetaExt;
use berth_api::objects::{Container, Pod, PodStatus};
use berth_api::pod_deletion::grace_of;

/// What a pass resolves containers' environments from.
pub(crate) struct EnvInputs<'a> {
    pub(crate) objects: &'a ConfigObjects,
    pub(crate) node: &'a NodeFacts,
}

/// The grace of a stop when the pod does not say (and for strays found at adoption).
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// What the runtimes and the pod network reported this pass.
#[derive(Debug, Default, Clone)]
pub(crate) struct Observed {
    /// Every container the runtimes have; listed only in a pass that adopts.
    pub(crate) found: Vec<ContainerInfo>,
    /// The handler of each container found, by id; one missing is the default's.
    pub(crate) found_handlers: BTreeMap<String, String>,
    /// The pods with a sandbox (a network, files, namespaces) on this node; listed
    /// only in a pass that adopts.
    pub(crate) networks: Vec<String>,
    /// By id: the state of every container the memory holds (and of every one found),
    /// or why the runtime could not say. An id missing here is one the runtime lost.
    /// Ids are unique across runtimes: each holds the pod's uid, and a pod runs with
    /// one runtime.
    pub(crate) states: BTreeMap<String, Result<ContainerState, String>>,
}

impl Observed {
    pub(crate) fn state(&self, id: &str) -> Result<ContainerState, String> {
        self.states
            .get(id)
            .cloned()
            .unwrap_or_else(|| Err(format!("no container {id:?}")))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// A container left running by an earlier agent is this pod's again (the memory
    /// already holds it; there is nothing to do but say so).
    Adopt { pod: String, container: String, id: String },
    /// The runtime no longer knows a container the memory held; it is started again
    /// in this pass (nothing to do but say so).
    Lost {
        pod: String,
        container: String,
        id: String,
        error: String,
    },
    /// Forget an exited container (its exit is in the memory).
    Remove {
        pod: String,
        pod_uid: String,
        handler: String,
        container: String,
        id: String,
        exit_code: i32,
        /// It will be started again once its back-off has passed.
        backing_off: bool,
    },
    /// In the background: set up the pod's sandbox (its network unless host
    /// networking, its /etc files); the outcome goes to the memory in a later pass.
    SetUpSandbox { pod: Box<Pod> },
    /// The pod's runtime is not one this node offers (the kubelet's
    /// FailedCreatePodSandBox; nothing to do but say so).
    NoRuntime {
        pod: String,
        pod_uid: String,
        message: String,
    },
    /// In the background: ensure the container's image (pulled when the policy says
    /// so) with the credentials of the pod's `imagePullSecrets`; the outcome goes to
    /// the memory in a later pass.
    Pull {
        pod: String,
        pod_uid: String,
        container: String,
        image: String,
        policy: PullPolicy,
        /// The names of the pod's pull secrets, in the pod's namespace.
        secrets: Vec<String>,
    },
    /// A container's environment names a ConfigMap, Secret or key that is missing
    /// (the kubelet's CreateContainerConfigError; nothing to do but say so, once per
    /// message).
    ConfigError {
        pod: String,
        pod_uid: String,
        container: String,
        message: String,
    },
    /// A failed pull now waits out its back-off (the kubelet's BackOff event).
    PullBackOff {
        pod: String,
        pod_uid: String,
        container: String,
        image: String,
    },
    /// Start a container; its outcome goes back to the memory in the same pass.
    Start {
        pod_uid: String,
        handler: String,
        spec: Box<ContainerSpec>,
        /// Which Services' variables the container gets, added at its start.
        links: ServiceLinks,
        /// Its postStart hook, run once it started (the run is not Running until the
        /// hook finishes; a hook that fails kills it); the pod's own address for an
        /// httpGet hook (none: the node's).
        post_start: Option<Result<Hook, String>>,
        address: Option<std::net::IpAddr>,
    },
    /// In the background: stop (TERM, `grace`, KILL) and remove each container, then,
    /// when `remove_logs_of` names a pod uid, remove that pod's logs, and when
    /// `teardown_sandbox_of` names one, tear down that pod's sandbox.
    Stop {
        pod: String,
        handler: String,
        ids: Vec<String>,
        /// The names of the containers stopped, for the Killing events.
        containers: Vec<String>,
        grace: Duration,
        remove_logs_of: Option<String>,
        teardown_sandbox_of: Option<String>,
        reason: StopReason,
        /// A deleted pod's: the preStop hooks, by container id, run before the
        /// SIGTERM within the grace; the pod's address (for httpGet hooks); and the
        /// uid to report stopped, so that its object is removed only then.
        termination: Option<Box<Termination>>,
    },
    /// Remove a deleted pod's object for good (grace 0, on its uid), now that its
    /// containers stopped and its sandbox is gone.
    DeletePod {
        namespace: String,
        name: String,
        uid: String,
    },
    /// A probe failed (the kubelet's Unhealthy event; nothing else to do).
    Unhealthy {
        pod: String,
        pod_uid: String,
        container: String,
        message: String,
    },
    /// In the background: stop a container that failed its liveness or startup
    /// probe (or a sidecar whose app containers finished) as a deleted pod's are
    /// stopped (its preStop hook, then TERM, KILL at the end of `grace`, the hook's
    /// time counted), without removing it: a later pass sees it exited and restarts
    /// it as the restart policy says (`probe/results.rs`), or not, if it is done.
    KillUnhealthy {
        pod: String,
        pod_uid: String,
        handler: String,
        container: String,
        id: String,
        grace: Duration,
        /// The container's preStop hook, and the pod's own address for an httpGet
        /// hook (none: the node's).
        pre_stop: Option<Result<Hook, String>>,
        address: Option<std::net::IpAddr>,
        message: String,
    },
    /// Write this status to the pod (it changed since it was last written). Boxed: a
    /// status is several times the size of any other action.
    ReportStatus { pod_uid: String, status: Box<PodStatus> },
}

/// What the stop of a deleted pod does besides stopping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Termination {
    pub(crate) pod_uid: String,
    pub(crate) pre_stop: BTreeMap<String, Result<Hook, String>>,
    pub(crate) address: Option<std::net::IpAddr>,
    /// The ids of the sidecars' runs: stopped once the other containers stopped, as
    /// they serve them to the end.
    pub(crate) sidecars: Vec<String>,
}

impl Termination {
    /// The termination of `pod` (as the store has it now, deletion mark included),
    /// whose containers run as `ids` (by container name).
    fn of(pod: &Pod, ids: &BTreeMap<String, String>, address: Option<std::net::IpAddr>) -> Self {
        Termination {
            pod_uid: pod.metadata.uid().to_string(),
            pre_stop: pre_stops(pod)
                .into_iter()
                .filter_map(|(name, hook)| ids.get(&name).map(|id| (id.clone(), hook)))
                .collect(),
            address,
            sidecars: pod
                .spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| is_sidecar(c))
                .filter_map(|c| ids.get(&c.name).cloned())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A second container of a pod's container, or one of another runtime than the
    /// pod's, found at adoption: one runs, not two.
    Duplicate,
    /// Its pod is deleted or no longer bound to this node.
    PodGone,
}

/// One pass over the pods bound to this node (`desired`, by store key). A pod being
/// deleted (it has a deletion timestamp) is stopped with its grace, as one that is gone.
pub(crate) fn plan(memory: &mut Memory, desired: &BTreeMap<String, Pod>, observed: &Observed, now: Now) -> Vec<Action> {
    let want: BTreeMap<&str, &Pod> = desired
        .values()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.metadata.uid(), p))
        .collect();
    let deleted: BTreeMap<&str, &Pod> = desired
        .values()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .map(|p| (p.metadata.uid(), p))
        .collect();
    let mut actions = Vec::new();
    if !memory.adopted {
        adopt(memory, &want, &deleted, observed, now, &mut actions);
        memory.adopted = true;
    }
    let gone: Vec<String> = memory
        .pods
        .keys()
        .filter(|uid| !want.contains_key(uid.as_str()))
        .cloned()
        .collect();
    for uid in gone {
        let pod = memory.pods.remove(&uid).expect("listed above");
        let ids: BTreeMap<String, String> = pod
            .containers
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.id.clone()?)))
            .collect();
        // A deleted pod (still in the store, marked) gets its hooks and the grace
        // its deletion set, and its object goes once it stopped; a pod that is gone
        // from the store or from this node is stopped with its own grace.
        let termination = deleted.get(uid.as_str()).map(|deleted| {
            memory.terminating.insert(uid.clone());
            let address = pod.sandbox.ready().and_then(|s| s.pod_ip);
            Box::new(Termination::of(deleted, &ids, address))
        });
        let grace = grace_of(deleted.get(uid.as_str()).copied().unwrap_or(&pod.pod));
        actions.push(Action::Stop {
            pod: pod_name(&pod.pod),
            ids: ids.values().cloned().collect(),
            containers: ids.keys().cloned().collect(),
            grace,
            teardown_sandbox_of: memory.runs_images(&pod.handler).then(|| uid.clone()),
            remove_logs_of: Some(uid),
            handler: pod.handler,
            reason: StopReason::PodGone,
            termination,
        });
    }
    // Deleted pods with nothing (left) running here: their objects go.
    for (uid, pod) in &deleted {
        if !memory.pods.contains_key(*uid) && !memory.terminating.contains(*uid) {
            actions.push(Action::DeletePod {
                namespace: pod.metadata.namespace().to_string(),
                name: pod.metadata.name().to_string(),
                uid: uid.to_string(),
            });
        }
    }
    for (uid, pod) in want {
        let handler = memory.handler_of(pod);
        let runs_images = memory.handlers.get(&handler).copied();
        let memory_of_pod = memory
            .pods
            .entry(uid.to_string())
            .or_insert_with(|| PodMemory::new(pod, &handler, now));
        let env = EnvInputs {
            objects: &memory.config,
            node: &memory.node,
        };
        actions.extend(plan_pod(
            pod,
            memory_of_pod,
            observed,
            memory.backoff_base,
            runs_images,
            &env,
            now,
        ));
    }
    actions
}

impl Memory {
    /// Whether `handler` runs images (and so its pods have sandboxes).
    pub(crate) fn runs_images(&self, handler: &str) -> bool {
        self.handlers.get(handler).copied().unwrap_or(false)
    }
}

/// Matches the runtimes' containers with the pods: a restarted agent takes over what
/// still runs (and learns how the rest ended), and stops what belongs to pods that
/// are gone, then tears down their sandboxes (and the networks of gone pods that had
/// no container left).
fn adopt(
    memory: &mut Memory,
    want: &BTreeMap<&str, &Pod>,
    deleted: &BTreeMap<&str, &Pod>,
    observed: &Observed,
    now: Now,
    actions: &mut Vec<Action>,
) {
    // Containers of pods that are gone, by pod uid and handler: one stop each, so a
    // sandbox is torn down only after all of its pod's containers stopped.
    let mut gone: BTreeMap<(String, String), GoneContainers> = BTreeMap::new();
    for container in &observed.found {
        let handler = observed
            .found_handlers
            .get(&container.id)
            .cloned()
            .unwrap_or_else(|| memory.default_handler.clone());
        match want.get(container.pod_uid.as_str()) {
            Some(pod) if all_containers(pod).any(|c| c.name == container.name) => {
                let pod_handler = memory.handler_of(pod);
                let memory_of_pod = memory
                    .pods
                    .entry(container.pod_uid.clone())
                    .or_insert_with(|| PodMemory::new(pod, &pod_handler, now));
                let c = memory_of_pod.containers.entry(container.name.clone()).or_default();
                if c.id.is_none() && handler == pod_handler {
                    actions.push(Action::Adopt {
                        pod: pod_name(pod),
                        container: container.name.clone(),
                        id: container.id.clone(),
                    });
                    c.id = Some(container.id.clone());
                    if let ContainerState::Running { started_at, .. } = container.state {
                        c.started_at = Some(started_at);
                    }
                    continue;
                }
                actions.push(Action::Stop {
                    pod: pod_name(pod),
                    handler,
                    ids: vec![container.id.clone()],
                    containers: vec![container.name.clone()],
                    grace: DEFAULT_GRACE,
                    remove_logs_of: None,
                    teardown_sandbox_of: None,
                    reason: StopReason::Duplicate,
                    termination: None,
                });
            }
            _ => {
                let entry = gone
                    .entry((container.pod_uid.clone(), handler))
                    .or_insert_with(|| GoneContainers {
                        pod: container.pod.clone(),
                        ..Default::default()
                    });
                entry.ids.push(container.id.clone());
                entry.names.push(container.name.clone());
            }
        }
    }
    let mut torn_down = Vec::new();
    for ((uid, handler), containers) in gone {
        let teardown_sandbox_of = memory.runs_images(&handler).then(|| uid.clone());
        torn_down.extend(teardown_sandbox_of.clone());
        // A pod deleted while the agent was away: stopped as it would have been, and
        // its object removed after.
        let deleted_pod = deleted.get(uid.as_str()).copied();
        let termination = deleted_pod.map(|pod| {
            memory.terminating.insert(uid.clone());
            let ids = containers
                .names
                .iter()
                .cloned()
                .zip(containers.ids.iter().cloned())
                .collect();
            Box::new(Termination::of(pod, &ids, None))
        });
        actions.push(Action::Stop {
            pod: containers.pod,
            handler,
            ids: containers.ids,
            containers: containers.names,
            grace: deleted_pod.map_or(DEFAULT_GRACE, grace_of),
            remove_logs_of: Some(uid),
            teardown_sandbox_of,
            reason: StopReason::PodGone,
            termination,
        });
    }
    for uid in &observed.networks {
        if want.contains_key(uid.as_str()) || torn_down.contains(uid) {
            continue;
        }
        actions.push(Action::Stop {
            pod: uid.clone(),
            handler: memory.default_handler.clone(),
            ids: Vec::new(),
            containers: Vec::new(),
            grace: DEFAULT_GRACE,
            remove_logs_of: None,
            teardown_sandbox_of: Some(uid.clone()),
            reason: StopReason::PodGone,
            termination: None,
        });
    }
}

/// The containers of a gone pod found at adoption, stopped together.
#[derive(Default)]
struct GoneContainers {
    /// "namespace/name".
    pod: String,
    ids: Vec<String>,
    names: Vec<String>,
}

/// One pod's pass: its sandbox, the exits of its containers, restarts and starts as
/// the restart policy and the back-offs allow, and the pulls their images need.
/// `runs_images` is whether the pod's handler runs images, None when the node does
/// not offer it. `memory.pod` becomes `pod`.
pub(crate) fn plan_pod(
    pod: &Pod,
    memory: &mut PodMemory,
    observed: &Observed,
    backoff_base: Duration,
    runs_images: Option<bool>,
    env: &EnvInputs,
    now: Now,
) -> Vec<Action> {
    memory.pod = pod.clone();
    let name = pod_name(pod);
    let mut actions = Vec::new();
    let Some(runs_images) = runs_images else {
        if !matches!(memory.sandbox.state, SandboxState::Failed { .. }) {
            let message = format!("no runtime for {:?} is configured", memory.handler);
            actions.push(Action::NoRuntime {
                pod: name,
                pod_uid: pod.metadata.uid().to_string(),
                message: message.clone(),
            });
            memory.sandbox.state = SandboxState::Failed {
                message,
                retry_at: now.instant,
            };
        }
        return actions;
    };
    memory.runs_images = runs_images;
    if runs_images && memory.sandbox.step(now) {
        actions.push(Action::SetUpSandbox {
            pod: Box::new(pod.clone()),
        });
    }
    // What `status.podIP` says in an environment: as the pod's status has it.
    let pod_ip = if has_own_address(memory) {
        memory.sandbox.ready().and_then(|sandbox| sandbox.pod_ip)
    } else {
        env.node.host_ip.parse().ok()
    };
    let step = Step {
        pod,
        name: &name,
        handler: &memory.handler,
        sandbox: memory.sandbox.ready(),
        volumes: memory.volumes.ready.as_ref(),
        observed,
        backoff_base,
        runs_images,
        env,
        pod_ip,
        now,
    };
    let containers = &mut memory.containers;
    // The start order: the init containers, each through (completed; a sidecar:
    // started) before the next starts, then the app containers, once all are through.
    // A container whose postStart hook runs holds back those after it.
    let mut hooks_running = false;
    let mut blocked = false;
    for container in pod.spec.init_containers.iter().flatten() {
        if memory.initialized && !is_sidecar(container) {
            continue;
        }
        let policy = RestartPolicy::of_container(pod, container, true);
        let c = containers.entry(container.name.clone()).or_default();
        // Once initialized, a sidecar that exited is restarted whatever the others do.
        let may_start = memory.initialized || (!blocked && !hooks_running);
        let started = step.container(container, c, policy, may_start, &mut actions);
        hooks_running |= c.post_start_pending.is_some() || (started && post_start_of(container).is_some());
        blocked |= !is_through(container, c);
    }
    if !blocked {
        memory.initialized = true;
    }
    for container in &pod.spec.containers {
        let policy = RestartPolicy::of_container(pod, container, false);
        let c = containers.entry(container.name.clone()).or_default();
        let may_start = memory.initialized && !hooks_running;
        let started = step.container(container, c, policy, may_start, &mut actions);
        hooks_running |= c.post_start_pending.is_some() || (started && post_start_of(container).is_some());
    }
    // Every app container finished for good (restartPolicy Never or OnFailure): the
    // sidecars have no one left to serve, so they are stopped and not restarted.
    let finished = memory.initialized
        && pod
            .spec
            .containers
            .iter()
            .all(|c| containers.get(&c.name).is_some_and(|c| c.done));
    let sidecars = pod.spec.init_containers.iter().flatten().filter(|c| is_sidecar(c));
    for container in sidecars.filter(|_| finished) {
        let c = containers.entry(container.name.clone()).or_default();
        if c.done {
            continue;
        }
        c.done = true;
        let Some(id) = c.id.clone() else { continue };
        let grace = pod.spec.termination_grace_period_seconds;
        actions.push(Action::KillUnhealthy {
            pod: name.clone(),
            pod_uid: pod.metadata.uid().to_string(),
            handler: memory.handler.clone(),
            container: container.name.clone(),
            id,
            grace: grace.map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64)),
            pre_stop: pre_stop_of(container),
            address: memory.sandbox.ready().and_then(|s| s.pod_ip),
            message: format!("Stopping container {}: the app containers finished", container.name),
        });
    }
    actions
}

/// The status of every pod whose status changed since it was last written.
pub(crate) fn plan_reports(memory: &Memory, host_ip: &str, now: Now) -> Vec<Action> {
    memory
        .pods
        .iter()
        .filter_map(|(uid, pod)| {
            let status = pod_status(pod, host_ip, now.instant);
            (pod.reported.as_ref() != Some(&status)).then(|| Action::ReportStatus {
                pod_uid: uid.clone(),
                status: Box::new(status),
            })
        })
        .collect()
}

/// A pod's containers, init containers first.
pub(crate) fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.init_containers.iter().flatten().chain(&pod.spec.containers)
}

pub(crate) fn pod_name(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace(), pod.metadata.name())
}

/// Whether the pod's address is its own (a sandbox with a network) rather than the
/// node's.
pub(crate) fn has_own_address(pod: &PodMemory) -> bool {
    pod.runs_images && !is_host_network(&pod.pod)
}
