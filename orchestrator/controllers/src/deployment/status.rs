//! A Deployment's status: the counts summed over its ReplicaSets, and the two
//! conditions kubectl waits on, with Kubernetes' reasons and messages.
//!
//! - `Available`: `True` (`MinimumReplicasAvailable`) while at least `spec.replicas`
//!   less `maxUnavailable` pods are available (Recreate allows none unavailable),
//!   else `False` (`MinimumReplicasUnavailable`).
//! - `Progressing`: `True` with `NewReplicaSetCreated` / `FoundNewReplicaSet` when the
//!   rollout starts, `ReplicaSetUpdated` on each step forward, `NewReplicaSetAvailable`
//!   once complete; `False` with `ProgressDeadlineExceeded` when no step forward came
//!   for `spec.progressDeadlineSeconds`; `Unknown` with `DeploymentPaused` /
//!   `DeploymentResumed` when paused or resumed.
//!
//! A condition is replaced only when its status or reason changes (or, for
//! `ReplicaSetUpdated`, on every step forward, which renews its `lastUpdateTime`);
//! `lastTransitionTime` moves only when the status changes.

use std::time::{Duration, SystemTime};

use berth_api::kinds::deployment::DEFAULT_PROGRESS_DEADLINE_SECONDS;
use berth_api::meta::{MetaExt, Time};
use berth_api::objects::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use berth_api::time::{from_system_time, to_system_time};

use crate::spec_replicas;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";

pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";

/// A condition as Kubernetes makes a new one: updated and transitioned now.
pub fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: &Time) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_)
}

fn reason(condition: Option<&DeploymentCondition>) -> Option<&str> {
    condition.and_then(|c| c.reason.as_deref())
}

/// Sets a condition as Kubernetes does: nothing changes when one of its type has the
/// same status and reason; else it replaces that one (keeping its
/// lastTransitionTime if the status is the same) at the end of the list.
pub fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(current) = condition(status, &new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &new.type_);
    status.conditions.get_or_insert_default().push(new);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// `spec.progressDeadlineSeconds`, or `None` when there is none (Kubernetes reads
/// the largest i32 as "no deadline"); absent reads as the default.
pub fn progress_deadline(deployment: &Deployment) -> Option<Duration> {
    match deployment.spec.progress_deadline_seconds {
        Some(i32::MAX) => None,
        Some(seconds) => Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0))),
        None => Some(Duration::from_secs(DEFAULT_PROGRESS_DEADLINE_SECONDS as u64)),
    }
}

/// The counts summed over the ReplicaSets (as they will be once this pass's writes
/// land), with the conditions of `current` and `Available` set.
pub fn calculate_status(
    deployment: &Deployment,
    current: &DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: &Time,
) -> DeploymentStatus {
    let sum = |f: fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let available = sum(|rs| rs.status.available_replicas.unwrap_or_default());
    let wanted = sum(|rs| spec_replicas(rs.spec.replicas));
    let mut status = DeploymentStatus {
        observed_generation: Some(deployment.metadata.generation()),
        replicas: Some(sum(|rs| rs.status.replicas)),
        updated_replicas: Some(new.map_or(0, |rs| rs.status.replicas)),
        ready_replicas: Some(sum(|rs| rs.status.ready_replicas.unwrap_or_default())),
        available_replicas: Some(available),
        unavailable_replicas: Some((wanted - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        ..Default::default()
    };
    // Recreate tolerates no unavailable pod (its maxUnavailable is 0).
    let minimum = spec_replicas(deployment.spec.replicas) - super::strategy::max_unavailable(deployment);
    let available_condition = if available >= minimum {
        new_condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, available_condition);
    status
}

/// Every pod of the new template is there and available, and the spec is observed.
pub fn is_complete(deployment: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = spec_replicas(deployment.spec.replicas);
    status.updated_replicas.unwrap_or_default() == replicas
        && status.replicas.unwrap_or_default() == replicas
        && status.available_replicas.unwrap_or_default() == replicas
        && status.observed_generation.unwrap_or_default() >= deployment.metadata.generation()
}

/// Whether `new` is a step forward from the Deployment's recorded status: more
/// updated, ready or available pods, or fewer old ones.
fn is_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or_default();
    let old_pods = |s: &DeploymentStatus| n(s.replicas) - n(s.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || old_pods(new) < old_pods(old)
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Whether the rollout went without progress for longer than its deadline.
fn has_timed_out(deadline: Duration, status: &DeploymentStatus, now: SystemTime) -> bool {
    let Some(progressing) = condition(status, PROGRESSING) else {
        return false;
    };
    match progressing.reason.as_deref() {
        Some(NEW_REPLICA_SET_AVAILABLE) => false,
        Some(PROGRESS_DEADLINE_EXCEEDED) => true,
        _ => progressing
            .last_update_time
            .as_ref()
            .is_some_and(|from| to_system_time(from) + deadline < now),
    }
}

/// The status after a rollout step, as Kubernetes' `syncRolloutStatus` makes it:
/// the counts and `Available`, then `Progressing` from how the rollout moved since
/// `recorded` (the status as stored, with the conditions this pass set).
pub fn rollout_status(
    deployment: &Deployment,
    recorded: &DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: SystemTime,
) -> DeploymentStatus {
    let mut status = progress_status(deployment, recorded, all, new, now);
    // A ReplicaSet's ReplicaFailure (a pod refused by a quota, Pod Security) is
    // the Deployment's too, the new set's first (Kubernetes' `getReplicaFailures`).
    let failure = new.into_iter().chain(all.iter().copied()).find_map(|rs| {
        rs.status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE)
    });
    match failure {
        Some(failure) => set_condition(
            &mut status,
            new_condition(
                REPLICA_FAILURE,
                &failure.status,
                failure.reason.as_deref().unwrap_or_default(),
                failure.message.clone().unwrap_or_default(),
                &from_system_time(now),
            ),
        ),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// The condition a Deployment shares with its ReplicaSets while their pods are refused.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

fn progress_status(
    deployment: &Deployment,
    recorded: &DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: SystemTime,
) -> DeploymentStatus {
    let now_time = from_system_time(now);
    let mut status = calculate_status(deployment, recorded, all, new, &now_time);
    let Some(deadline) = progress_deadline(deployment) else {
        remove_condition(&mut status, PROGRESSING);
        return status;
    };
    let current = condition(recorded, PROGRESSING);
    let is_done = status.replicas == status.updated_replicas && reason(current) == Some(NEW_REPLICA_SET_AVAILABLE);
    if is_done {
        // A resync of a finished rollout: nothing to estimate.
        return status;
    }
    let subject = match new {
        Some(rs) => format!("ReplicaSet {:?}", rs.metadata.name()),
        None => format!("Deployment {:?}", deployment.metadata.name()),
    };
    if is_complete(deployment, &status) {
        let message = format!("{subject} has successfully progressed.");
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", NEW_REPLICA_SET_AVAILABLE, message, &now_time),
        );
    } else if is_progressing(recorded, &status) {
        let message = format!("{subject} is progressing.");
        let mut updated = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, message, &now_time);
        // Every step forward renews lastUpdateTime, even with the same reason.
        if let Some(current) = current {
            if current.status == "True" {
                updated.last_transition_time = current.last_transition_time.clone();
            }
            remove_condition(&mut status, PROGRESSING);
        }
        set_condition(&mut status, updated);
    } else if has_timed_out(deadline, &status, now) {
        let message = format!("{subject} has timed out progressing.");
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "False", PROGRESS_DEADLINE_EXCEEDED, message, &now_time),
        );
    }
    status
}

/// When to look at an unfinished rollout again to see whether it timed out: a
/// second after its deadline passes (at once, within a second of it), or `None`
/// when there is nothing to time out.
pub fn deadline_check(deployment: &Deployment, status: &DeploymentStatus, now: SystemTime) -> Option<Duration> {
    let deadline = progress_deadline(deployment)?;
    let progressing = condition(status, PROGRESSING)?;
    let reason = progressing.reason.as_deref();
    if is_complete(deployment, status) || reason == Some(PROGRESS_DEADLINE_EXCEEDED) {
        return None;
    }
    // A paused Deployment is not timed, nor one whose rollout finished.
    if matches!(reason, Some(DEPLOYMENT_PAUSED | NEW_REPLICA_SET_AVAILABLE)) {
        return None;
    }
    let last_update = to_system_time(progressing.last_update_time.as_ref()?);
    let after = (last_update + deadline).duration_since(now).unwrap_or_default();
    Some(if after < Duration::from_secs(1) {
        Duration::from_secs(1)
    } else {
        after + Duration::from_secs(1)
    })
}

/// Sets `Progressing` to `Unknown` when the Deployment is paused or resumed, unless
/// the rollout already timed out (that stays said); returns whether it changed.
pub fn set_paused_condition(deployment: &Deployment, status: &mut DeploymentStatus, now: &Time) -> bool {
    if progress_deadline(deployment).is_none() {
        return false;
    }
    let current = reason(condition(status, PROGRESSING));
    if current == Some(PROGRESS_DEADLINE_EXCEEDED) {
        return false;
    }
    let is_paused = deployment.spec.paused == Some(true);
    let is_marked_paused = current == Some(DEPLOYMENT_PAUSED);
    let (reason, message) = match (is_paused, is_marked_paused) {
        (true, false) => (DEPLOYMENT_PAUSED, "Deployment is paused"),
        (false, true) => (DEPLOYMENT_RESUMED, "Deployment is resumed"),
        _ => return false,
    };
    set_condition(
        status,
        new_condition(PROGRESSING, "Unknown", reason, message.into(), now),
    );
    true
}
