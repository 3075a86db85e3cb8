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
//!  plan:      adopt (first pass) ─► stop pods gone ─► per pod: exits, restarts, starts
//! ```
//!
//! A start is the one action whose outcome the pass needs: the executor hands it back
//! to the memory (`ContainerMemory::started` / `start_failed`) before `plan_reports`,
//! so a pod is reported Running in the pass that started it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::memory::{ContainerMemory, Exit, Memory, Now, PodMemory, RestartPolicy, container_id};
use super::status::pod_status;
use crate::runtime::{ContainerInfo, ContainerSpec, ContainerState};
use berth_api::meta::MetaExt;
use berth_api::objects::{Container, Pod, PodSpec, PodStatus};
use berth_api::quantity::{parse_cpu_millis, parse_memory_bytes};

/// The grace of a stop when the pod does not say (and for strays found at adoption).
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// What the runtime reported this pass.
#[derive(Debug, Default, Clone)]
pub(crate) struct Observed {
    /// Every container the runtime has; listed only in a pass that adopts.
    pub(crate) found: Vec<ContainerInfo>,
    /// By id: the state of every container the memory holds (and of every one found),
    /// or why the runtime could not say. An id missing here is one the runtime lost.
    pub(crate) states: BTreeMap<String, Result<ContainerState, String>>,
}

impl Observed {
    fn state(&self, id: &str) -> Result<ContainerState, String> {
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
        container: String,
        id: String,
        exit_code: i32,
        /// It will be started again once its back-off has passed.
        backing_off: bool,
    },
    /// Start a container; its outcome goes back to the memory in the same pass.
    Start { pod_uid: String, spec: Box<ContainerSpec> },
    /// In the background: stop (TERM, `grace`, KILL) and remove each container, then,
    /// when `remove_logs_of` names a pod uid, remove that pod's logs.
    Stop {
        pod: String,
        ids: Vec<String>,
        /// The names of the containers stopped, for the Killing events.
        containers: Vec<String>,
        grace: Duration,
        remove_logs_of: Option<String>,
        reason: StopReason,
    },
    /// Write this status to the pod (it changed since it was last written). Boxed: a
    /// status is several times the size of any other action.
    ReportStatus { pod_uid: String, status: Box<PodStatus> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A second container of a pod's container, found at adoption: one runs, not two.
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
    let mut actions = Vec::new();
    if !memory.adopted {
        adopt(memory, &want, &observed.found, now, &mut actions);
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
        actions.push(Action::Stop {
            pod: pod_name(&pod.pod),
            ids: pod.containers.values().filter_map(|c| c.id.clone()).collect(),
            containers: pod
                .containers
                .iter()
                .filter(|(_, c)| c.id.is_some())
                .map(|(name, _)| name.clone())
                .collect(),
            grace: grace_of(&pod.pod.spec),
            remove_logs_of: Some(uid),
            reason: StopReason::PodGone,
        });
    }
    for (uid, pod) in want {
        let memory_of_pod = memory
            .pods
            .entry(uid.to_string())
            .or_insert_with(|| PodMemory::new(pod, now));
        actions.extend(plan_pod(
            pod,
            memory_of_pod,
            observed,
            memory.backoff_base,
            memory.runtime,
            now,
        ));
    }
    actions
}

/// Matches the runtime's containers with the pods: a restarted agent takes over what
/// still runs (and learns how the rest ended), and stops what belongs to pods that
/// are gone.
fn adopt(
    memory: &mut Memory,
    want: &BTreeMap<&str, &Pod>,
    found: &[ContainerInfo],
    now: Now,
    actions: &mut Vec<Action>,
) {
    for container in found {
        match want.get(container.pod_uid.as_str()) {
            Some(pod) if pod.spec.containers.iter().any(|c| c.name == container.name) => {
                let memory_of_pod = memory
                    .pods
                    .entry(container.pod_uid.clone())
                    .or_insert_with(|| PodMemory::new(pod, now));
                let c = memory_of_pod.containers.entry(container.name.clone()).or_default();
                if c.id.is_none() {
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
                    ids: vec![container.id.clone()],
                    containers: vec![container.name.clone()],
                    grace: DEFAULT_GRACE,
                    remove_logs_of: None,
                    reason: StopReason::Duplicate,
                });
            }
            _ => actions.push(Action::Stop {
                pod: container.pod.clone(),
                ids: vec![container.id.clone()],
                containers: vec![container.name.clone()],
                grace: DEFAULT_GRACE,
                remove_logs_of: Some(container.pod_uid.clone()),
                reason: StopReason::PodGone,
            }),
        }
    }
}

/// One pod's pass: observes exits and (re)starts containers as the restart policy
/// and the back-off allow. `memory.pod` becomes `pod`.
pub(crate) fn plan_pod(
    pod: &Pod,
    memory: &mut PodMemory,
    observed: &Observed,
    backoff_base: Duration,
    runtime: &str,
    now: Now,
) -> Vec<Action> {
    memory.pod = pod.clone();
    let policy = RestartPolicy::of(pod);
    let name = pod_name(pod);
    let mut actions = Vec::new();
    for container in &pod.spec.containers {
        let c: &mut ContainerMemory = memory.containers.entry(container.name.clone()).or_default();
        if c.backoff.is_zero() {
            c.backoff = backoff_base;
        }
        if let Some(id) = c.id.clone() {
            match observed.state(&id) {
                Ok(ContainerState::Running { .. }) => continue,
                Ok(ContainerState::Exited {
                    exit_code,
                    signal,
                    started_at,
                    finished_at,
                    oom_killed,
                }) => {
                    let exit = Exit {
                        container_id: container_id(runtime, &id),
                        exit_code,
                        signal,
                        started_at,
                        finished_at,
                        oom_killed,
                    };
                    c.exited(exit, policy, backoff_base, now);
                    actions.push(Action::Remove {
                        pod: name.clone(),
                        pod_uid: pod.metadata.uid().to_string(),
                        container: container.name.clone(),
                        id,
                        exit_code,
                        backing_off: !c.done && !c.is_due(now),
                    });
                    continue;
                }
                Err(error) => {
                    actions.push(Action::Lost {
                        pod: name.clone(),
                        container: container.name.clone(),
                        id,
                        error,
                    });
                    c.id = None;
                }
            }
        }
        if c.is_due(now) {
            actions.push(Action::Start {
                pod_uid: pod.metadata.uid().to_string(),
                spec: Box::new(container_spec(
                    pod.metadata.uid(),
                    &name,
                    pod.metadata.namespace(),
                    container,
                )),
            });
        }
    }
    actions
}

/// The status of every pod whose status changed since it was last written.
pub(crate) fn plan_reports(memory: &Memory, host_ip: &str, now: Now) -> Vec<Action> {
    memory
        .pods
        .iter()
        .filter_map(|(uid, pod)| {
            let status = pod_status(pod, host_ip, memory.runtime, now.instant);
            (pod.reported.as_ref() != Some(&status)).then(|| Action::ReportStatus {
                pod_uid: uid.clone(),
                status: Box::new(status),
            })
        })
        .collect()
}

pub(crate) fn container_spec(uid: &str, pod: &str, namespace: &str, c: &Container) -> ContainerSpec {
    let name = pod.rsplit('/').next().unwrap_or(pod);
    let mut env: Vec<(String, String)> = vec![
        ("HOSTNAME".into(), name.to_string()),
        ("BERTH_POD_NAME".into(), name.to_string()),
        ("BERTH_POD_NAMESPACE".into(), namespace.to_string()),
    ];
    env.extend(
        c.env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())),
    );
    let limit = |resource: &str| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|limits| limits.get(resource))
            .map(|q| q.0.as_str())
    };
    ContainerSpec {
        pod_uid: uid.to_string(),
        pod: pod.to_string(),
        name: c.name.clone(),
        argv: c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .cloned()
            .collect(),
        env,
        working_dir: c.working_dir.as_deref().filter(|d| !d.is_empty()).map(Into::into),
        cpu_limit_millis: limit("cpu").and_then(|q| parse_cpu_millis(q).ok()),
        memory_limit_bytes: limit("memory").and_then(|q| parse_memory_bytes(q).ok()),
        ..ContainerSpec::default()
    }
}

fn grace_of(spec: &PodSpec) -> Duration {
    spec.termination_grace_period_seconds
        .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64))
}

pub(crate) fn pod_name(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace(), pod.metadata.name())
}
