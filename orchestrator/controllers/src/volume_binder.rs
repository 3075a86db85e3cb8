//! The volume binder: binds PersistentVolumeClaims to PersistentVolumes, provisions
//! local volumes for claims of a `berth.io/local` class, and keeps both sides'
//! phases, as Kubernetes' PersistentVolume controller and its external
//! provisioners do between them.
//!
//! ```text
//!  claim without storageClassName ──► the default class (Kubernetes' retroactive
//!        assignment: claims controllers write skip the API server's admission)
//!  claim Pending ─┬─ volumeName set ─────────────► that volume, if free or ours
//!                 ├─ class Immediate (or none) ──► smallest matching Available volume
//!                 └─ class WaitForFirstConsumer ─► waits for the scheduler's
//!                       volume.kubernetes.io/selected-node, then the smallest matching
//!                       volume that node reaches, else (berth.io/local) a new volume
//!                       pvc-<claim uid>: <node's local volume dir>/<name>, pinned to the node
//!  bind: the volume's claimRef and phase Bound first, then the claim's volumeName,
//!        phase Bound, capacity and access modes (a failed first write stops the second)
//!  claim gone: its volume Released; Retain keeps it so; Delete on a local volume is
//!        the node's agent's (it removes the directory, then the volume); Delete on
//!        another volume fails (no plugin deletes it), as in Kubernetes
//! ```
//!
//! The pass is pure ([`plan`]); [`run`] makes its writes under the fence.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_api::kinds::storage_class::{STORAGE_CLASS, StorageClass, default_of, from_stored};
use berth_api::meta::{MetaExt, named};
use berth_api::objects::{
    LocalVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeSpec, Quantity,
};
use berth_api::persistent_volumes::{
    AVAILABLE, BIND_COMPLETED, BOUND, BOUND_BY_CONTROLLER, DELETE, FAILED, HOSTNAME_LABEL, IMMEDIATE,
    LOCAL_PROVISIONER, LOCAL_VOLUME_DIR, LOST, PENDING, PROVISIONED_BY, RELEASED, SELECTED_NODE, STORAGE_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER, affinity_to_hostname, best_volume, claim_class, claim_phase, is_claimed_by, node_allows,
    volume_phase,
};
use berth_client::events::{EventType, reference};
use berth_client::kv::KvError;
use berth_controller_runtime::informer::Informer;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive};

/// What the binder knows of a node: its labels, and where its agent keeps local
/// volumes (absent: an agent that does not publish it provisions nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeVolumes {
    pub labels: BTreeMap<String, String>,
    pub local_volume_dir: Option<String>,
}

/// One write of a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The volume's new state (claimRef, phase), then the claim's, in that order;
    /// either may be absent.
    Bind {
        volume: Option<PersistentVolume>,
        claim: Option<PersistentVolumeClaim>,
    },
    /// A new local volume for a claim (the claim, annotated with its provisioner,
    /// is written after it).
    Provision {
        volume: PersistentVolume,
        claim: PersistentVolumeClaim,
    },
    /// A volume's or claim's phase, alone.
    UpdateVolume(PersistentVolume),
    UpdateClaim(PersistentVolumeClaim),
}

/// The binder's pass: what to write so that claims and volumes move on. Pure.
pub fn plan(
    claims: &[&PersistentVolumeClaim],
    volumes: &[&PersistentVolume],
    classes: &BTreeMap<String, StorageClass>,
    nodes: &BTreeMap<String, NodeVolumes>,
) -> Vec<Action> {
    let by_name: BTreeMap<&str, &PersistentVolume> = volumes.iter().map(|v| (v.metadata.name(), *v)).collect();
    let mut actions = Vec::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let default_class = default_of(classes.values());
    for claim in claims.iter().filter(|c| !c.metadata.is_deleting()) {
        if let Some(with_class) = default_class.and_then(|class| with_default_class(claim, class)) {
            actions.push(Action::UpdateClaim(with_class));
            continue;
        }
        let action = match claim.spec.volume_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => named_volume(claim, by_name.get(name).copied(), classes),
            None => find_volume(claim, volumes, classes, nodes),
        };
        if let Some(action) = action {
            if let Action::Bind { volume: Some(v), .. } | Action::Provision { volume: v, .. } = &action {
                touched.insert(v.metadata.name().to_string());
            }
            actions.push(action);
        }
    }
    let claims_by_key: BTreeMap<(&str, &str), &PersistentVolumeClaim> = claims
        .iter()
        .map(|c| ((c.metadata.namespace(), c.metadata.name()), *c))
        .collect();
    for volume in volumes.iter().filter(|v| !touched.contains(v.metadata.name())) {
        if let Some(updated) = volume_phase_change(volume, &claims_by_key) {
            actions.push(Action::UpdateVolume(updated));
        }
    }
    actions
}

/// An unbound claim that names no class at all (not even `""`), given the default
/// class, as Kubernetes' PersistentVolume controller does since 1.28 (retroactive
/// default StorageClass assignment): claims written by controllers, which do not
/// pass the API server's admission, and claims made before a default existed.
fn with_default_class(claim: &PersistentVolumeClaim, class: &StorageClass) -> Option<PersistentVolumeClaim> {
    let unbound = claim.spec.volume_name.as_deref().unwrap_or_default().is_empty();
    if claim.spec.storage_class_name.is_some() || !unbound {
        return None;
    }
    let mut claim = claim.clone();
    claim.spec.storage_class_name = Some(class.metadata.name().to_string());
    Some(claim)
}

/// A claim that names its volume: bind that volume if it is free or already ours;
/// a bound claim whose volume went (or went to another claim) is Lost.
fn named_volume(
    claim: &PersistentVolumeClaim,
    volume: Option<&PersistentVolume>,
    classes: &BTreeMap<String, StorageClass>,
) -> Option<Action> {
    let lost = || {
        (claim_phase(claim) != LOST).then(|| {
            let mut lost = claim.clone();
            lost.status.phase = Some(LOST.into());
            Action::UpdateClaim(lost)
        })
    };
    let volume = match volume {
        None if claim_phase(claim) == BOUND => return lost(),
        None => return None,
        Some(volume) => volume,
    };
    if volume.spec.claim_ref.is_some() && !is_claimed_by(volume, claim) {
        return if claim_phase(claim) == BOUND { lost() } else { None };
    }
    let expanded = expanded(volume, claim, classes);
    match bind(expanded.as_ref().unwrap_or(volume), claim, false) {
        Some(Action::Bind { volume: None, claim }) if expanded.is_some() => Some(Action::Bind {
            volume: expanded,
            claim,
        }),
        other => other,
    }
}

/// A local volume whose bound claim asks for more than it holds (the API server
/// let the claim grow: its class allows expansion): the volume with the new
/// capacity. A directory has no size to change, so the expansion is only recorded;
/// other volumes would need a resizer berth does not have and keep their size.
fn expanded(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
    classes: &BTreeMap<String, StorageClass>,
) -> Option<PersistentVolume> {
    use berth_api::persistent_volumes::{capacity_bytes, requested_bytes};
    let is_local = volume.metadata.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(LOCAL_PROVISIONER);
    let allows = classes
        .get(claim_class(claim))
        .is_some_and(|c| c.allow_volume_expansion == Some(true));
    let grows = matches!((requested_bytes(claim), capacity_bytes(volume)), (Some(r), Some(c)) if r > c);
    if !(is_local && allows && grows && claim_phase(claim) == BOUND) {
        return None;
    }
    let request = claim
        .spec
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?
        .clone();
    let mut volume = volume.clone();
    volume
        .spec
        .capacity
        .get_or_insert_default()
        .insert("storage".into(), request);
    Some(volume)
}

/// A claim without a volume: the best one there is for it (on the selected node,
/// for a claim that waits for its first consumer), else a new local one.
fn find_volume(
    claim: &PersistentVolumeClaim,
    volumes: &[&PersistentVolume],
    classes: &BTreeMap<String, StorageClass>,
    nodes: &BTreeMap<String, NodeVolumes>,
) -> Option<Action> {
    let class_name = claim_class(claim);
    let class = classes.get(class_name);
    if !class_name.is_empty() && class.is_none() {
        return None;
    }
    let mode = class
        .and_then(|c| c.volume_binding_mode.as_deref())
        .unwrap_or(IMMEDIATE);
    let selected = claim.metadata.annotations().get(SELECTED_NODE).map(String::as_str);
    let node = match (mode, selected) {
        (WAIT_FOR_FIRST_CONSUMER, None) => return None,
        (WAIT_FOR_FIRST_CONSUMER, Some(node)) => Some((node, nodes.get(node).cloned().unwrap_or_default())),
        _ => None,
    };
    let reachable = |volume: &PersistentVolume| match &node {
        Some((name, info)) => node_allows(volume, name, &info.labels),
        None => true,
    };
    if let Some(volume) = best_volume(claim, volumes.iter().copied(), reachable) {
        return bind(volume, claim, true);
    }
    let class = class?;
    let (node_name, node) = node?;
    if class.provisioner != LOCAL_PROVISIONER {
        return None;
    }
    let dir = node.local_volume_dir.as_deref()?;
    let hostname = node.labels.get(HOSTNAME_LABEL).map_or(node_name, String::as_str);
    let volume = provisioned(claim, class, dir, hostname);
    let mut claim = claim.clone();
    let annotations = claim.metadata.annotations_mut();
    annotations.insert(STORAGE_PROVISIONER.into(), LOCAL_PROVISIONER.into());
    annotations.insert(
        "volume.beta.kubernetes.io/storage-provisioner".into(),
        LOCAL_PROVISIONER.into(),
    );
    Some(Action::Provision { volume, claim })
}

/// The local volume `berth.io/local` makes for a claim on a node.
fn provisioned(claim: &PersistentVolumeClaim, class: &StorageClass, dir: &str, hostname: &str) -> PersistentVolume {
    let name = format!("pvc-{}", claim.metadata.uid());
    let request = claim
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .unwrap_or(Quantity("0".into()));
    let mut metadata = named("", &name);
    metadata.annotations = Some([(PROVISIONED_BY.to_string(), LOCAL_PROVISIONER.to_string())].into());
    metadata.finalizers = Some(vec![berth_api::persistent_volumes::PV_PROTECTION.into()]);
    let mut volume = PersistentVolume::new(
        metadata,
        PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), request)].into()),
            access_modes: claim.spec.access_modes.clone(),
            persistent_volume_reclaim_policy: Some(class.reclaim_policy.clone().unwrap_or_else(|| DELETE.into())),
            storage_class_name: Some(class.metadata.name().to_string()),
            volume_mode: Some("Filesystem".into()),
            local: Some(LocalVolumeSource {
                path: format!("{}/{name}", dir.trim_end_matches('/')),
                fs_type: None,
            }),
            node_affinity: Some(affinity_to_hostname(hostname)),
            claim_ref: Some(claim_reference(claim)),
            ..Default::default()
        },
    );
    volume.status.phase = Some(PENDING.into());
    volume
}

fn claim_reference(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some(claim.metadata.namespace().to_string()),
        name: Some(claim.metadata.name().to_string()),
        uid: Some(claim.metadata.uid().to_string()),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Both sides bound to each other, as far as they are not already; `None` when
/// both already are. `by_controller`: the binder chose the volume.
fn bind(volume: &PersistentVolume, claim: &PersistentVolumeClaim, by_controller: bool) -> Option<Action> {
    let mut new_volume = volume.clone();
    let reference = new_volume.spec.claim_ref.get_or_insert_with(|| claim_reference(claim));
    if reference.uid.as_deref().is_none_or(str::is_empty) {
        reference.uid = Some(claim.metadata.uid().to_string());
    }
    if volume.spec.claim_ref.is_none() {
        new_volume
            .metadata
            .annotations_mut()
            .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
    }
    new_volume.status.phase = Some(BOUND.into());
    new_volume.status.reason = None;
    new_volume.status.message = None;

    let mut new_claim = claim.clone();
    new_claim.spec.volume_name = Some(volume.metadata.name().to_string());
    let annotations = new_claim.metadata.annotations_mut();
    annotations.insert(BIND_COMPLETED.into(), "yes".into());
    if by_controller {
        annotations.insert(BOUND_BY_CONTROLLER.into(), "yes".into());
    }
    new_claim.status.phase = Some(BOUND.into());
    new_claim.status.capacity = volume.spec.capacity.clone();
    new_claim.status.access_modes = volume.spec.access_modes.clone();

    let volume = (new_volume != *volume).then_some(new_volume);
    let claim = (new_claim != *claim).then_some(new_claim);
    (volume.is_some() || claim.is_some()).then_some(Action::Bind { volume, claim })
}

/// A volume's phase from its claim: Available without one (or reserved by name for
/// a claim still to come), Bound to a live claim, Released once that claim is
/// gone; a released volume to delete that no agent deletes is Failed.
fn volume_phase_change(
    volume: &PersistentVolume,
    claims: &BTreeMap<(&str, &str), &PersistentVolumeClaim>,
) -> Option<PersistentVolume> {
    let phase = volume_phase(volume);
    let mut new = volume.clone();
    match &volume.spec.claim_ref {
        None => {
            if phase == PENDING || phase.is_empty() {
                new.status.phase = Some(AVAILABLE.into());
            }
        }
        Some(reference) => {
            let key = (
                reference.namespace.as_deref().unwrap_or_default(),
                reference.name.as_deref().unwrap_or_default(),
            );
            let uid = reference.uid.as_deref().unwrap_or_default();
            let claim = claims.get(&key).filter(|c| uid.is_empty() || c.metadata.uid() == uid);
            match claim {
                Some(_) if uid.is_empty() => {
                    if phase == PENDING || phase.is_empty() {
                        new.status.phase = Some(AVAILABLE.into());
                    }
                }
                Some(claim) => {
                    if claim.spec.volume_name.as_deref() == Some(volume.metadata.name()) && phase != BOUND {
                        new.status.phase = Some(BOUND.into());
                    }
                }
                None if uid.is_empty() => {
                    if phase == PENDING || phase.is_empty() {
                        new.status.phase = Some(AVAILABLE.into());
                    }
                }
                None => {
                    if phase != RELEASED && phase != FAILED {
                        new.status.phase = Some(RELEASED.into());
                    }
                    let policy = volume.spec.persistent_volume_reclaim_policy.as_deref();
                    let provisioner = volume.metadata.annotations().get(PROVISIONED_BY).map(String::as_str);
                    if policy == Some(DELETE) && provisioner != Some(LOCAL_PROVISIONER) && phase != FAILED {
                        new.status.phase = Some(FAILED.into());
                        new.status.reason = Some("VolumeFailedDelete".into());
                        new.status.message = Some(format!(
                            "error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched",
                            volume.metadata.name()
                        ));
                    }
                }
            }
        }
    }
    (new != *volume).then_some(new)
}

/// Runs the binder until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    let claims: Informer<PersistentVolumeClaimSpec> = Informer::start(ctx.registry.kv.clone());
    let volumes: Informer<PersistentVolumeSpec> = Informer::start(ctx.registry.kv.clone());
    claims.wait_synced().await;
    volumes.wait_synced().await;
    ctx.caches.nodes.wait_synced().await;
    let triggers = vec![claims.subscribe(), volumes.subscribe(), ctx.caches.nodes.subscribe()];
    drive("volume-binder", triggers, resync, || pass(&ctx, &claims, &volumes)).await;
}

async fn pass(
    ctx: &Context,
    claims: &Informer<PersistentVolumeClaimSpec>,
    volumes: &Informer<PersistentVolumeSpec>,
) -> Result<Requeue, KvError> {
    let claims = claims.snapshot();
    let volumes = volumes.snapshot();
    if claims.iter().next().is_none() && volumes.iter().next().is_none() {
        return Ok(None);
    }
    let (records, _) = ctx.registry.kv.list(&STORAGE_CLASS.prefix(None)).await?;
    let classes: BTreeMap<String, StorageClass> = records
        .iter()
        .filter_map(|r| from_stored(&r.value))
        .map(|c| (c.metadata.name().to_string(), c))
        .collect();
    let nodes: BTreeMap<String, NodeVolumes> = ctx
        .caches
        .nodes
        .snapshot()
        .iter()
        .map(|node| {
            let info = NodeVolumes {
                labels: node.metadata.labels().clone(),
                local_volume_dir: node.metadata.annotations().get(LOCAL_VOLUME_DIR).cloned(),
            };
            (node.metadata.name().to_string(), info)
        })
        .collect();
    let claim_list: Vec<&PersistentVolumeClaim> = claims.iter().collect();
    let volume_list: Vec<&PersistentVolume> = volumes.iter().collect();
    let recorder = ctx.recorder("persistentvolume-controller");
    let mut requeue = None;
    for action in plan(&claim_list, &volume_list, &classes, &nodes) {
        let done = match action {
            Action::Bind { volume, claim } => {
                let volume_done = match &volume {
                    Some(volume) => benign(ctx.registry.update(volume, ctx.fence()).await)?.is_some(),
                    None => true,
                };
                match claim {
                    Some(claim) if volume_done => {
                        let written = benign(ctx.registry.update(&claim, ctx.fence()).await)?;
                        if written.is_some() {
                            tracing::info!(claim = %claim.key(), volume = claim.spec.volume_name.as_deref().unwrap_or(""), "bound");
                        }
                        written.is_some()
                    }
                    _ => volume_done,
                }
            }
            Action::Provision { volume, claim } => match benign(ctx.registry.create(&volume, ctx.fence()).await)? {
                Some(_) => {
                    recorder.emit(
                        reference(&claim),
                        EventType::Normal,
                        "ProvisioningSucceeded",
                        format!(
                            "Successfully provisioned volume {} on node {}",
                            volume.metadata.name(),
                            claim
                                .metadata
                                .annotations()
                                .get(SELECTED_NODE)
                                .map_or("", String::as_str)
                        ),
                    );
                    benign(ctx.registry.update(&claim, ctx.fence()).await)?.is_some()
                }
                None => false,
            },
            Action::UpdateVolume(volume) => benign(ctx.registry.update(&volume, ctx.fence()).await)?.is_some(),
            Action::UpdateClaim(claim) => benign(ctx.registry.update(&claim, ctx.fence()).await)?.is_some(),
        };
        if !done {
            requeue = Some(RETRY_SOON);
        }
    }
    Ok(requeue)
}

#[cfg(test)]
#[path = "volume_binder_tests.rs"]
mod tests;
