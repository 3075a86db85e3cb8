//! The disruption controller: keeps each PodDisruptionBudget's status, what the
//! Eviction subresource reads before it lets a pod go. As Kubernetes' does:
//!
//! - the pods are those of the budget's namespace its selector selects (an empty
//!   selector selects them all, a missing one none);
//! - `expectedPods` is the pods' controllers' scale (a Deployment's replicas for
//!   pods of its ReplicaSets, else the ReplicaSet's) for `maxUnavailable` and for a
//!   percentage `minAvailable`, and the number of pods for a number `minAvailable`;
//! - `currentHealthy` counts the ready pods not being deleted and not evicted in
//!   the last two minutes (`disruptedPods`, written by the Eviction subresource);
//! - `disruptionsAllowed` is `currentHealthy - desiredHealthy`, never below 0;
//! - a budget whose expected pods cannot be worked out allows nothing
//!   (`DisruptionAllowed` False, reason `SyncFailed`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use berth_api::conditions::is_pod_ready;
use berth_api::kinds::pod_disruption_budget::{SYNC_FAILED, scaled_value, set_condition, update_disruption_allowed};
use berth_api::meta::{MetaExt, Time, selector_matches, selector_text};
use berth_api::objects::{
    DeploymentSpec, IntOrString, Pod, PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
    ReplicaSetSpec,
};
use berth_api::owners::controller_of;
use berth_api::time::{from_system_time, to_system_time};
use berth_client::events::{EventType, reference};
use berth_client::kv::KvError;
use berth_controller_runtime::informer::{Informer, Snapshot};
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

use crate::spec_replicas;

/// How long an evicted pod may stay undeleted before the budget counts it again
/// (Kubernetes' `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// What one budget's pass found: its new status (`None`: unchanged), the events to
/// record, and when to look again (an eviction record expiring).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub status: Option<PodDisruptionBudgetStatus>,
    pub events: Vec<(EventType, &'static str, String)>,
    pub recheck: Requeue,
}

/// The controllers' objects a budget's expected count is read from.
pub struct Owners<'a> {
    pub replica_sets: &'a Snapshot<ReplicaSetSpec>,
    pub deployments: &'a Snapshot<DeploymentSpec>,
}

/// The pods `budget` covers, from every pod.
pub fn selected<'a>(budget: &PodDisruptionBudget, pods: impl IntoIterator<Item = &'a Pod>) -> Vec<&'a Pod> {
    let Some(selector) = &budget.spec.selector else {
        return Vec::new();
    };
    let namespace = budget.metadata.namespace();
    pods.into_iter()
        .filter(|pod| pod.metadata.namespace() == namespace && selector_matches(selector, pod.metadata.labels()))
        .collect()
}

/// The budget's status as of `now` (pure).
pub fn reconcile(budget: &PodDisruptionBudget, pods: &[&Pod], owners: &Owners, now: SystemTime) -> Plan {
    let mut events = Vec::new();
    if pods.is_empty() {
        events.push((EventType::Normal, "NoPods", "No matching pods found".to_string()));
    }
    let counted = expected_pods(&budget.spec, pods, owners);
    let (expected, desired, unmanaged) = match counted {
        Ok(counted) => counted,
        Err(error) => {
            events.push((
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {error}"),
            ));
            let mut status = budget.status.clone();
            status.disruptions_allowed = 0;
            set_condition(&mut status, "False", SYNC_FAILED, &error, from_system_time(now));
            return changed(budget, status, events, None);
        }
    };
    if !unmanaged.is_empty() {
        let selector = budget.spec.selector.as_ref().map(selector_text).unwrap_or_default();
        events.push((
            EventType::Warning,
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a \
                 result, the status of the PDB cannot be calculated correctly, which may result in undefined \
                 behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an \
                 integer value."
            ),
        ));
    }
    let (disrupted, recheck) = still_disrupted(budget, pods, now);
    let healthy = pods
        .iter()
        .filter(|pod| {
            pod.metadata.deletion_timestamp.is_none()
                && !disrupted.contains_key(pod.metadata.name())
                && is_pod_ready(pod)
        })
        .count() as i32;
    let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
    let mut status = PodDisruptionBudgetStatus {
        conditions: budget.status.conditions.clone(),
        current_healthy: healthy,
        desired_healthy: desired,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: budget.metadata.generation,
    };
    update_disruption_allowed(&mut status, from_system_time(now));
    changed(budget, status, events, recheck)
}

/// A plan that writes `status` only if it differs from the stored one, and then
/// records the events (so that an unchanged budget is quiet).
fn changed(
    budget: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
    events: Vec<(EventType, &'static str, String)>,
    recheck: Requeue,
) -> Plan {
    if status == budget.status {
        return Plan {
            recheck,
            ..Plan::default()
        };
    }
    Plan {
        status: Some(status),
        events,
        recheck,
    }
}

/// `(expectedPods, desiredHealthy, unmanaged pods)` by the budget's bound, or why
/// they cannot be worked out.
fn expected_pods(
    spec: &PodDisruptionBudgetSpec,
    pods: &[&Pod],
    owners: &Owners,
) -> Result<(i32, i32, Vec<String>), String> {
    if let Some(max_unavailable) = &spec.max_unavailable {
        let (expected, unmanaged) = expected_scale(pods, owners)?;
        let unavailable = scaled_value(max_unavailable, expected, true)?;
        return Ok((expected, (expected - unavailable).max(0), unmanaged));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((pods.len() as i32, *n, Vec::new())),
        Some(percent) => {
            let (expected, unmanaged) = expected_scale(pods, owners)?;
            Ok((expected, scaled_value(percent, expected, true)?, unmanaged))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

/// The sum of the scales of the pods' controllers (each counted once), and the
/// pods without a controller. A pod whose controller berth cannot scale is an
/// error, as in Kubernetes.
fn expected_scale(pods: &[&Pod], owners: &Owners) -> Result<(i32, Vec<String>), String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            unmanaged.push(pod.metadata.name().to_string());
            continue;
        };
        let namespace = pod.metadata.namespace();
        let replica_set = (owner.kind == "ReplicaSet")
            .then(|| {
                owners
                    .replica_sets
                    .iter()
                    .find(|rs| rs.metadata.uid() == owner.uid && rs.metadata.namespace() == namespace)
            })
            .flatten();
        let Some(replica_set) = replica_set else {
            return Err(format!("found no controllers for pod {:?}", pod.metadata.name()));
        };
        let deployment = controller_of(&replica_set.metadata)
            .filter(|owner| owner.kind == "Deployment")
            .and_then(|owner| {
                owners
                    .deployments
                    .iter()
                    .find(|d| d.metadata.uid() == owner.uid && d.metadata.namespace() == namespace)
            });
        let (uid, replicas) = match deployment {
            Some(d) => (d.metadata.uid(), d.spec.replicas),
            None => (replica_set.metadata.uid(), replica_set.spec.replicas),
        };
        scales.insert(uid.to_string(), spec_replicas(replicas));
    }
    Ok((scales.values().sum(), unmanaged))
}

/// The evicted pods still expected to go (recorded less than [`DELETION_TIMEOUT`]
/// ago, not yet being deleted), and when the first record expires.
fn still_disrupted(budget: &PodDisruptionBudget, pods: &[&Pod], now: SystemTime) -> (BTreeMap<String, Time>, Requeue) {
    let mut kept = BTreeMap::new();
    let mut recheck = None;
    let Some(recorded) = &budget.status.disrupted_pods else {
        return (kept, recheck);
    };
    for pod in pods {
        let name = pod.metadata.name();
        let Some(at) = recorded.get(name) else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let expires = to_system_time(at) + DELETION_TIMEOUT;
        if let Ok(left) = expires.duration_since(now) {
            kept.insert(name.to_string(), at.clone());
            recheck = sooner(recheck, Some(left));
        }
    }
    (kept, recheck)
}

/// Keeps every budget's status while this replica leads.
pub async fn run(ctx: Context, resync: Duration) {
    let budgets: Informer<PodDisruptionBudgetSpec> = Informer::start(ctx.registry.kv.clone());
    budgets.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    ctx.caches.replica_sets.wait_synced().await;
    ctx.caches.deployments.wait_synced().await;
    let triggers = vec![
        budgets.subscribe(),
        ctx.caches.pods.subscribe(),
        ctx.caches.replica_sets.subscribe(),
        ctx.caches.deployments.subscribe(),
    ];
    drive("disruption", triggers, resync, || pass(&ctx, &budgets)).await;
}

async fn pass(ctx: &Context, budgets: &Informer<PodDisruptionBudgetSpec>) -> Result<Requeue, KvError> {
    let budgets = budgets.snapshot();
    // Most clusters have none: then a pod's change costs no copy of every pod.
    if budgets.iter().next().is_none() {
        return Ok(None);
    }
    let now = SystemTime::now();
    let pods = ctx.caches.pods.snapshot();
    let owners = Owners {
        replica_sets: &ctx.caches.replica_sets.snapshot(),
        deployments: &ctx.caches.deployments.snapshot(),
    };
    let recorder = ctx.recorder("controllermanager");
    let mut requeue = None;
    for budget in budgets.iter() {
        let covered = selected(budget, pods.iter());
        let plan = reconcile(budget, &covered, &owners, now);
        requeue = sooner(requeue, plan.recheck);
        let Some(status) = plan.status else {
            continue;
        };
        let mut updated = budget.clone();
        updated.status = status;
        if benign(ctx.registry.update(&updated, ctx.fence()).await)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
            continue;
        }
        for (type_, reason, message) in plan.events {
            recorder.emit(reference(budget), type_, reason, message);
        }
    }
    Ok(requeue)
}

#[cfg(test)]
#[path = "disruption_tests.rs"]
mod tests;
