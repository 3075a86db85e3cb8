//! The pure pass of the StatefulSet controller: from a set and the pods it controls,
//! at a time, the pods to create and delete and the status to write, in Kubernetes'
//! order.
//!
//! ```text
//!  1. wanted ordinals, lowest first: a missing pod is created (at the current
//!     revision below the partition, else at the update revision); a pod that ended
//!     is deleted, to be created again with the same name; OrderedReady stops at the
//!     first pod it acts on or that is not Running, Ready and available yet
//!  2. pods past the wanted ordinals, highest first: deleted (OrderedReady: one at a
//!     time, waiting for it to be gone)
//!  3. RollingUpdate: from the highest ordinal down to the partition, the first pod
//!     of another revision is deleted (and created anew by step 1 of a later pass);
//!     a pod not yet healthy there holds the update back
//! ```

use std::time::{Duration, SystemTime};

use berth_api::conditions::{condition, is_pod_ready, is_terminal};
use berth_api::kinds::stateful_set::{PARALLEL, ROLLING_UPDATE};
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, PodTemplateSpec, StatefulSet, StatefulSetStatus};
use berth_api::time::to_system_time;
use berth_controller_runtime::sooner;

use super::identity::{new_pod, ordinal_of, pod_revision, revision_of, template_of_pod, wanted_ordinals};

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It ended (Failed or Succeeded): it is created again with the same name.
    Ended,
    /// Its ordinal is past the wanted ones.
    ScaledDown,
    /// It has an older revision than the set's template (RollingUpdate).
    Update,
}

/// What one StatefulSet needs done.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// New pods, lowest ordinal first; each pod's claims are created before it.
    pub create: Vec<Pod>,
    pub delete: Vec<(&'a Pod, Why)>,
    pub status: Option<StatefulSetStatus>,
    /// When a ready pod will have been ready for minReadySeconds: look again then.
    pub requeue: Option<Duration>,
}

/// Running with its Ready condition true.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    pod.status.phase.as_deref() == Some("Running") && is_pod_ready(pod)
}

/// When a running and ready pod becomes available: minReadySeconds after its Ready
/// condition turned true (at once without minReadySeconds).
fn available_at(pod: &Pod, min_ready: Duration) -> Option<SystemTime> {
    if !is_running_and_ready(pod) {
        return None;
    }
    if min_ready.is_zero() {
        return Some(SystemTime::UNIX_EPOCH);
    }
    let ready = condition(pod.status.conditions.as_deref()?, "Ready")?;
    Some(to_system_time(ready.last_transition_time.as_ref()?) + min_ready)
}

/// Whether a pod is available at `now`; if it will be, when to look again.
fn availability(pod: &Pod, min_ready: Duration, now: SystemTime) -> (bool, Option<Duration>) {
    match available_at(pod, min_ready) {
        Some(at) if at <= now => (true, None),
        Some(at) => (
            false,
            Some(at.duration_since(now).unwrap_or_default() + Duration::from_secs(1)),
        ),
        None => (false, None),
    }
}

fn min_ready(set: &StatefulSet) -> Duration {
    Duration::from_secs(u64::try_from(set.spec.min_ready_seconds.unwrap_or_default()).unwrap_or(0))
}

fn partition(set: &StatefulSet) -> Option<i32> {
    let strategy = set.spec.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or(ROLLING_UPDATE) != ROLLING_UPDATE {
        return None;
    }
    Some(strategy.rolling_update.as_ref().and_then(|r| r.partition).unwrap_or(0))
}

fn is_rolling_update(set: &StatefulSet) -> bool {
    let strategy = set.spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref());
    strategy.unwrap_or(ROLLING_UPDATE) == ROLLING_UPDATE
}

/// The set's status from its pods, as Kubernetes counts: every pod in `replicas`,
/// the ready and available ones, and those not terminating by revision. A rolling
/// update whose pods are all updated and ready makes the update revision current.
pub fn status_of(
    set: &StatefulSet,
    pods: &[&Pod],
    current_revision: &str,
    update_revision: &str,
    now: SystemTime,
) -> (StatefulSetStatus, Option<Duration>) {
    let min_ready = min_ready(set);
    let mut status = StatefulSetStatus {
        observed_generation: Some(set.metadata.generation()),
        current_revision: Some(current_revision.to_string()),
        update_revision: Some(update_revision.to_string()),
        collision_count: Some(set.status.collision_count.unwrap_or(0)),
        conditions: set.status.conditions.clone(),
        ..Default::default()
    };
    let (mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0);
    let mut requeue = None;
    for pod in pods {
        status.replicas += 1;
        if is_running_and_ready(pod) {
            ready += 1;
            let (is_available, later) = availability(pod, min_ready, now);
            available += i32::from(is_available);
            requeue = sooner(requeue, later);
        }
        if !pod.metadata.is_deleting() {
            current += i32::from(pod_revision(pod) == current_revision);
            updated += i32::from(pod_revision(pod) == update_revision);
        }
    }
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(current);
    status.updated_replicas = Some(updated);
    if is_rolling_update(set) && updated == status.replicas && ready == status.replicas {
        status.current_replicas = Some(updated);
        status.current_revision = Some(update_revision.to_string());
    }
    (status, requeue)
}

/// Plans for `set` given the pods it controls (from the cache), the template of
/// its current revision (from its ControllerRevision, when that is not the set's own
/// template), at `now`. Pure.
pub fn reconcile<'a>(
    set: &StatefulSet,
    owned: &[&'a Pod],
    current_template: Option<&PodTemplateSpec>,
    now: SystemTime,
) -> Plan<'a> {
    let mut plan = Plan::default();
    let update_revision = revision_of(set);
    let current_revision = match set.status.current_revision.as_deref() {
        Some(revision) if !revision.is_empty() => revision.to_string(),
        _ => update_revision.clone(),
    };
    let (status, requeue) = status_of(set, owned, &current_revision, &update_revision, now);
    plan.requeue = requeue;
    if status != set.status {
        plan.status = Some(status);
    }
    if set.metadata.is_deleting() {
        return plan;
    }
    let name = set.metadata.name();
    let wanted = wanted_ordinals(set);
    let mut replicas = std::collections::BTreeMap::new();
    let mut condemned = Vec::new();
    for pod in owned {
        match ordinal_of(name, pod.metadata.name()) {
            Some(ordinal) if wanted.contains(&ordinal) => {
                replicas.insert(ordinal, *pod);
            }
            Some(ordinal) => condemned.push((ordinal, *pod)),
            None => {}
        }
    }
    condemned.sort_by_key(|(ordinal, _)| std::cmp::Reverse(*ordinal));
    let is_ordered = set.spec.pod_management_policy.as_deref() != Some(PARALLEL);
    let min_ready = min_ready(set);

    // The template of the current revision, for new pods below the partition: the
    // set's own when nothing is being rolled out, else its revision's, else (the
    // revision was deleted) read back from a pod of it.
    let current_template: Option<PodTemplateSpec> = if current_revision == update_revision {
        Some(set.spec.template.clone())
    } else if let Some(template) = current_template {
        Some(template.clone())
    } else {
        owned
            .iter()
            .find(|p| pod_revision(p) == current_revision)
            .map(|p| template_of_pod(set, p))
    };
    let partition = partition(set);

    // 1. The wanted ordinals, lowest first.
    for ordinal in wanted.clone() {
        let Some(pod) = replicas.get(&ordinal).copied() else {
            let pod = match (&current_template, partition) {
                (Some(template), Some(partition)) if ordinal < partition => {
                    new_pod(set, template, &current_revision, ordinal)
                }
                _ => new_pod(set, &set.spec.template, &update_revision, ordinal),
            };
            plan.create.push(pod);
            if is_ordered {
                return plan;
            }
            continue;
        };
        if is_terminal(pod) && !pod.metadata.is_deleting() {
            plan.delete.push((pod, Why::Ended));
            if is_ordered {
                return plan;
            }
            continue;
        }
        if !is_ordered {
            continue;
        }
        if pod.metadata.is_deleting() || !is_running_and_ready(pod) {
            return plan;
        }
        let (is_available, later) = availability(pod, min_ready, now);
        if !is_available {
            plan.requeue = sooner(plan.requeue, later);
            return plan;
        }
    }

    // 2. Pods past the wanted ordinals, highest first.
    for (_, pod) in condemned {
        if pod.metadata.is_deleting() {
            if is_ordered {
                return plan;
            }
            continue;
        }
        plan.delete.push((pod, Why::ScaledDown));
        if is_ordered {
            return plan;
        }
    }

    // 3. A rolling update, from the highest ordinal down to the partition.
    let Some(partition) = partition else {
        return plan;
    };
    for ordinal in wanted.rev().take_while(|o| *o >= partition) {
        let Some(pod) = replicas.get(&ordinal).copied() else {
            return plan;
        };
        if pod_revision(pod) != update_revision && !pod.metadata.is_deleting() {
            plan.delete.push((pod, Why::Update));
            return plan;
        }
        let (is_available, later) = availability(pod, min_ready, now);
        if pod.metadata.is_deleting() || !is_available {
            plan.requeue = sooner(plan.requeue, later);
            return plan;
        }
    }
    plan
}
