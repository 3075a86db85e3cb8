//! Pods, clocks and observations made up for the tests of the plan, the status and
//! the executor.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::memory::{Memory, Now};
use super::plan::{Action, Observed, plan};
use super::status::pod_status;
use crate::runtime::{ContainerInfo, ContainerState};
use berth_api::meta::ObjectMeta;
use berth_api::meta::{MetaExt, Time};
use berth_api::objects::{
    Container, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodSpec, PodStatus,
};

pub(super) const BASE: Duration = Duration::from_secs(10);

pub(super) fn now() -> Now {
    Now {
        instant: Instant::now(),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    }
}

pub(super) fn later(now: Now, by: Duration) -> Now {
    Now {
        instant: now.instant + by,
        wall: now.wall + by,
    }
}

pub(super) fn pod_of(name: &str, policy: &str, containers: &[&str]) -> Pod {
    Pod::new(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        PodSpec {
            containers: containers
                .iter()
                .map(|c| Container {
                    name: (*c).into(),
                    command: Some(vec!["serve".into(), (*c).into()]),
                    ..Default::default()
                })
                .collect(),
            restart_policy: Some(policy.into()),
            node_name: Some("n1".into()),
            termination_grace_period_seconds: Some(2),
            ..Default::default()
        },
    )
}

pub(super) fn pod(name: &str, policy: &str) -> Pod {
    pod_of(name, policy, &["main"])
}

pub(super) fn desired(pods: &[&Pod]) -> BTreeMap<String, Pod> {
    pods.iter()
        .map(|p| (format!("/pods/default/{}", p.metadata.name()), (*p).clone()))
        .collect()
}

pub(super) fn running(at: Now) -> ContainerState {
    ContainerState::Running {
        pid: 42,
        started_at: at.wall,
    }
}

pub(super) fn exited(exit_code: i32, started: Now, ran: Duration) -> ContainerState {
    ContainerState::Exited {
        exit_code,
        signal: None,
        started_at: started.wall,
        finished_at: started.wall + ran,
        oom_killed: false,
    }
}

pub(super) fn observed(states: &[(&str, ContainerState)]) -> Observed {
    Observed {
        found: Vec::new(),
        found_handlers: Default::default(),
        networks: Vec::new(),
        states: states.iter().map(|(id, s)| ((*id).to_owned(), Ok(*s))).collect(),
    }
}

/// A memory past adoption, with nothing found.
pub(super) fn memory() -> Memory {
    let mut memory = Memory::new(BASE, "fake");
    memory.adopted = true;
    memory
}

pub(super) fn starts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { spec, .. } => Some(format!("{}/{}", spec.pod, spec.name)),
            _ => None,
        })
        .collect()
}

/// Plans, then "starts" every container the plan starts as `id` (one container only).
pub(super) fn plan_and_start(
    memory: &mut Memory,
    pods: &BTreeMap<String, Pod>,
    seen: &Observed,
    now: Now,
    id: &str,
) -> Vec<Action> {
    let actions = plan(memory, pods, seen, now);
    for action in &actions {
        if let Action::Start { pod_uid, spec, .. } = action {
            memory
                .pods
                .get_mut(pod_uid)
                .unwrap()
                .containers
                .get_mut(&spec.name)
                .unwrap()
                .started(id.into(), now);
        }
    }
    actions
}

pub(super) fn status_of(memory: &Memory, pod: &Pod, now: Now) -> PodStatus {
    pod_status(&memory.pods[pod.metadata.uid()], "10.0.0.1", now.instant)
}

pub(super) fn found(pod: &Pod, container: &str, id: &str, state: ContainerState) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        pod_uid: pod.metadata.uid().to_string(),
        pod: format!("default/{}", pod.metadata.name()),
        name: container.into(),
        state,
        cgroup_dirs: Vec::new(),
    }
}

/// A time as the JSON of a status has it (`2023-11-14T22:13:20Z`); `null` when absent.
pub(super) fn json_time(time: Option<&Time>) -> serde_json::Value {
    serde_json::to_value(time).expect("times serialize")
}

/// A status's phase; absent reads as empty.
pub(super) fn phase_of(status: &PodStatus) -> &str {
    status.phase.as_deref().unwrap_or_default()
}

pub(super) fn conditions_of(status: &PodStatus) -> &[PodCondition] {
    status.conditions.as_deref().unwrap_or_default()
}

pub(super) fn container_statuses(status: &PodStatus) -> &[ContainerStatus] {
    status.container_statuses.as_deref().unwrap_or_default()
}

pub(super) fn waiting_of(c: &ContainerStatus) -> Option<&ContainerStateWaiting> {
    c.state.as_ref()?.waiting.as_ref()
}

pub(super) fn running_of(c: &ContainerStatus) -> Option<&ContainerStateRunning> {
    c.state.as_ref()?.running.as_ref()
}

pub(super) fn terminated_of(c: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    c.state.as_ref()?.terminated.as_ref()
}

pub(super) fn last_terminated_of(c: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    c.last_state.as_ref()?.terminated.as_ref()
}
