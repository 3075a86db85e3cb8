//! Garbage collection by owner references (background cascade): a ReplicaSet or Pod
//! whose owners are all gone is deleted. Deleting a Deployment thus removes its
//! ReplicaSets, and their deletion removes their Pods.
//!
//! The caches only nominate: an owner missing from a cache may just be newer than
//! the cache, so each owner is read from the store (linearizably) before its
//! dependent is deleted, and the delete compares the dependent's version as read.
//! Owners of kinds this collector does not know keep their dependents.

use std::time::Duration;

use berth_api::meta::{MetaExt, ObjectMeta, OwnerReference};
use berth_api::objects::{DeploymentSpec, PodSpec, ReplicaSetSpec, Resource, Spec, key};
use berth_client::graceful::delete_pod;
use berth_client::kv::KvError;
use berth_controller_runtime::informer::Snapshot;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive};

/// The kinds that own others here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    Deployment,
    ReplicaSet,
}

/// The kind and store key of an owner (in the dependent's namespace), or `None` for
/// a kind this collector does not handle.
pub fn owner_key(namespace: &str, owner: &OwnerReference) -> Option<(OwnerKind, String)> {
    match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("apps/v1", "Deployment") => Some((OwnerKind::Deployment, key::<DeploymentSpec>(namespace, &owner.name))),
        ("apps/v1", "ReplicaSet") => Some((OwnerKind::ReplicaSet, key::<ReplicaSetSpec>(namespace, &owner.name))),
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

/// An owner exists in the caches when an object with its key has its uid.
fn in_caches<'a>(
    deployments: &'a Snapshot<DeploymentSpec>,
    replica_sets: &'a Snapshot<ReplicaSetSpec>,
) -> impl FnMut(OwnerKind, &str, &str) -> bool + 'a {
    move |kind, key, uid| match kind {
        OwnerKind::Deployment => deployments.get(key).is_some_and(|d| d.metadata.uid() == uid),
        OwnerKind::ReplicaSet => replica_sets.get(key).is_some_and(|r| r.metadata.uid() == uid),
    }
}

/// Runs the garbage collector until fenced; it acts only once every cache synced.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.wait_synced().await;
    let triggers = vec![
        ctx.caches.deployments.subscribe(),
        ctx.caches.replica_sets.subscribe(),
        ctx.caches.pods.subscribe(),
    ];
    drive("garbage-collector", triggers, resync, || pass(&ctx)).await;
}

async fn pass(ctx: &Context) -> Result<Requeue, KvError> {
    let deployments = ctx.caches.deployments.snapshot();
    let replica_sets = ctx.caches.replica_sets.snapshot();
    let pods = ctx.caches.pods.snapshot();
    let mut requeue = None;
    let orphan_sets: Vec<&Resource<ReplicaSetSpec>> = replica_sets
        .iter()
        .filter(|rs| is_orphan(&rs.metadata, in_caches(&deployments, &replica_sets)))
        .collect();
    for rs in orphan_sets {
        if !collect(ctx, rs).await? {
            requeue = Some(RETRY_SOON);
        }
    }
    // A pod already terminating is on its way out.
    let orphan_pods: Vec<&Resource<PodSpec>> = pods
        .iter()
        .filter(|pod| !pod.metadata.is_deleting() && is_orphan(&pod.metadata, in_caches(&deployments, &replica_sets)))
        .collect();
    for pod in orphan_pods {
        if !collect(ctx, pod).await? {
            requeue = Some(RETRY_SOON);
        }
    }
    Ok(requeue)
}

/// Deletes `object` if the store confirms that all its owners are gone; returns
/// false when the pass should look again (the object changed meanwhile).
async fn collect<S: Spec>(ctx: &Context, object: &Resource<S>) -> Result<bool, KvError> {
    for owner in object.metadata.owner_references() {
        let Some((_, owner_key)) = owner_key(object.metadata.namespace(), owner) else {
            return Ok(true);
        };
        if let Some(kv) = ctx.registry.kv.get(&owner_key).await? {
            let uid = serde_json::from_slice::<serde_json::Value>(&kv.value)
                .ok()
                .and_then(|v| v["metadata"]["uid"].as_str().map(str::to_string));
            if uid.as_deref() == Some(owner.uid.as_str()) {
                // The cache was behind: the owner exists.
                return Ok(true);
            }
        }
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
        let deployments = Snapshot::from_objects([d], 1);
        let replica_sets = Snapshot::<ReplicaSetSpec>::from_objects([], 1);
        let mut exists = in_caches(&deployments, &replica_sets);
        assert!(exists(OwnerKind::Deployment, "/registry/deployments/ns/web", "d1"));
        assert!(!exists(OwnerKind::Deployment, "/registry/deployments/ns/web", "other"));
        assert!(!exists(OwnerKind::ReplicaSet, "/registry/replicasets/ns/web", "d1"));
    }
}
