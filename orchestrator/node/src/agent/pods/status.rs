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
use berth_api::objects::{
    Condition, ContainerState as ApiState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, PodStatus,
};
use berth_api::time::format_rfc3339;

/// The status of `pod` as of `now`.
pub(crate) fn pod_status(pod: &PodMemory, host_ip: &str, now: Instant) -> PodStatus {
    let mut statuses = Vec::new();
    for container in &pod.pod.spec.containers {
        let c = pod.containers.get(&container.name);
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
                            pod.pod.metadata.name
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
    } else if all_running || pod.containers.values().any(|c| c.started_at.is_some()) {
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
        start_time: pod.start_time.clone(),
        container_statuses: statuses,
        ..Default::default()
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
/// own (PodScheduled) are kept, and a condition's transition time changes (to `now`,
/// RFC 3339) only when its status does.
pub(crate) fn merge_status(stored: &PodStatus, ours: &PodStatus, now: &str) -> PodStatus {
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
            _ => now.to_owned(),
        };
        merged.conditions.push(condition);
    }
    merged
}
