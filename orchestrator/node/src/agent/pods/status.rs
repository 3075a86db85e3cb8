//! A pod's status as the agent reports it, computed from its memory alone: each
//! container's state (running, terminated, or waiting with a reason such as
//! CrashLoopBackOff or ImagePullBackOff), the pod's phase and its Ready condition, its
//! address (its sandbox's; the node's for the process runtime and `hostNetwork`
//! pods, which share the node's network), and the QoS class of its spec.
//!
//! Init containers: each reports its own status (`initContainerStatuses`); the ones
//! not reached yet, and the app containers until all are through, wait in
//! PodInitializing; the Initialized condition says which are not through.
//!
//! Phase: Pending until initialized (Failed if an init container failed for good);
//! then, over the app containers, Succeeded when every one terminated with 0, Failed
//! when every one terminated and some did not exit 0, Running when all run or any has
//! ever started, else Pending.
//!
//! The agent owns part of the stored status only ([`merge_status`]): phase, its
//! conditions, the addresses, startTime and the (init) container statuses. Everything
//! else — the QoS class the API server set, others' conditions, fields it does not
//! know — is kept as stored.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tokio::time::Instant;

use super::memory::{PodMemory, container_id};
use super::plan::{has_own_address, is_through};
use super::sandbox::SandboxState;
use berth_api::conditions::Condition;
use berth_api::kinds::pod::is_sidecar;
use berth_api::meta::{MetaExt, Time};
use berth_api::objects::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use berth_api::qos::qos_class;
use berth_api::time::from_system_time;

/// The status of `pod` as of `now`, on a node at `host_ip`.
pub(crate) fn pod_status(pod: &PodMemory, host_ip: &str, now: Instant) -> PodStatus {
    // The init containers in order: each is reached once those before it are through.
    let mut init_statuses = Vec::new();
    let mut incomplete = Vec::new();
    let mut init_failed = false;
    for container in pod.pod.spec.init_containers.iter().flatten() {
        let c = pod.containers.get(&container.name);
        let reached = pod.initialized || incomplete.is_empty();
        let mut status = container_status(pod, container, reached, now);
        if !c.is_some_and(|c| is_through(container, c)) {
            incomplete.push(container.name.clone());
        }
        if !is_sidecar(container) {
            // A completed init container is ready, as the kubelet reports it.
            status.ready = terminated(&status).is_some_and(|t| t.exit_code == 0);
            init_failed |= c.is_some_and(|c| c.done) && !status.ready;
        }
        init_statuses.push(status);
    }
    let statuses: Vec<ContainerStatus> = pod
        .pod
        .spec
        .containers
        .iter()
        .map(|container| container_status(pod, container, pod.initialized, now))
        .collect();
    let node_ip: Option<IpAddr> = host_ip.parse().ok();
    // A pod with its own network has its sandbox's address once set up; the others
    // (process runtime, host networking) share the node's.
    let pod_ip = if has_own_address(pod) {
        pod.sandbox.ready().and_then(|s| s.pod_ip)
    } else {
        node_ip
    };
    // Readiness counts the sidecars with the app containers.
    let sidecars = pod.pod.spec.init_containers.iter().flatten().zip(&init_statuses);
    let sidecars: Vec<&ContainerStatus> = sidecars.filter(|(c, _)| is_sidecar(c)).map(|(_, s)| s).collect();
    let serving = || statuses.iter().chain(sidecars.iter().copied());
    let all_running = serving().all(|s| state_of(s).running.is_some());
    let unready: Vec<&str> = serving().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let all_done = statuses.iter().all(|s| state_of(s).terminated.is_some());
    let app_started = pod
        .pod
        .spec
        .containers
        .iter()
        .any(|c| pod.containers.get(&c.name).is_some_and(|c| c.started_at.is_some()));
    let phase = if init_failed {
        // An init container failed for good (restartPolicy Never): the pod never runs.
        "Failed"
    } else if !pod.initialized {
        "Pending"
    } else if all_done {
        if statuses.iter().all(|s| terminated(s).is_some_and(|t| t.exit_code == 0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if all_running || app_started {
        "Running"
    } else {
        "Pending"
    };
    let mut conditions = readiness_conditions(all_running, &unready);
    conditions.push(if incomplete.is_empty() || pod.initialized {
        PodCondition::new("Initialized", "True", "", "")
    } else {
        PodCondition::new(
            "Initialized",
            "False",
            "ContainersNotInitialized",
            &format!("containers with incomplete status: [{}]", incomplete.join(" ")),
        )
    });
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: (!host_ip.is_empty()).then(|| host_ip.to_string()),
        // The lists and the pod's own address only for an IP: a node advertised by name
        // has no address a pod could be given.
        host_ips: node_ip.map(|ip| vec![HostIP { ip: ip.to_string() }]),
        pod_ip: pod_ip.map(|ip| ip.to_string()),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        qos_class: Some(qos_class(&pod.pod.spec).to_string()),
        start_time: Some(pod.start_time.clone()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: (!statuses.is_empty()).then_some(statuses),
        ..Default::default()
    }
}

/// One container's status. One not `reached` yet (init containers before it are not
/// through) waits in PodInitializing, as the kubelet reports it.
fn container_status(pod: &PodMemory, container: &Container, reached: bool, now: Instant) -> ContainerStatus {
    let runtime = pod.handler.as_str();
    // Waiting for the sandbox or the image: why the sandbox cannot be had, if it
    // cannot (the kubelet says so only in events; the message saves a look there).
    let creating = || match &pod.sandbox.state {
        _ if !reached => waiting("PodInitializing", ""),
        SandboxState::Failed { message, .. } => waiting("ContainerCreating", message),
        _ => waiting("ContainerCreating", ""),
    };
    let c = pod.containers.get(&container.name);
    let image = container.image.clone().unwrap_or_default();
    let mut last_terminated = None;
    let pulled = c.and_then(|c| c.image.pulled());
    let image_id = match pulled {
        Some(pulled) => pulled.image_id.clone(),
        // Not pulled yet: none, as the kubelet's.
        None if pod.runs_images => String::new(),
        // No digest: the process runtime pulls no image. The image as the pod names
        // it, for clients that require one (a stored one is kept: see merge_status).
        None => image.clone(),
    };
    let mut status = ContainerStatus {
        name: container.name.clone(),
        image_id,
        image: image.clone(),
        started: Some(false),
        ..Default::default()
    };
    let state = if let Some(c) = c {
        status.restart_count = c.restart_count;
        last_terminated = c.last_terminated.clone();
        if let Some(id) = &c.id {
            status.container_id = Some(container_id(runtime, id));
            if c.post_start_pending.as_ref() == Some(id) {
                // Its postStart hook runs: not Running yet, as the kubelet's.
                waiting("ContainerCreating", "")
            } else {
                // Without probes: ready and started once running; with them, as
                // they found (probe/health.rs).
                status.ready = c.health.is_ready(container, id);
                status.started = Some(c.health.is_started(container, id));
                ApiState {
                    running: Some(ContainerStateRunning {
                        started_at: c.started_at.map(from_system_time),
                    }),
                    ..Default::default()
                }
            }
        } else if c.done {
            ApiState {
                terminated: c.terminated.clone(),
                ..Default::default()
            }
        } else if let Some((reason, message)) = &c.error {
            waiting(reason, message)
        } else if c.terminated.is_some() && c.next_start.is_some_and(|at| at > now) {
            last_terminated = c.terminated.clone();
            let wait = c.next_start.map_or(0, |at| at.saturating_duration_since(now).as_secs());
            waiting(
                "CrashLoopBackOff",
                &format!(
                    "back-off {}s restarting failed container={} pod={}",
                    (c.backoff / 2).as_secs().max(wait),
                    container.name,
                    pod.pod.metadata.name()
                ),
            )
        } else if let Some((reason, message)) = pod.runs_images.then(|| c.image.waiting(&image)).flatten()
            && reason != "ContainerCreating"
        {
            waiting(&reason, &message)
        } else {
            creating()
        }
    } else {
        creating()
    };
    // Not running: the id of the latest run, as the kubelet reports it.
    if status.container_id.is_none() {
        status.container_id = [state.terminated.as_ref(), last_terminated.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|t| t.container_id.clone());
    }
    status.state = Some(state);
    // Written even when empty (`lastState: {}`), as before and as the kubelet does.
    status.last_state = Some(ApiState {
        terminated: last_terminated,
        ..Default::default()
    });
    status
}

/// The pod's Ready and ContainersReady conditions: True when every container runs
/// and is ready, else False with the kubelet's reason and message.
fn readiness_conditions(all_running: bool, unready: &[&str]) -> Vec<PodCondition> {
    let ready = all_running && unready.is_empty();
    ["Ready", "ContainersReady"]
        .into_iter()
        .map(|type_| {
            if ready {
                PodCondition::new(type_, "True", "", "")
            } else if unready.is_empty() {
                PodCondition::new(type_, "False", "", "")
            } else {
                PodCondition::new(
                    type_,
                    "False",
                    "ContainersNotReady",
                    &format!("containers with unready status: [{}]", unready.join(" ")),
                )
            }
        })
        .collect()
}

static NO_STATE: ApiState = ApiState {
    running: None,
    terminated: None,
    waiting: None,
};

/// A container's state; absent reads as none of the three.
fn state_of(status: &ContainerStatus) -> &ApiState {
    status.state.as_ref().unwrap_or(&NO_STATE)
}

fn terminated(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    state_of(status).terminated.as_ref()
}

/// Waiting for `reason`; an empty message is left out.
fn waiting(reason: &str, message: &str) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: (!message.is_empty()).then(|| message.to_string()),
        }),
        ..Default::default()
    }
}

/// The agent's view of the status laid over the stored one. The agent's own fields
/// replace the stored ones; everything else is kept: conditions it does not own
/// (PodScheduled), the QoS class (set once, at creation; ours only fills it in when
/// none is stored), and whatever others write. A condition's transition time changes
/// (to `now`) only when its status does; a container's stored imageID stays while its
/// image does.
pub(crate) fn merge_status(stored: &PodStatus, ours: &PodStatus, now: &Time) -> PodStatus {
    let mut merged = stored.clone();
    // Every field the agent owns, named, so that none is overlooked.
    let PodStatus {
        phase,
        host_ip,
        host_ips,
        pod_ip,
        pod_ips,
        start_time,
        init_container_statuses,
        container_statuses,
        ..
    } = ours.clone();
    merged.phase = phase;
    merged.host_ip = host_ip;
    merged.host_ips = host_ips;
    merged.pod_ip = pod_ip;
    merged.pod_ips = pod_ips;
    merged.start_time = start_time;
    merged.init_container_statuses = init_container_statuses.map(|statuses| keep_image_ids(stored, statuses));
    merged.container_statuses = container_statuses.map(|statuses| keep_image_ids(stored, statuses));
    if merged.qos_class.as_deref().is_none_or(str::is_empty) {
        merged.qos_class = ours.qos_class.clone();
    }
    merged.conditions = merge_conditions(
        stored.conditions.as_deref().unwrap_or_default(),
        ours.conditions.as_deref().unwrap_or_default(),
        now,
    );
    merged
}

/// Conditions of types the agent does not report, then the agent's.
fn merge_conditions(stored: &[PodCondition], ours: &[PodCondition], now: &Time) -> Option<Vec<PodCondition>> {
    let owned: BTreeSet<&str> = ours.iter().map(|c| c.type_.as_str()).collect();
    let mut conditions: Vec<PodCondition> = stored
        .iter()
        .filter(|c| !owned.contains(c.type_.as_str()))
        .cloned()
        .collect();
    for condition in ours {
        let mut condition = condition.clone();
        condition.last_transition_time = match stored.iter().find(|c| c.type_ == condition.type_) {
            Some(old) if old.status == condition.status => old.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        conditions.push(condition);
    }
    (!conditions.is_empty()).then_some(conditions)
}

/// A stored imageID (a digest another writer knew) stays as long as the container
/// names the same image and the agent knows no digest of its own.
fn keep_image_ids(stored: &PodStatus, mut ours: Vec<ContainerStatus>) -> Vec<ContainerStatus> {
    let stored: Vec<&ContainerStatus> = stored
        .init_container_statuses
        .iter()
        .flatten()
        .chain(stored.container_statuses.iter().flatten())
        .collect();
    for status in &mut ours {
        if let Some(old) = stored
            .iter()
            .find(|old| old.name == status.name && old.image == status.image && !old.image_id.is_empty())
            .filter(|_| status.image_id.is_empty() || status.image_id == status.image)
        {
            status.image_id = old.image_id.clone();
        }
    }
    ours
}
