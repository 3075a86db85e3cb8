//! A StatefulSet's pods and claims by ordinal, as Kubernetes makes them: the pod
//! `<set>-<ordinal>` from the template of a revision, with its hostname, its
//! subdomain (the set's `serviceName`, so that a headless Service of that name gives
//! `<pod>.<service>.<ns>.svc.<domain>`), the labels `statefulset.kubernetes.io/pod-name`,
//! `apps.kubernetes.io/pod-index` and `controller-revision-hash`, and a volume per
//! claim template pointing at the claim `<template>-<set>-<ordinal>`.
//!
//! Revisions are named `<set>-<hash of the template>` (the hash the Deployment
//! controller takes of its template), as a ControllerRevision would be: berth keeps
//! no ControllerRevision objects, so the template of an older revision is read back
//! from a pod that still has it ([`template_of_pod`]).

use std::collections::BTreeMap;

use berth_api::depends_on;
use berth_api::kinds::stateful_set::DELETE;
use berth_api::meta::{MetaExt, ObjectMeta, OwnerReference};
use berth_api::objects::{
    PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, Pod, PodStatus,
    PodTemplateSpec, Resource, StatefulSet, Volume,
};
use berth_api::owners::controller_ref;
use berth_api::qos::qos_class;

use crate::deployment::template_hash;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The revision of the set's current template: `<set>-<hash>`.
pub fn revision_of(set: &StatefulSet) -> String {
    format!("{}-{}", set.metadata.name(), template_hash(&set.spec.template))
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata.labels().get(REVISION_LABEL).map_or("", String::as_str)
}

/// The first ordinal: `spec.ordinals.start`, 0 by default.
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0).max(0)
}

/// The ordinals the set wants, `[start, start + replicas)`.
pub fn wanted_ordinals(set: &StatefulSet) -> std::ops::Range<i32> {
    let start = start_ordinal(set);
    start..start.saturating_add(crate::spec_replicas(set.spec.replicas).max(0))
}

/// The ordinal of a pod named `<set>-<ordinal>`; `None` for any other name.
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let digits = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.metadata.name())
}

/// The claim of template `template` for the pod of `ordinal`.
pub fn claim_name(template: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{template}-{}", pod_name(set, ordinal))
}

/// The pod of `ordinal` from `template` (of `revision`): Pending, with its QoS class;
/// held by the dependencies gate when the set names Services it depends on.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let name = pod_name(set, ordinal);
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: set.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: template_meta.annotations.filter(|a| !a.is_empty()),
        owner_references: Some(vec![controller_ref(set)]),
        ..Default::default()
    };
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name);
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    let volumes = spec.volumes.get_or_insert_default();
    for claim in set.spec.volume_claim_templates.iter().flatten() {
        let volume_name = claim.metadata.name().to_string();
        volumes.retain(|v| v.name != volume_name);
        volumes.push(Volume {
            name: volume_name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&volume_name, set, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    let mut pod = Resource::new(metadata, spec);
    pod.status = PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some(qos_class(&pod.spec).into()),
        ..Default::default()
    };
    depends_on::hold(&set.metadata, &mut pod);
    pod
}

/// The template a pod of the set was made from: the pod without what [`new_pod`]
/// added (identity, claim volumes, labels, the dependencies gate) and what the
/// scheduler wrote (its node).
pub fn template_of_pod(set: &StatefulSet, pod: &Pod) -> PodTemplateSpec {
    let mut labels = pod.metadata.labels().clone();
    for label in [POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL] {
        labels.remove(label);
    }
    let mut spec = pod.spec.clone();
    spec.hostname = None;
    spec.subdomain = None;
    spec.node_name = None;
    let claims: Vec<&str> = set
        .spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|c| c.metadata.name())
        .collect();
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|v| !(claims.contains(&v.name.as_str()) && v.persistent_volume_claim.is_some()));
        if volumes.is_empty() {
            spec.volumes = None;
        }
    }
    let mut annotations = pod.metadata.annotations().clone();
    // What berth.io/depends-on added: the gate (gone once released) and, from a set
    // that names dependencies, the annotation.
    if set.metadata.annotations().contains_key(depends_on::ANNOTATION) {
        annotations.remove(depends_on::ANNOTATION);
    }
    if let Some(gates) = spec.scheduling_gates.as_mut() {
        gates.retain(|g| g.name != depends_on::GATE);
        if gates.is_empty() {
            spec.scheduling_gates = None;
        }
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        }),
        spec: Some(spec),
    }
}

/// The claims of the pod of `ordinal`, one per claim template: the template with
/// its name, the set's namespace, the selector's labels over its own, and, when the
/// set's `whenDeleted` policy is Delete, the set as owner (so that the garbage
/// collector deletes it with the set).
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let when_deleted = set
        .spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref());
    set.spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|template| {
            let name = claim_name(template.metadata.name(), set, ordinal);
            let mut labels: BTreeMap<String, String> = template.metadata.labels.clone().unwrap_or_default();
            labels.extend(set.spec.selector.match_labels.clone().unwrap_or_default());
            let mut metadata = ObjectMeta {
                name: Some(name),
                namespace: set.metadata.namespace.clone(),
                labels: (!labels.is_empty()).then_some(labels),
                annotations: template.metadata.annotations.clone().filter(|a| !a.is_empty()),
                ..Default::default()
            };
            if when_deleted == Some(DELETE) {
                metadata.owner_references = Some(vec![controller_ref(set)]);
            }
            let mut claim = Resource::new(metadata, template.spec.clone().unwrap_or_default());
            claim.status = PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            };
            claim
        })
        .collect()
}

/// The owner reference a claim gets to the pod it goes with, when the set's
/// `whenScaled` policy is Delete and the pod is scaled away (as Kubernetes does it).
pub fn pod_owner_ref(pod: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name().into(),
        uid: pod.metadata.uid().into(),
        controller: Some(false),
        block_owner_deletion: None,
    }
}
