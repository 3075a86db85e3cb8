//! The claims of a StatefulSet's pods in the store, under
//! `/registry/persistentvolumeclaims/<ns>/<name>` as the API server keeps
//! PersistentVolumeClaims: created before their pod (an existing one is used as it
//! is), and, under `whenScaled: Delete`, owned by their pod once it is scaled away,
//! so that the garbage collector deletes them after it; their owners follow the
//! set's retention policy when it changes ([`sync_owners`]).

use berth_api::meta::MetaExt;
use berth_api::objects::{PersistentVolumeClaim, Pod, StatefulSet};
use berth_client::kv::{Fence, KvError, Record, Result};
use berth_client::registry::Registry;

use berth_api::kinds::stateful_set::DELETE;
use berth_api::owners::controller_ref;

use super::identity::{claim_name, ordinal_of, pod_name, pod_owner_ref, wanted_ordinals};

/// Where claims are stored.
pub const CLAIMS_PREFIX: &str = "/registry/persistentvolumeclaims/";

pub fn claim_key(namespace: &str, name: &str) -> String {
    format!("{CLAIMS_PREFIX}{namespace}/{name}")
}

/// A stored claim, with its resourceVersion.
pub fn decode(record: &Record) -> Result<PersistentVolumeClaim> {
    let mut claim: PersistentVolumeClaim = serde_json::from_slice(&record.value).map_err(|e| {
        KvError::Other(format!(
            "stored PersistentVolumeClaim at {} does not decode: {e}",
            record.key
        ))
    })?;
    claim.metadata.resource_version = Some(record.mod_revision.to_string());
    Ok(claim)
}

/// Makes `pod` the owner of each of its claims (that exist), in place of the set, as
/// Kubernetes does before it deletes a pod scaled away under `whenScaled: Delete`.
pub async fn give_to_pod(registry: &Registry, set: &StatefulSet, pod: &Pod, fence: Option<&Fence>) -> Result<()> {
    let Some(ordinal) = ordinal_of(set.metadata.name(), pod.metadata.name()) else {
        return Ok(());
    };
    let owner = pod_owner_ref(pod);
    for template in set.spec.volume_claim_templates.iter().flatten() {
        let key = claim_key(
            set.metadata.namespace(),
            &claim_name(template.metadata.name(), set, ordinal),
        );
        loop {
            let Some(record) = registry.kv.get(&key).await? else {
                break;
            };
            let mut claim = decode(&record)?;
            let refs = claim.metadata.owner_references_mut();
            let before = refs.clone();
            // Only the pod: a claim the set also owned (whenDeleted: Delete) would
            // otherwise outlive its pod for as long as the set lives.
            refs.retain(|r| r.uid != set.metadata.uid());
            if !refs.iter().any(|r| r.uid == owner.uid) {
                refs.push(owner.clone());
            }
            if *refs == before {
                break;
            }
            match registry.update(&claim, fence).await {
                Err(KvError::Conflict { .. }) => continue,
                Err(KvError::NotFound) => break,
                other => {
                    other?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Gives the claims of the set's wanted ordinals the owners its retention policy
/// says, as Kubernetes does when the policy changes: the set under `whenDeleted:
/// Delete` and never otherwise, and never their pod (that is only for pods scaled
/// away, [`give_to_pod`]).
pub async fn sync_owners(registry: &Registry, set: &StatefulSet, fence: Option<&Fence>) -> Result<()> {
    let wants_set = set
        .spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some(DELETE);
    let set_uid = set.metadata.uid();
    for ordinal in wanted_ordinals(set) {
        let pod = pod_name(set, ordinal);
        for template in set.spec.volume_claim_templates.iter().flatten() {
            let key = claim_key(
                set.metadata.namespace(),
                &claim_name(template.metadata.name(), set, ordinal),
            );
            loop {
                let Some(record) = registry.kv.get(&key).await? else {
                    break;
                };
                let mut claim = decode(&record)?;
                let refs = claim.metadata.owner_references_mut();
                let before = refs.clone();
                refs.retain(|r| !(r.api_version == "v1" && r.kind == "Pod" && r.name == pod));
                let has_set = refs.iter().any(|r| r.uid == set_uid);
                if wants_set && !has_set {
                    refs.push(controller_ref(set));
                } else if !wants_set && has_set {
                    refs.retain(|r| r.uid != set_uid);
                }
                if *refs == before {
                    break;
                }
                match registry.update(&claim, fence).await {
                    Err(KvError::Conflict { .. }) => continue,
                    Err(KvError::NotFound) => break,
                    other => {
                        other?;
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}
