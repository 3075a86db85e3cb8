//! Storage protection, as Kubernetes' pvc-protection and pv-protection controllers:
//! a claim being deleted keeps its `kubernetes.io/pvc-protection` finalizer while a
//! pod that has not ended names it, and a volume being deleted keeps
//! `kubernetes.io/pv-protection` while it is Bound. Once free, the finalizer goes,
//! and with the last one the object (the API server marked it instead of deleting
//! it: graceful.rs). Claims and volumes made without the API server's admission
//! (by other controllers) get their finalizer here, as Kubernetes' controllers add it.

use std::time::Duration;

use berth_api::conditions::is_terminal;
use berth_api::meta::MetaExt;
use berth_api::objects::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec, Pod,
};
use berth_api::persistent_volumes::{BOUND, PV_PROTECTION, PVC_PROTECTION, claims_of, volume_phase};
use berth_client::kv::KvError;
use berth_client::registry::Stored;
use berth_controller_runtime::informer::Informer;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive};

/// An object whose protection finalizer goes (it is free) or comes (it lacked
/// one): the object as it is to be written.
#[derive(Debug, Clone, PartialEq)]
pub enum Unprotect {
    Claim(Box<PersistentVolumeClaim>),
    Volume(Box<PersistentVolume>),
}

/// Whether a pod that has not ended names the claim.
pub fn is_in_use(claim: &PersistentVolumeClaim, pods: &[&Pod]) -> bool {
    pods.iter().any(|pod| {
        pod.metadata.namespace() == claim.metadata.namespace()
            && !is_terminal(pod)
            && claims_of(&pod.spec).contains(&claim.metadata.name())
    })
}

/// The finalizers that may go now. Pure.
pub fn plan(claims: &[&PersistentVolumeClaim], volumes: &[&PersistentVolume], pods: &[&Pod]) -> Vec<Unprotect> {
    let without = |finalizers: &Option<Vec<String>>, finalizer: &str| {
        finalizers
            .as_ref()
            .map(|f| f.iter().filter(|f| *f != finalizer).cloned().collect())
    };
    let with = |finalizers: &Option<Vec<String>>, finalizer: &str| {
        let mut finalizers = finalizers.clone().unwrap_or_default();
        finalizers.push(finalizer.to_string());
        Some(finalizers)
    };
    let mut free = Vec::new();
    for claim in claims {
        let is_protected = claim.metadata.finalizers().iter().any(|f| f == PVC_PROTECTION);
        if !claim.metadata.is_deleting() && !is_protected {
            let mut claim = (*claim).clone();
            claim.metadata.finalizers = with(&claim.metadata.finalizers, PVC_PROTECTION);
            free.push(Unprotect::Claim(Box::new(claim)));
        } else if claim.metadata.is_deleting() && is_protected && !is_in_use(claim, pods) {
            let mut claim = (*claim).clone();
            claim.metadata.finalizers = without(&claim.metadata.finalizers, PVC_PROTECTION);
            free.push(Unprotect::Claim(Box::new(claim)));
        }
    }
    for volume in volumes {
        let is_protected = volume.metadata.finalizers().iter().any(|f| f == PV_PROTECTION);
        if !volume.metadata.is_deleting() && !is_protected {
            let mut volume = (*volume).clone();
            volume.metadata.finalizers = with(&volume.metadata.finalizers, PV_PROTECTION);
            free.push(Unprotect::Volume(Box::new(volume)));
        } else if volume.metadata.is_deleting() && is_protected && volume_phase(volume) != BOUND {
            let mut volume = (*volume).clone();
            volume.metadata.finalizers = without(&volume.metadata.finalizers, PV_PROTECTION);
            free.push(Unprotect::Volume(Box::new(volume)));
        }
    }
    free
}

/// Runs the protection controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    let claims: Informer<PersistentVolumeClaimSpec> = Informer::start(ctx.registry.kv.clone());
    let volumes: Informer<PersistentVolumeSpec> = Informer::start(ctx.registry.kv.clone());
    claims.wait_synced().await;
    volumes.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    let triggers = vec![claims.subscribe(), volumes.subscribe(), ctx.caches.pods.subscribe()];
    drive("storage-protection", triggers, resync, || pass(&ctx, &claims, &volumes)).await;
}

async fn pass(
    ctx: &Context,
    claims: &Informer<PersistentVolumeClaimSpec>,
    volumes: &Informer<PersistentVolumeSpec>,
) -> Result<Requeue, KvError> {
    let claims = claims.snapshot();
    let volumes = volumes.snapshot();
    let claims: Vec<&PersistentVolumeClaim> = claims.iter().collect();
    let volumes: Vec<&PersistentVolume> = volumes.iter().collect();
    if claims.is_empty() && volumes.is_empty() {
        return Ok(None);
    }
    let pods = ctx.caches.pods.snapshot();
    let pods: Vec<&Pod> = pods.iter().collect();
    let mut requeue = None;
    for free in plan(&claims, &volumes, &pods) {
        let done = match free {
            Unprotect::Claim(claim) => release(ctx, &*claim).await?,
            Unprotect::Volume(volume) => release(ctx, &*volume).await?,
        };
        if !done {
            requeue = Some(RETRY_SOON);
        }
    }
    Ok(requeue)
}

/// Writes the object with its finalizers as planned, or deletes it when it is being
/// deleted and none is left (if still as read); false after a benign race.
async fn release<T: Stored>(ctx: &Context, object: &T) -> Result<bool, KvError> {
    if object.metadata().is_deleting() && object.metadata().finalizers().is_empty() {
        let version = object.metadata().resource_version().parse().ok();
        let deleted = ctx.registry.kv.delete(&object.key(), version, ctx.fence()).await;
        if benign(deleted.map(|_| ()))?.is_some() {
            tracing::info!(key = %object.key(), "protection released: deleted");
            return Ok(true);
        }
        return Ok(false);
    }
    Ok(benign(ctx.registry.update(object, ctx.fence()).await)?.is_some())
}

#[cfg(test)]
mod tests {
    use berth_api::meta::named;
    use berth_api::objects::{PodSpec, Volume};

    use super::*;

    fn deleting_claim(name: &str) -> PersistentVolumeClaim {
        let mut claim = PersistentVolumeClaim::new(named("default", name), Default::default());
        claim.metadata.finalizers = Some(vec![PVC_PROTECTION.into()]);
        claim.metadata.deletion_timestamp = Some(berth_api::time::now());
        claim
    }

    fn pod_using(claim: &str, phase: &str) -> Pod {
        let mut pod = Pod::new(
            named("default", "p"),
            PodSpec {
                volumes: Some(vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(berth_api::objects::PersistentVolumeClaimVolumeSource {
                        claim_name: claim.into(),
                        read_only: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        );
        pod.status.phase = Some(phase.into());
        pod
    }

    #[test]
    fn a_claim_stays_while_a_running_pod_uses_it() {
        let claim = deleting_claim("data");
        let running = pod_using("data", "Running");
        assert!(plan(&[&claim], &[], &[&running]).is_empty());
        let other = pod_using("other", "Running");
        let done = pod_using("data", "Succeeded");
        let free = plan(&[&claim], &[], &[&other, &done]);
        let [Unprotect::Claim(free)] = &free[..] else {
            panic!("{free:?}");
        };
        assert_eq!(free.metadata.finalizers.as_deref(), Some(&[][..]));
        let mut kept = claim.clone();
        kept.metadata.deletion_timestamp = None;
        assert!(plan(&[&kept], &[], &[]).is_empty(), "not being deleted");
        kept.metadata.finalizers = None;
        let added = plan(&[&kept], &[], &[]);
        let [Unprotect::Claim(added)] = &added[..] else {
            panic!("{added:?}");
        };
        assert_eq!(
            added.metadata.finalizers,
            Some(vec![PVC_PROTECTION.to_string()]),
            "made without admission"
        );
    }

    #[test]
    fn a_volume_stays_while_bound() {
        let mut volume = PersistentVolume::new(named("", "pv1"), Default::default());
        volume.metadata.finalizers = Some(vec![PV_PROTECTION.into(), "other".into()]);
        volume.metadata.deletion_timestamp = Some(berth_api::time::now());
        volume.status.phase = Some(BOUND.into());
        assert!(plan(&[], &[&volume], &[]).is_empty());
        volume.status.phase = Some("Released".into());
        let free = plan(&[], &[&volume], &[]);
        let [Unprotect::Volume(free)] = &free[..] else {
            panic!("{free:?}");
        };
        assert_eq!(free.metadata.finalizers.as_deref(), Some(&["other".to_string()][..]));
    }
}
