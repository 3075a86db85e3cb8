//! The rules persistent storage shares between the binder (which claim goes with
//! which volume), the scheduler (which nodes a volume allows) and the agents: the
//! annotations Kubernetes' volume controllers write, the phases, and the matching
//! rules, all pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement};

use crate::meta::{MetaExt, selector_matches};
use crate::objects::{PersistentVolume, PersistentVolumeClaim, Quantity};
use crate::quantity::parse_memory_bytes;

/// The provisioner of berth's built-in class: a directory per claim on the node
/// the claim's first pod is scheduled to.
pub const LOCAL_PROVISIONER: &str = "berth.io/local";
/// The class the API server creates at start, the default one.
pub const DEFAULT_CLASS: &str = "local";
/// A class that provisions nothing: claims of it bind to volumes made by hand.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// Marks a StorageClass as the one claims without a class get.
pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// On a claim and a volume: the binding is complete (`yes`).
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a claim or volume whose binding the controller, not the user, made (`yes`).
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a provisioned volume: who made it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// On a claim: the provisioner asked to make its volume.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// On a claim of a WaitForFirstConsumer class: the node its first pod was
/// scheduled to, set by the scheduler.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The Node annotation an agent publishes: the directory it keeps local volumes in.
pub const LOCAL_VOLUME_DIR: &str = "berth.io/local-volume-dir";
/// Keeps a claim while a pod uses it (added when the claim is created).
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Keeps a volume while it is bound (added when the volume is created).
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
/// The finalizers deletion waits for.
pub const PROTECTION_FINALIZERS: &[&str] = &[PVC_PROTECTION, PV_PROTECTION];
/// The node label local volumes are pinned by.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

pub const IMMEDIATE: &str = "Immediate";
pub const WAIT_FOR_FIRST_CONSUMER: &str = "WaitForFirstConsumer";
pub const RETAIN: &str = "Retain";
pub const DELETE: &str = "Delete";
pub const RECYCLE: &str = "Recycle";

/// Volume phases.
pub const PENDING: &str = "Pending";
pub const AVAILABLE: &str = "Available";
pub const BOUND: &str = "Bound";
pub const RELEASED: &str = "Released";
pub const FAILED: &str = "Failed";
/// A claim whose volume went away.
pub const LOST: &str = "Lost";

pub const ACCESS_MODES: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];

/// `RWO,ROX`: access modes as kubectl prints them.
pub fn access_modes_text(modes: Option<&Vec<String>>) -> String {
    let short = |mode: &str| match mode {
        "ReadWriteOnce" => "RWO".to_string(),
        "ReadOnlyMany" => "ROX".to_string(),
        "ReadWriteMany" => "RWX".to_string(),
        "ReadWriteOncePod" => "RWOP".to_string(),
        other => other.to_string(),
    };
    modes
        .into_iter()
        .flatten()
        .map(|m| short(m))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `storage` quantity of a capacity or requests map, in bytes.
pub fn storage_bytes(resources: Option<&BTreeMap<String, Quantity>>) -> Option<u64> {
    parse_memory_bytes(&resources?.get("storage")?.0).ok()
}

/// The storage a claim asks for, in bytes.
pub fn requested_bytes(claim: &PersistentVolumeClaim) -> Option<u64> {
    storage_bytes(claim.spec.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// A volume's capacity, in bytes.
pub fn capacity_bytes(volume: &PersistentVolume) -> Option<u64> {
    storage_bytes(volume.spec.capacity.as_ref())
}

/// A claim's class as Kubernetes reads it: absent and empty both mean none.
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    claim.spec.storage_class_name.as_deref().unwrap_or_default()
}

/// A volume's class (empty: none).
pub fn volume_class(volume: &PersistentVolume) -> &str {
    volume.spec.storage_class_name.as_deref().unwrap_or_default()
}

pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume.status.phase.as_deref().unwrap_or_default()
}

pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim.status.phase.as_deref().unwrap_or_default()
}

/// Whether the volume's claimRef names this claim (by uid when the ref has one).
pub fn is_claimed_by(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(reference) = &volume.spec.claim_ref else {
        return false;
    };
    reference.namespace.as_deref() == Some(claim.metadata.namespace())
        && reference.name.as_deref() == Some(claim.metadata.name())
        && reference
            .uid
            .as_deref()
            .is_none_or(|uid| uid.is_empty() || uid == claim.metadata.uid())
}

/// Why `volume` cannot take `claim`, or `Ok` when it can: Kubernetes' matching
/// rules (`FindMatchingVolume`): the same class, every access mode the claim asks
/// for, at least the storage it requests, its selector, the same volume mode; a
/// volume already reserved for another claim, or being deleted, is not offered.
pub fn check_match(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> Result<(), &'static str> {
    if volume.metadata.is_deleting() {
        return Err("being deleted");
    }
    if volume.spec.claim_ref.is_some() && !is_claimed_by(volume, claim) {
        return Err("claimed by another claim");
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("another storage class");
    }
    let offered = volume.spec.access_modes.as_deref().unwrap_or_default();
    let asked = claim.spec.access_modes.as_deref().unwrap_or_default();
    if !asked.iter().all(|mode| offered.contains(mode)) {
        return Err("missing an access mode");
    }
    let volume_mode = volume.spec.volume_mode.as_deref().unwrap_or("Filesystem");
    if claim.spec.volume_mode.as_deref().unwrap_or("Filesystem") != volume_mode {
        return Err("another volume mode");
    }
    match (capacity_bytes(volume), requested_bytes(claim)) {
        (Some(capacity), Some(requested)) if capacity >= requested => {}
        _ => return Err("too small"),
    }
    if let Some(selector) = &claim.spec.selector
        && !selector_matches(selector, volume.metadata.labels())
    {
        return Err("not selected");
    }
    Ok(())
}

/// The volume for `claim`: the one that names it already if any, else the
/// smallest Available volume that matches (the name breaks ties), among those
/// `allowed` accepts (a node's, for a claim waiting for its first consumer).
pub fn best_volume<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    allowed: impl Fn(&PersistentVolume) -> bool,
) -> Option<&'a PersistentVolume> {
    let candidates: Vec<&PersistentVolume> = volumes
        .into_iter()
        .filter(|v| check_match(v, claim).is_ok() && allowed(v))
        .collect();
    if let Some(reserved) = candidates.iter().find(|v| is_claimed_by(v, claim)) {
        return Some(reserved);
    }
    candidates
        .into_iter()
        .filter(|v| volume_phase(v) == AVAILABLE && v.spec.claim_ref.is_none())
        .min_by_key(|v| (capacity_bytes(v).unwrap_or(u64::MAX), v.metadata.name().to_string()))
}

/// Whether a node (its name and labels) satisfies the volume's node affinity; a
/// volume without one is reachable from every node.
pub fn node_allows(volume: &PersistentVolume, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    match volume.spec.node_affinity.as_ref().and_then(|a| a.required.as_ref()) {
        Some(selector) => node_selector_matches(selector, node_name, labels),
        None => true,
    }
}

/// A NodeSelector as Kubernetes evaluates it: any term, each with all its
/// expressions (on labels) and fields (`metadata.name`); a selector without terms
/// selects nothing.
pub fn node_selector_matches(selector: &NodeSelector, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    selector.node_selector_terms.iter().any(|term| {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if expressions.is_empty() && fields.is_empty() {
            return false;
        }
        expressions
            .iter()
            .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                let value = (r.key == "metadata.name").then_some(node_name);
                requirement_matches(r, value)
            })
    })
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    let bound = || values.first().and_then(|v| number(v));
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((value.and_then(number), bound()), (Some(v), Some(b)) if v > b),
        "Lt" => matches!((value.and_then(number), bound()), (Some(v), Some(b)) if v < b),
        _ => false,
    }
}

/// The node affinity of a local volume on `node`: its `kubernetes.io/hostname`.
pub fn affinity_to_hostname(hostname: &str) -> k8s_openapi::api::core::v1::VolumeNodeAffinity {
    use k8s_openapi::api::core::v1::{NodeSelectorTerm, VolumeNodeAffinity};
    VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: HOSTNAME_LABEL.into(),
                    operator: "In".into(),
                    values: Some(vec![hostname.into()]),
                }]),
                match_fields: None,
            }],
        }),
    }
}

/// The claims a pod's volumes name, in order.
pub fn claims_of(spec: &crate::objects::PodSpec) -> Vec<&str> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect()
}

#[cfg(test)]
#[path = "persistent_volumes_tests.rs"]
mod tests;
