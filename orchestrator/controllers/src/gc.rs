//! Garbage collection by owner references (background cascade): a ReplicaSet, Pod or
//! PersistentVolumeClaim whose owners are all gone is deleted. Deleting a Deployment
//! thus removes its ReplicaSets, and their deletion removes their Pods; deleting a
//! StatefulSet removes its Pods, its ControllerRevisions and the claims it owns
//! (`whenDeleted: Delete`), and a pod's deletion the claims it owns (`whenScaled:
//! Delete`).
//!
//! The caches only nominate: an owner missing from a cache may just be newer than
//! the cache, so each owner is read from the store (linearizably) before its
//! dependent is deleted, and the delete compares the dependent's version as read.
//! Owners of kinds this collector does not know keep their dependents.
//!
//! A pass looks at the pods new or changed since the last pass that left nothing to
//! retry (the informer's snapshots tell, without visiting what they share), and at
//! every pod only when an owner (or any pod) went since: a pod can only become an orphan by
//! being written so, or by losing its owner (Kubernetes' collector follows each
//! change too). 50 000 pods are no longer walked every second while they are made.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::WALK_SPACING;
use berth_api::meta::{MetaExt, ObjectMeta, OwnerReference};
use berth_api::objects::{DeploymentSpec, PodSpec, ReplicaSetSpec, Resource, Spec, StatefulSetSpec, key};
use berth_client::graceful::delete_pod;
use berth_client::kv::{KvError, Record};
use berth_controller_runtime::informer::Snapshot;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive_spaced};

use crate::statefulset::claims::CLAIMS_PREFIX;
use crate::statefulset::revisions::REVISIONS_PREFIX;

/// The kinds that own others here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    /// A pod owns the claims of a StatefulSet's pod scaled away under `whenScaled: Delete`.
    Pod,
}

/// The kind and store key of an owner (in the dependent's namespace), or `None` for
/// a kind this collector does not handle.
pub fn owner_key(namespace: &str, owner: &OwnerReference) -> Option<(OwnerKind, String)> {
    match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("apps/v1", "Deployment") => Some((OwnerKind::Deployment, key::<DeploymentSpec>(namespace, &owner.name))),
        ("apps/v1", "ReplicaSet") => Some((OwnerKind::ReplicaSet, key::<ReplicaSetSpec>(namespace, &owner.name))),
        ("apps/v1", "StatefulSet") => Some((OwnerKind::StatefulSet, key::<StatefulSetSpec>(namespace, &owner.name))),
        ("v1", "Pod") => Some((OwnerKind::Pod, key::<PodSpec>(namespace, &owner.name))),
        _ => None,
    }
}

/// Whether every owner of an object is gone, by `exists(kind, key, uid)`. An object
/// without owners, or with an owner of an unknown kind, is never an orphan.
pub fn is_orphan(meta: &ObjectMeta, mut exists: impl FnMut(OwnerKind, &str, &str) -> bool) -> bool {
    !meta.owner_references().is_empty()
        && meta
            .owner_references()
            .iter()
            .all(|owner| owner_key(meta.namespace(), owner).is_some_and(|(kind, key)| !exists(kind, &key, &owner.uid)))
}

/// The caches owners are looked up in.
pub struct Owners {
    pub deployments: Snapshot<DeploymentSpec>,
    pub replica_sets: Snapshot<ReplicaSetSpec>,
    pub stateful_sets: Snapshot<StatefulSetSpec>,
    pub pods: Snapshot<PodSpec>,
}

/// An owner exists in the caches when an object with its key has its uid.
fn in_caches(owners: &Owners) -> impl FnMut(OwnerKind, &str, &str) -> bool + '_ {
    move |kind, key, uid| match kind {
        OwnerKind::Deployment => owners.deployments.get(key).is_some_and(|d| d.metadata.uid() == uid),
        OwnerKind::ReplicaSet => owners.replica_sets.get(key).is_some_and(|r| r.metadata.uid() == uid),
        OwnerKind::StatefulSet => owners.stateful_sets.get(key).is_some_and(|s| s.metadata.uid() == uid),
        OwnerKind::Pod => owners.pods.get(key).is_some_and(|p| p.metadata.uid() == uid),
    }
}

impl Owners {
    fn snapshot(ctx: &Context) -> Owners {
        Owners {
            deployments: ctx.caches.deployments.snapshot(),
            replica_sets: ctx.caches.replica_sets.snapshot(),
            stateful_sets: ctx.caches.stateful_sets.snapshot(),
            pods: ctx.caches.pods.snapshot(),
        }
    }

    /// Whether an owner that `earlier` had is gone (or is another object of the
    /// same name: its uid changed); pods own pods' claims and may own pods. Only
    /// then can a pod that was not an orphan become one; new and changed pods are
    /// looked at anyway.
    fn lost_an_owner_since(&self, earlier: &Owners) -> bool {
        fn lost<S: Spec>(now: &Snapshot<S>, earlier: &Snapshot<S>) -> bool {
            now.changes_since(earlier).any(|d| match (d.before, d.after) {
                (Some(before), Some(after)) => before.metadata.uid() != after.metadata.uid(),
                (Some(_), None) => true,
                _ => false,
            })
        }
        lost(&self.deployments, &earlier.deployments)
            || lost(&self.replica_sets, &earlier.replica_sets)
            || lost(&self.stateful_sets, &earlier.stateful_sets)
            || lost(&self.pods, &earlier.pods)
    }

    /// The pods a pass looks at: those new or changed since `walked` (the caches
    /// of the last pass that left nothing to retry), every pod when there is none
    /// or an owner went since.
    fn pods_to_look_at<'a>(
        &'a self,
        walked: Option<&'a Owners>,
    ) -> Box<dyn Iterator<Item = &'a Resource<PodSpec>> + 'a> {
        match walked {
            Some(walked) if !self.lost_an_owner_since(walked) => {
                Box::new(self.pods.changes_since(&walked.pods).filter_map(|d| d.after))
            }
            _ => Box::new(self.pods.iter()),
        }
    }
}

/// Runs the garbage collector until fenced; it acts only once every cache synced.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.wait_synced().await;
    let triggers = vec![
        ctx.caches.deployments.subscribe(),
        ctx.caches.replica_sets.subscribe(),
        ctx.caches.stateful_sets.subscribe(),
        ctx.caches.pods.subscribe(),
    ];
    let last_sweep = Mutex::new(None);
    let walked = Mutex::new(None);
    drive_spaced("garbage-collector", triggers, resync, WALK_SPACING, || {
        pass(&ctx, &last_sweep, &walked)
    })
    .await;
}

/// Claims and ControllerRevisions have no cache here: they are swept from the store
/// at most this often (a pass that is not due asks to run again when it is).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The claims and revisions of the store when a sweep is due, read before any
/// snapshot is taken: an informer copies its whole map on a change while a
/// snapshot lives, so none is held across these reads. `None` with the time left
/// until the next sweep otherwise.
async fn sweep_records(
    ctx: &Context,
    last_sweep: &Mutex<Option<Instant>>,
) -> Result<Result<Vec<Record>, Duration>, KvError> {
    let since = last_sweep.lock().expect("sweep lock").map(|at| at.elapsed());
    if let Some(since) = since.filter(|since| *since < SWEEP_EVERY) {
        return Ok(Err(SWEEP_EVERY - since));
    }
    *last_sweep.lock().expect("sweep lock") = Some(Instant::now());
    let mut records = Vec::new();
    for prefix in [CLAIMS_PREFIX, REVISIONS_PREFIX] {
        records.extend(ctx.registry.kv.list(prefix).await?.0);
    }
    Ok(Ok(records))
}

/// One pass over the caches (and, when due, the swept claims and revisions).
/// `walked`: the caches of the last pass that left nothing to retry; a pass looks
/// only at the pods changed since (Kubernetes' collector follows each change).
async fn pass(
    ctx: &Context,
    last_sweep: &Mutex<Option<Instant>>,
    walked: &Mutex<Option<Owners>>,
) -> Result<Requeue, KvError> {
    let (swept, mut requeue) = match sweep_records(ctx, last_sweep).await? {
        Ok(records) => (records, None),
        Err(wait) => (Vec::new(), Some(wait)),
    };
    let owners = Owners::snapshot(ctx);
    // Taken out: a pass that fails or retries leaves none, and the next looks at every pod.
    let earlier = walked.lock().expect("walked lock").take();
    let mut retry = false;
    let orphan_sets: Vec<&Resource<ReplicaSetSpec>> = owners
        .replica_sets
        .iter()
        .filter(|rs| is_orphan(&rs.metadata, in_caches(&owners)))
        .collect();
    for rs in orphan_sets {
        if !collect(ctx, rs).await? {
            retry = true;
        }
    }
    // A pod already terminating is on its way out. Most pods have one owner, which
    // many share (a ReplicaSet's): each such owner is looked up once a pass.
    let mut verdicts: HashMap<[&str; 5], bool> = HashMap::new();
    let orphan_pods: Vec<&Resource<PodSpec>> = (owners.pods_to_look_at(earlier.as_ref()))
        .filter(|pod| !pod.metadata.is_deleting())
        .filter(|pod| match pod.metadata.owner_references() {
            [o] => *verdicts
                .entry([pod.metadata.namespace(), &o.api_version, &o.kind, &o.name, &o.uid])
                .or_insert_with(|| is_orphan(&pod.metadata, in_caches(&owners))),
            _ => is_orphan(&pod.metadata, in_caches(&owners)),
        })
        .collect();
    for pod in orphan_pods {
        if !collect(ctx, pod).await? {
            retry = true;
        }
    }
    drop(earlier);
    // Claims and ControllerRevisions (the StatefulSet controller writes them and
    // reads them by name), from the sweep: the orphans are picked with the caches,
    // which are let go before the store is asked again.
    let orphans: Vec<(&Record, ObjectMeta)> = swept
        .iter()
        .filter_map(|record| Some((record, stored_metadata(&record.value)?)))
        .filter(|(_, meta)| !meta.is_deleting() && is_orphan(meta, in_caches(&owners)))
        .collect();
    if retry {
        requeue = Some(RETRY_SOON);
    } else {
        *walked.lock().expect("walked lock") = Some(owners);
    }
    for (record, meta) in orphans {
        if owners_exist_in_store(ctx, &meta).await? {
            continue;
        }
        tracing::info!(object = %record.key, "deleting: its owners are gone");
        let deleted = benign(
            ctx.registry
                .kv
                .delete(&record.key, Some(record.mod_revision), ctx.fence())
                .await,
        )?;
        if deleted.is_none() {
            requeue = Some(RETRY_SOON);
        }
    }
    Ok(requeue)
}

/// The metadata of a stored object of any kind.
fn stored_metadata(value: &[u8]) -> Option<ObjectMeta> {
    let mut object: serde_json::Value = serde_json::from_slice(value).ok()?;
    serde_json::from_value(object.get_mut("metadata")?.take()).ok()
}

/// Whether the store (read linearizably) still has one of the object's owners: the
/// caches may have been behind. An owner of an unknown kind counts as existing.
async fn owners_exist_in_store(ctx: &Context, meta: &ObjectMeta) -> Result<bool, KvError> {
    for owner in meta.owner_references() {
        let Some((_, owner_key)) = owner_key(meta.namespace(), owner) else {
            return Ok(true);
        };
        if let Some(kv) = ctx.registry.kv.get(&owner_key).await? {
            let uid = serde_json::from_slice::<serde_json::Value>(&kv.value)
                .ok()
                .and_then(|v| v["metadata"]["uid"].as_str().map(str::to_string));
            if uid.as_deref() == Some(owner.uid.as_str()) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Deletes `object` if the store confirms that all its owners are gone; returns
/// false when the pass should look again: the object changed meanwhile, or the
/// caches were behind the store (an owner they lack exists; should it go before
/// they see it, only a pass over every pod would find the orphan).
async fn collect<S: Spec>(ctx: &Context, object: &Resource<S>) -> Result<bool, KvError> {
    if owners_exist_in_store(ctx, &object.metadata).await? {
        return Ok(false);
    }
    let version = object.metadata.resource_version().parse().ok();
    tracing::info!(kind = S::DESCRIPTOR.kind, object = %object.key(), "deleting: its owners are gone");
    if S::DESCRIPTOR.kind == "Pod" {
        // With its grace, as Kubernetes' collector deletes it (a DELETE without options).
        let (namespace, name) = (object.metadata.namespace(), object.metadata.name());
        let deleted = benign(delete_pod(&ctx.registry, namespace, name, None, ctx.fence()).await)?;
        return Ok(deleted.is_some());
    }
    let deleted = benign(
        ctx.registry
            .delete::<S>(
                object.metadata.namespace(),
                object.metadata.name(),
                version,
                ctx.fence(),
            )
            .await,
    )?;
    Ok(deleted.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned_by(kind: &str, name: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some("dependent".into()),
            namespace: Some("ns".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                name: name.into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn owners_are_looked_up_in_the_dependents_namespace_by_kind() {
        let meta = owned_by("ReplicaSet", "web-1", "u1");
        assert_eq!(
            owner_key("ns", &meta.owner_references()[0]),
            Some((OwnerKind::ReplicaSet, "/registry/replicasets/ns/web-1".into()))
        );
        let meta = owned_by("Deployment", "web", "u1");
        assert_eq!(
            owner_key("ns", &meta.owner_references()[0]),
            Some((OwnerKind::Deployment, "/registry/deployments/ns/web".into()))
        );
        let meta = owned_by("StatefulSet", "db", "u1");
        assert_eq!(
            owner_key("ns", &meta.owner_references()[0]),
            Some((OwnerKind::StatefulSet, "/registry/statefulsets/ns/db".into()))
        );
        let mut meta = owned_by("Pod", "db-2", "u1");
        meta.owner_references_mut()[0].api_version = "v1".into();
        assert_eq!(
            owner_key("ns", &meta.owner_references()[0]),
            Some((OwnerKind::Pod, "/registry/pods/ns/db-2".into()))
        );
        let meta = owned_by("CronJob", "x", "u1");
        assert_eq!(owner_key("ns", &meta.owner_references()[0]), None);
    }

    #[test]
    fn an_object_is_an_orphan_only_when_every_known_owner_is_gone() {
        let meta = owned_by("ReplicaSet", "web-1", "u1");
        assert!(is_orphan(&meta, |_, _, _| false));
        assert!(!is_orphan(&meta, |kind, key, uid| kind == OwnerKind::ReplicaSet
            && key == "/registry/replicasets/ns/web-1"
            && uid == "u1"));
        // Same name, another uid: the owner was deleted and recreated.
        assert!(is_orphan(&meta, |_, _, uid| uid == "u2"));

        let mut two = meta.clone();
        two.owner_references_mut().push(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "d1".into(),
            controller: None,
            block_owner_deletion: None,
        });
        assert!(
            !is_orphan(&two, |kind, _, _| kind == OwnerKind::Deployment),
            "one owner left keeps it"
        );

        assert!(
            !is_orphan(&ObjectMeta::default(), |_, _, _| false),
            "no owners: not collected"
        );
        assert!(
            !is_orphan(&owned_by("CronJob", "x", "u"), |_, _, _| false),
            "unknown owner kinds keep it"
        );
    }

    #[test]
    fn cache_lookups_compare_uids() {
        let mut d = Resource::new(
            ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("d1".into()),
                ..Default::default()
            },
            DeploymentSpec::default(),
        );
        d.metadata.generation = Some(1);
        let owners = Owners {
            deployments: Snapshot::from_objects([d], 1),
            replica_sets: Snapshot::from_objects([], 1),
            stateful_sets: Snapshot::from_objects([], 1),
            pods: Snapshot::from_objects([], 1),
        };
        let mut exists = in_caches(&owners);
        assert!(exists(OwnerKind::Deployment, "/registry/deployments/ns/web", "d1"));
        assert!(!exists(OwnerKind::Deployment, "/registry/deployments/ns/web", "other"));
        assert!(!exists(OwnerKind::ReplicaSet, "/registry/replicasets/ns/web", "d1"));
    }
}
