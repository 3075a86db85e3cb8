//! Preemption carried out, as kube-scheduler does it: the pod that fits nowhere
//! names the node chosen ([`select`](crate::preemption::select)) in
//! `status.nominatedNodeName`; each victim gets the `DisruptionTarget` condition
//! and a `Preempted` event and is deleted with its own grace period; the pod is
//! bound by a later pass once they are gone. Until then the room they leave is
//! kept for it: pods of lower priority are placed as if it were on its node
//! already ([`with_nominated`]).

use std::time::UNIX_EPOCH;

use berth_api::conditions::{Condition, is_terminal, set_condition};
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, PodCondition, PodDisruptionBudgetSpec, PodSpec};
use berth_api::time::{now, to_system_time};
use berth_client::events::{EventType, Recorder, reference};
use berth_client::graceful::delete_pod;
use berth_client::kv::KvError;
use berth_client::registry::encode;
use berth_controller_runtime::informer::Snapshot;
use berth_controller_runtime::{Context, benign};

use super::{SCHEDULER_NAME, marked_unschedulable};
use crate::preemption::{Budget, Placed, may_preempt, select};
use crate::{NodeInfo, PodRequest};

/// A pod's priority (`spec.priority`, which admission sets; 0 without).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.priority.unwrap_or(0)
}

fn nominated_node(pod: &Pod) -> Option<&str> {
    pod.status.nominated_node_name.as_deref().filter(|n| !n.is_empty())
}

/// The pods bound to nodes that have not ended, as preemption weighs them:
/// `(node, pod)`. Pure.
pub fn placed_pods(pods: &Snapshot<PodSpec>) -> Vec<(String, Placed)> {
    pods.iter()
        .filter(|p| !is_terminal(p))
        .filter_map(|p| {
            let node = p.spec.node_name.as_deref().filter(|n| !n.is_empty())?;
            let request = PodRequest::from_pod(p).ok()?;
            let started = p.status.start_time.as_ref().map(|t| {
                let since = to_system_time(t).duration_since(UNIX_EPOCH).unwrap_or_default();
                since.as_secs() as i64
            });
            let placed = Placed {
                key: p.key(),
                priority: priority(p),
                started,
                is_deleting: p.metadata.is_deleting(),
                request,
            };
            Some((node.to_string(), placed))
        })
        .collect()
}

/// The pods waiting for the room their preemption made: `(node, priority, pod
/// key, request)`. Pure.
pub fn nominated_pods(pending: &[&Pod]) -> Vec<(String, i32, String, PodRequest)> {
    pending
        .iter()
        .filter_map(|p| {
            let node = nominated_node(p)?;
            let request = PodRequest::from_pod(p).ok()?;
            Some((node.to_string(), priority(p), p.key(), request))
        })
        .collect()
}

/// The nodes as `pod` sees them: with the pods of no lower priority nominated to
/// a node charged to it (other than `pod` itself), so that a pod of lower priority
/// does not take the room a preemption made for another. `None` when there is
/// nothing to add. Pure.
pub fn with_nominated(
    pod: &Pod,
    infos: &[NodeInfo],
    nominated: &[(String, i32, String, PodRequest)],
) -> Option<Vec<NodeInfo>> {
    let key = pod.key();
    let mine = priority(pod);
    let ahead: Vec<_> = nominated
        .iter()
        .filter(|(_, p, k, _)| *p >= mine && *k != key)
        .collect();
    if ahead.is_empty() {
        return None;
    }
    let mut infos = infos.to_vec();
    for (node, _, _, request) in ahead {
        if let Some(info) = infos.iter_mut().find(|i| i.name == *node) {
            info.charge(request);
        }
    }
    Some(infos)
}

/// Preempts for `pod` if it may and some node would take it once pods of lower
/// priority are gone: writes the pod unschedulable with `message` and the node
/// nominated, then evicts the victims. Returns whether the pod was written (false:
/// no preemption, or a benign race; the caller writes the pod then).
pub async fn preempt(
    ctx: &Context,
    pod: &Pod,
    request: &PodRequest,
    infos: &[NodeInfo],
    placed: &[(String, Placed)],
    message: &str,
    recorder: &Recorder,
) -> Result<bool, KvError> {
    let policy = pod.spec.preemption_policy.as_deref();
    if !may_preempt(policy, priority(pod), nominated_node(pod), placed) {
        return Ok(false);
    }
    if select(request, priority(pod), infos, placed, &[]).is_none() {
        return Ok(false);
    }
    // The budgets are read only when some eviction would make room.
    let budgets = budgets(ctx).await?;
    let Some(chosen) = select(request, priority(pod), infos, placed, &budgets) else {
        return Ok(false);
    };
    let Ok(version) = pod.metadata.resource_version().parse::<i64>() else {
        return Ok(false);
    };
    let mut nominated = marked_unschedulable(pod, message).unwrap_or_else(|| pod.clone());
    nominated.status.nominated_node_name = Some(chosen.node.clone());
    let written = ctx
        .registry
        .kv
        .update(&pod.key(), encode(&nominated), version, ctx.fence())
        .await;
    if benign(written)?.is_none() {
        return Ok(false);
    }
    tracing::info!(pod = %pod.key(), node = %chosen.node, victims = chosen.victims.len(), "preempting");
    recorder.emit(
        reference(pod),
        EventType::Warning,
        "FailedScheduling",
        message.to_string(),
    );
    for victim in &chosen.victims {
        evict(ctx, pod, victim, &chosen.node, recorder).await?;
    }
    Ok(true)
}

/// The cluster's PodDisruptionBudgets, as preemption weighs them.
async fn budgets(ctx: &Context) -> Result<Vec<Budget>, KvError> {
    let (budgets, _) = ctx.registry.list::<PodDisruptionBudgetSpec>(None).await?;
    Ok(budgets
        .into_iter()
        .map(|b| Budget {
            namespace: b.metadata.namespace().to_string(),
            selector: b.spec.selector.clone().unwrap_or_default(),
            disruptions_allowed: b.status.disruptions_allowed,
            disrupted: b
                .status
                .disrupted_pods
                .iter()
                .flatten()
                .map(|(name, _)| name.clone())
                .collect(),
        })
        .collect())
}

/// The victim marked `DisruptionTarget` (as the preemptor's scheduler says it),
/// told why, and deleted with its own grace period.
async fn evict(
    ctx: &Context,
    preemptor: &Pod,
    victim: &Placed,
    node: &str,
    recorder: &Recorder,
) -> Result<(), KvError> {
    // The store key ends in `<namespace>/<name>`.
    let mut parts = victim.key.rsplitn(3, '/');
    let (Some(name), Some(namespace)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let Some(mut pod) = ctx.registry.get::<PodSpec>(namespace, name).await? else {
        return Ok(());
    };
    let scheduler = preemptor.spec.scheduler_name.as_deref().unwrap_or(SCHEDULER_NAME);
    let changed = set_condition(
        pod.status.conditions.get_or_insert_default(),
        PodCondition::new(
            "DisruptionTarget",
            "True",
            "PreemptionByScheduler",
            &format!("{scheduler}: preempting to accommodate a higher priority pod"),
        ),
        &now(),
    );
    if changed {
        benign(ctx.registry.update(&pod, ctx.fence()).await)?;
    }
    match delete_pod(&ctx.registry, namespace, name, None, ctx.fence()).await {
        Ok(_) | Err(KvError::NotFound) => {}
        Err(e) => {
            benign::<Pod>(Err(e))?;
        }
    }
    recorder.emit(
        reference(&pod),
        EventType::Normal,
        "Preempted",
        format!("Preempted by pod {} on node {node}", preemptor.metadata.uid()),
    );
    Ok(())
}

#[cfg(test)]
#[path = "preempt_tests.rs"]
mod tests;
