//! What a pod's PersistentVolumeClaims ask of its node, read from the store before
//! the pod is placed, and the claims' share of the bind.
//!
//! ```text
//!  pod.spec.volumes[].persistentVolumeClaim ─► claim ─┬─ missing / being deleted: Pending, said so
//!                                                     ├─ bound (volumeName): its volume's node affinity
//!                                                     ├─ unbound, class Immediate (or none):
//!                                                     │      Pending until the binder binds it
//!                                                     └─ unbound, WaitForFirstConsumer: the nodes
//!                                                            with a matching volume, or all if
//!                                                            its class provisions
//!  bind: one transaction puts the pod's nodeName and each waiting claim's
//!        volume.kubernetes.io/selected-node, all compared with what was read
//! ```
//!
//! Kubernetes writes the selected node before the bind and waits for the volumes to
//! bind; here both go in one transaction, so a claim never names a node its pod
//! was not bound to. The binder then provisions and binds the claim.

use berth_api::kinds::storage_class::{STORAGE_CLASS, from_stored};
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, PersistentVolume, PersistentVolumeClaimSpec, PersistentVolumeSpec, Pod};
use berth_api::persistent_volumes::{
    AVAILABLE, IMMEDIATE, LOCAL_PROVISIONER, SELECTED_NODE, WAIT_FOR_FIRST_CONSUMER, check_match, claim_class,
    claims_of, is_claimed_by, volume_phase,
};
use berth_client::kv::{KvError, Together};
use berth_client::registry::encode;
use berth_controller_runtime::Context;

use super::WaitingClaim;

/// The message of a pod whose claim Immediate binding has not bound yet.
pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The pod's claims: the volumes bound to them and those waiting for this pod,
/// or why the pod cannot be placed yet.
pub async fn read_claims(
    ctx: &Context,
    pod: &Pod,
) -> Result<Result<(Vec<PersistentVolume>, Vec<WaitingClaim>), String>, KvError> {
    let namespace = pod.metadata.namespace();
    let mut bound = Vec::new();
    let mut waiting = Vec::new();
    let mut all_volumes: Option<Vec<PersistentVolume>> = None;
    for name in claims_of(&pod.spec) {
        let Some(claim) = ctx.registry.get::<PersistentVolumeClaimSpec>(namespace, name).await? else {
            return Ok(Err(format!("persistentvolumeclaim {name:?} not found")));
        };
        if claim.metadata.is_deleting() {
            return Ok(Err(format!("persistentvolumeclaim {name:?} is being deleted")));
        }
        if let Some(volume) = claim.spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
            match ctx.registry.get::<PersistentVolumeSpec>("", volume).await? {
                Some(volume) => bound.push(volume),
                None => return Ok(Err(format!("persistentvolume {volume:?} not found"))),
            }
            continue;
        }
        let class_name = claim_class(&claim);
        let class = if class_name.is_empty() {
            None
        } else {
            match ctx.registry.kv.get(&STORAGE_CLASS.key("", class_name)).await? {
                Some(record) => from_stored(&record.value),
                None => return Ok(Err(format!("storageclass.storage.k8s.io {class_name:?} not found"))),
            }
        };
        let mode = class
            .as_ref()
            .and_then(|c| c.volume_binding_mode.as_deref())
            .unwrap_or(IMMEDIATE);
        if mode != WAIT_FOR_FIRST_CONSUMER {
            return Ok(Err(UNBOUND_IMMEDIATE.to_string()));
        }
        if all_volumes.is_none() {
            all_volumes = Some(ctx.registry.list::<PersistentVolumeSpec>(None).await?.0);
        }
        let candidates = all_volumes
            .iter()
            .flatten()
            .filter(|v| check_match(v, &claim).is_ok())
            .filter(|v| volume_phase(v) == AVAILABLE || is_claimed_by(v, &claim))
            .cloned()
            .collect();
        waiting.push(WaitingClaim {
            is_provisioned: class.is_some_and(|c| c.provisioner == LOCAL_PROVISIONER),
            claim,
            candidates,
        });
    }
    Ok(Ok((bound, waiting)))
}

/// Binds the pod to the node and names the node on each waiting claim, in one
/// transaction that also compares the node, every claim as read and the fence;
/// the bind's revision, or `None` when something changed since.
pub async fn bind_with_claims(
    ctx: &Context,
    pod: &Pod,
    bound_pod: &Pod,
    node: &Node,
    waiting: &[WaitingClaim],
) -> Result<Option<i64>, KvError> {
    let version = |meta: &berth_api::meta::ObjectMeta| meta.resource_version().parse::<i64>().ok();
    let (Some(pod_version), Some(node_version)) = (version(&pod.metadata), version(&node.metadata)) else {
        return Ok(None);
    };
    let mut together = Together {
        conditions: vec![(pod.key(), pod_version), (node.key(), node_version)],
        puts: vec![(pod.key(), encode(bound_pod))],
        deletes: Vec::new(),
    };
    for waiting in waiting {
        let Some(claim_version) = version(&waiting.claim.metadata) else {
            return Ok(None);
        };
        let mut claim = waiting.claim.clone();
        claim
            .metadata
            .annotations_mut()
            .insert(SELECTED_NODE.into(), node.metadata.name().to_string());
        together.conditions.push((claim.key(), claim_version));
        if claim != waiting.claim {
            together.puts.push((claim.key(), encode(&claim)));
        }
    }
    let fence = ctx.fence.clone();
    together.conditions.push((fence.key.clone(), fence.mod_revision));
    match ctx.registry.kv.write_together(&together).await? {
        Ok(revision) => Ok(Some(revision)),
        Err(failed) if failed == together.conditions.len() - 1 => Err(KvError::Fenced),
        Err(_) => Ok(None),
    }
}
