//! Deployment → ReplicaSets, as Kubernetes' deployment controller does it, with
//! both strategies: `RollingUpdate` (the default: the new ReplicaSet grows and the
//! old ones shrink a few pods at a time, within `maxSurge` extra pods and
//! `maxUnavailable` missing ones, [`strategy`]) and `Recreate` (every pod of the old
//! template goes before any pod of the new one starts).
//!
//! The ReplicaSet of a Deployment's current pod template is `<deployment>-<hash>`,
//! the hash of the template also being its `pod-template-hash` label (on the
//! ReplicaSet, in its selector and on its pods, so the ReplicaSets of one Deployment
//! never select each other's pods). Every ReplicaSet carries a revision
//! ([`revision`]); the old ones are kept at 0 replicas, up to the revision history
//! limit (`history`), so `kubectl rollout undo` can bring a template back (its
//! ReplicaSet is reused, with the next revision). The status and its conditions
//! ([`status`]) are what `kubectl rollout status` and `kubectl wait` read.
//!
//! ```text
//!  Deployment, the ReplicaSets it controls, now
//!      │ reconcile (pure)
//!      ├─ Progressing: Unknown (DeploymentPaused / DeploymentResumed) when spec.paused flips
//!      ├─ the new ReplicaSet, if it exists: the Deployment's annotations, the next revision
//!      ├─ paused, or spec.replicas changed: scale (one active ReplicaSet takes the
//!      │     size; midway through a rollout, all active ones in proportion)
//!      │     (paused: the template waits; the history limit is kept)
//!      ├─ RollingUpdate: create the new one (as big as the surge allows) ─► scale it
//!      │     up within replicas + maxSurge, else the old ones down keeping
//!      │     replicas - maxUnavailable available ─► once complete, the history limit
//!      ├─ Recreate: old ReplicaSets to 0 ─► once their pods are gone, create (or
//!      │     scale) the new one ─► once complete, delete history beyond the limit
//!      └─ complete: mark the new ReplicaSet `berth.io/became-available`; past the
//!            deadline with `berth.io/auto-rollback: "true"`: the template of the
//!            newest marked revision back (a Warning AutoRollback Event)
//!      ▼
//!  status: counts, Available, Progressing (a deadline check is requeued)
//!      │ actions
//!      ▼
//!  fenced writes: create / update / delete ReplicaSets, update the Deployment
//!  (its spec only when rolling back)
//! ```
//!
//! Recreate waits for the old ReplicaSets' pods that are still terminating too (a
//! ReplicaSet's status leaves them out), looking again every second while there
//! are some: no pod event wakes this controller.

mod history;
pub mod revision;
mod rollout;
pub mod status;
pub mod strategy;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use berth_api::conditions::is_terminal;
use berth_api::meta::{LabelSelector, MetaExt, ObjectMeta};
use berth_api::objects::{Deployment, Pod, PodTemplateSpec, ReplicaSet, ReplicaSetSpec, Resource};
use berth_api::owners::{controller_of, controller_ref, is_controlled_by};
use berth_client::events::{EventType, Recorder, reference};
use berth_client::kv::KvError;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

use crate::spec_replicas;
use crate::template_json::template_bytes;
use revision::REVISION_ANNOTATION;
pub use rollout::{AUTO_ROLLBACK_ANNOTATION, AUTO_ROLLBACK_REASON};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A stable hash of a pod template: the first 10 hex digits of the 64-bit FNV-1a
/// of its JSON in the layout of [`crate::template_json`] (fields in a fixed order,
/// maps sorted: the same template always gives the same bytes). A
/// `pod-template-hash` label in the template is ignored, so the hash of a
/// ReplicaSet's template equals its Deployment's. A field that is absent or empty
/// changes no hash, or the hash of every existing template would change (a golden
/// test guards this).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    let bytes = template_bytes(&serde_json::to_value(&template).expect("templates serialize"));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")[..10].to_string()
}

/// The ReplicaSet a Deployment wants for its current template (without the
/// annotations of [`revision`]).
pub fn desired_replica_set(deployment: &Deployment, hash: &str) -> ReplicaSet {
    let mut template = deployment.spec.template.clone();
    let labels = template.metadata.get_or_insert_default().labels_mut();
    labels.insert(TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
    let labels = labels.clone();
    let mut selector: LabelSelector = deployment.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_default()
        .insert(TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
    let metadata = ObjectMeta {
        name: Some(format!("{}-{hash}", deployment.metadata.name())),
        namespace: deployment.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![controller_ref(deployment)]),
        ..Default::default()
    };
    Resource::new(
        metadata,
        ReplicaSetSpec {
            replicas: Some(spec_replicas(deployment.spec.replicas).max(0)),
            min_ready_seconds: deployment.spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
    )
}

/// What a Deployment needs done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateReplicaSet(ReplicaSet),
    /// Write a ReplicaSet changed (replicas, annotations, minReadySeconds); the write
    /// compares the version read.
    UpdateReplicaSet(ReplicaSet),
    /// Delete an old ReplicaSet beyond the revision history limit, if still as read.
    DeleteReplicaSet(ReplicaSet),
    /// Write the Deployment's revision annotation and status (as read otherwise).
    UpdateDeployment(Deployment),
    /// Write the Deployment with an earlier revision's template (and its status),
    /// then record a Warning Event with the message saying why.
    RollBackDeployment(Deployment, String),
}

/// The actions for one Deployment, and when to look again without an event.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue: Requeue,
}

/// The actions that bring `owned` (the ReplicaSets the Deployment controls) in line
/// with `deployment`, at `now`. Pure.
pub fn reconcile(deployment: &Deployment, owned: &[&ReplicaSet], now: SystemTime) -> Plan {
    reconcile_with_terminating(deployment, owned, &BTreeMap::new(), now)
}

/// [`reconcile`], knowing how many pods of each ReplicaSet (by uid) are still
/// terminating: a ReplicaSet's status leaves them out, but Recreate waits for them
/// too (every old pod gone before a new one starts).
pub fn reconcile_with_terminating(
    deployment: &Deployment,
    owned: &[&ReplicaSet],
    terminating: &BTreeMap<String, i32>,
    now: SystemTime,
) -> Plan {
    if deployment.metadata.is_deleting() {
        return Plan::default();
    }
    let mut rollout = rollout::Rollout::new(deployment, owned, terminating, now);
    rollout.run();
    rollout.into_plan()
}

/// The pods being deleted but not yet finished, by the uid of the ReplicaSet that
/// controls them.
fn terminating_pods(pods: &[&Pod]) -> BTreeMap<String, i32> {
    let mut terminating = BTreeMap::new();
    for pod in pods.iter().filter(|p| p.metadata.is_deleting() && !is_terminal(p)) {
        if let Some(owner) = controller_of(&pod.metadata) {
            *terminating.entry(owner.uid.clone()).or_insert(0) += 1;
        }
    }
    terminating
}

/// Records a ScalingReplicaSet event on the Deployment, as Kubernetes words it.
fn scaled(recorder: &Recorder, deployment: &Deployment, replica_set: &str, from: i32, to: i32) {
    let direction = if to > from { "up" } else { "down" };
    recorder.emit(
        reference(deployment),
        EventType::Normal,
        "ScalingReplicaSet",
        format!("Scaled {direction} replica set {replica_set} from {from} to {to}"),
    );
}

/// Runs the Deployment controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.deployments.wait_synced().await;
    ctx.caches.replica_sets.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    let triggers = vec![ctx.caches.deployments.subscribe(), ctx.caches.replica_sets.subscribe()];
    drive("deployment", triggers, resync, || pass(&ctx)).await;
}

async fn pass(ctx: &Context) -> Result<Requeue, KvError> {
    let now = SystemTime::now();
    let deployments = ctx.caches.deployments.snapshot();
    let replica_sets = ctx.caches.replica_sets.snapshot();
    let pods = ctx.caches.pods.snapshot();
    let terminating = terminating_pods(&pods.iter().collect::<Vec<_>>());
    let mut requeue = None;
    let recorder = ctx.recorder("deployment-controller");
    for deployment in deployments.iter() {
        let owned: Vec<&ReplicaSet> = replica_sets
            .iter()
            .filter(|rs| {
                rs.metadata.namespace() == deployment.metadata.namespace()
                    && is_controlled_by(&rs.metadata, deployment.metadata.uid())
            })
            .collect();
        let plan = reconcile_with_terminating(deployment, &owned, &terminating, now);
        requeue = sooner(requeue, plan.requeue);
        // A new ReplicaSet that could not be created: the status would claim it.
        let mut is_blocked = false;
        for action in plan.actions {
            let done = match action {
                Action::CreateReplicaSet(rs) => {
                    if replica_sets.contains(&rs.key()) {
                        // Someone else's ReplicaSet has the name (a Deployment deleted and
                        // recreated under the same name): the garbage collector removes it
                        // and its deletion wakes us.
                        tracing::debug!(replicaset = %rs.key(), "name taken by a ReplicaSet of another owner");
                        is_blocked = true;
                        continue;
                    }
                    let revision = rs
                        .metadata
                        .annotations()
                        .get(REVISION_ANNOTATION)
                        .cloned()
                        .unwrap_or_default();
                    tracing::info!(replicaset = %rs.key(), replicas = spec_replicas(rs.spec.replicas), %revision, "creating");
                    let created = benign(ctx.registry.create(&rs, ctx.fence()).await)?.is_some();
                    is_blocked |= !created;
                    let replicas = spec_replicas(rs.spec.replicas);
                    if created && replicas > 0 {
                        scaled(&recorder, deployment, rs.metadata.name(), 0, replicas);
                    }
                    created
                }
                Action::UpdateReplicaSet(rs) => {
                    tracing::info!(replicaset = %rs.key(), replicas = spec_replicas(rs.spec.replicas), "updating");
                    let before = replica_sets.get(&rs.key()).map(|old| spec_replicas(old.spec.replicas));
                    let updated = benign(ctx.registry.update(&rs, ctx.fence()).await)?.is_some();
                    let after = spec_replicas(rs.spec.replicas);
                    if updated && let Some(before) = before.filter(|before| *before != after) {
                        scaled(&recorder, deployment, rs.metadata.name(), before, after);
                    }
                    updated
                }
                Action::DeleteReplicaSet(rs) => {
                    tracing::info!(replicaset = %rs.key(), "deleting: beyond the revision history limit");
                    let version = rs.metadata.resource_version().parse().ok();
                    let (namespace, name) = (rs.metadata.namespace(), rs.metadata.name());
                    benign(
                        ctx.registry
                            .delete::<ReplicaSetSpec>(namespace, name, version, ctx.fence())
                            .await,
                    )?
                    .is_some()
                }
                Action::UpdateDeployment(deployment) => {
                    if is_blocked {
                        continue;
                    }
                    benign(ctx.registry.update(&deployment, ctx.fence()).await)?.is_some()
                }
                Action::RollBackDeployment(rolled_back, message) => {
                    if is_blocked {
                        continue;
                    }
                    tracing::warn!(deployment = %rolled_back.key(), %message, "rolling back");
                    let updated = benign(ctx.registry.update(&rolled_back, ctx.fence()).await)?.is_some();
                    if updated {
                        recorder.emit(reference(deployment), EventType::Warning, AUTO_ROLLBACK_REASON, message);
                    }
                    updated
                }
            };
            if !done {
                requeue = Some(RETRY_SOON);
            }
        }
    }
    Ok(requeue)
}
