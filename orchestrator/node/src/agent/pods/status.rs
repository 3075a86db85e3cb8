//! A pod's status as the agent reports it, computed from its memory alone: each
//! container's state (running, terminated, or waiting with a reason such as
//! CrashLoopBackOff), the pod's phase and its Ready condition.
//!
//! Phase: Succeeded when every container terminated with 0, Failed when every one
//! terminated and some did not exit 0, Running when all run or any has ever started,
//! else Pending.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::memory::PodMemory;
use berth_api::conditions::Condition;
use berth_api::meta::{MetaExt, Time};
use berth_api::objects::{
    ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};
use berth_api::time::from_system_time;

/// The status of `pod` as of `now`.
pub(crate) fn pod_status(pod: &PodMemory, host_ip: &str, now: Instant) -> PodStatus {
    let mut statuses = Vec::new();
    for container in &pod.pod.spec.containers {
        let c = pod.containers.get(&container.name);
        let image = container.image.clone().unwrap_or_default();
        let mut last_terminated = None;
        let mut status = ContainerStatus {
            name: container.name.clone(),
            // No digest yet: the image as the pod names it, for clients that require one.
            image_id: image.clone(),
            image,
            ..Default::default()
        };
        let state = if let Some(c) = c {
            status.restart_count = c.restart_count;
            last_terminated = c.last_terminated.clone();
            if c.id.is_some() {
                status.ready = true;
                ApiState {
                    running: Some(ContainerStateRunning {
                        started_at: c.started_at.map(from_system_time),
                    }),
                    ..Default::default()
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
            } else {
                waiting("ContainerCreating", "")
            }
        } else {
            waiting("ContainerCreating", "")
        };
        status.state = Some(state);
        // Written even when empty (`lastState: {}`), as before and as the kubelet does.
        status.last_state = Some(ApiState {
            terminated: last_terminated,
            ..Default::default()
        });
        statuses.push(status);
    }
    let all_running = statuses.iter().all(|s| state_of(s).running.is_some());
    let all_done = statuses.iter().all(|s| state_of(s).terminated.is_some());
    let phase = if all_done {
        if statuses.iter().all(|s| terminated(s).is_some_and(|t| t.exit_code == 0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if all_running || pod.containers.values().any(|c| c.started_at.is_some()) {
        "Running"
    } else {
        "Pending"
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(vec![PodCondition::new(
            "Ready",
            if all_running { "True" } else { "False" },
            "",
            "",
        )]),
        host_ip: (!host_ip.is_empty()).then(|| host_ip.to_string()),
        start_time: Some(pod.start_time.clone()),
        container_statuses: (!statuses.is_empty()).then_some(statuses),
        ..Default::default()
    }
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

/// The agent's view of the status laid over the stored one: conditions it does not
/// own (PodScheduled) are kept, and a condition's transition time changes (to `now`)
/// only when its status does.
pub(crate) fn merge_status(stored: &PodStatus, ours: &PodStatus, now: &Time) -> PodStatus {
    let mut merged = ours.clone();
    let ours_conditions = ours.conditions.as_deref().unwrap_or_default();
    let stored_conditions = stored.conditions.as_deref().unwrap_or_default();
    let owned: BTreeSet<&str> = ours_conditions.iter().map(|c| c.type_.as_str()).collect();
    let mut conditions: Vec<PodCondition> = stored_conditions
        .iter()
        .filter(|c| !owned.contains(c.type_.as_str()))
        .cloned()
        .collect();
    for condition in ours_conditions {
        let mut condition = condition.clone();
        condition.last_transition_time = match stored_conditions.iter().find(|c| c.type_ == condition.type_) {
            Some(old) if old.status == condition.status => old.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        conditions.push(condition);
    }
    merged.conditions = (!conditions.is_empty()).then_some(conditions);
    merged
}
