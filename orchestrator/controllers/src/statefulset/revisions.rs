//! A StatefulSet's ControllerRevisions, as Kubernetes keeps them: one per template
//! the set has had, named after the template's hash (`<set>-<hash>`, the pods'
//! `controller-revision-hash`), its `data` the template as a patch of the set
//! (`{"spec":{"template":{..., "$patch":"replace"}}}`), numbered in the order the
//! templates were rolled out (a template that comes back takes the next number), and
//! trimmed to `revisionHistoryLimit` besides the ones pods still use. They hold the
//! template of the current revision while a partitioned update keeps some pods on it.

use std::collections::BTreeSet;

use berth_api::kinds::Object;
use berth_api::kinds::controller_revision::{ControllerRevision, RawExtension};
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::objects::{PodTemplateSpec, StatefulSet};
use berth_api::owners::{controller_ref, is_controlled_by};
use berth_client::kv::{Fence, KvError, Result};
use berth_client::registry::Registry;

use super::identity::revision_of;

/// Where ControllerRevisions are stored.
pub const REVISIONS_PREFIX: &str = "/registry/controllerrevisions/";
/// The label Kubernetes gives a revision: its template's hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

pub fn revision_key(namespace: &str, name: &str) -> String {
    format!("{REVISIONS_PREFIX}{namespace}/{name}")
}

/// The revision of the set's template, numbered `number`.
pub fn new_revision(set: &StatefulSet, number: i64) -> ControllerRevision {
    let name = revision_of(set);
    let hash = name.rsplit('-').next().unwrap_or_default().to_string();
    let mut labels = set
        .spec
        .template
        .metadata
        .as_ref()
        .map(|m| m.labels().clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash);
    let mut template = serde_json::to_value(&set.spec.template).expect("templates serialize");
    template["$patch"] = "replace".into();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        data: Some(RawExtension(serde_json::json!({"spec": {"template": template}}))),
        revision: number,
    }
}

/// The pod template a revision holds.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

/// The set's revisions in the store.
pub async fn list(registry: &Registry, set: &StatefulSet) -> Result<Vec<ControllerRevision>> {
    let (records, _) = registry
        .kv
        .list(&format!("{REVISIONS_PREFIX}{}/", set.metadata.namespace()))
        .await?;
    Ok(records
        .iter()
        .filter_map(|record| decode(record).ok())
        .filter(|r| is_controlled_by(&r.metadata, set.metadata.uid()))
        .collect())
}

pub fn decode(record: &berth_client::kv::Record) -> Result<ControllerRevision> {
    let mut revision: ControllerRevision = serde_json::from_slice(&record.value).map_err(|e| {
        KvError::Other(format!(
            "stored ControllerRevision at {} does not decode: {e}",
            record.key
        ))
    })?;
    revision.metadata.resource_version = Some(record.mod_revision.to_string());
    Ok(revision)
}

/// Reads one revision's template.
pub async fn read_template(registry: &Registry, namespace: &str, name: &str) -> Result<Option<PodTemplateSpec>> {
    let Some(record) = registry.kv.get(&revision_key(namespace, name)).await? else {
        return Ok(None);
    };
    Ok(template_of(&decode(&record)?))
}

/// Makes the set's template the newest revision (creating it, or renumbering it when
/// an older template comes back), then deletes the oldest revisions no pod and
/// neither the current nor the update revision uses, beyond `revisionHistoryLimit`.
pub async fn sync(
    registry: &Registry,
    set: &StatefulSet,
    in_use: &BTreeSet<String>,
    fence: Option<&Fence>,
) -> Result<()> {
    let mut revisions = list(registry, set).await?;
    let name = revision_of(set);
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    match revisions.iter().find(|r| r.metadata.name() == name) {
        None => {
            let revision = new_revision(set, newest + 1);
            match registry.create(&Object::new(revision.clone()), fence).await {
                Ok(_) | Err(KvError::AlreadyExists) => revisions.push(revision),
                Err(e) => return Err(e),
            }
        }
        Some(existing) if existing.revision < newest => {
            let mut renumbered = existing.clone();
            renumbered.revision = newest + 1;
            match registry.update(&Object::new(renumbered), fence).await {
                Ok(_) | Err(KvError::Conflict { .. }) | Err(KvError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Some(_) => {}
    }
    let limit = usize::try_from(set.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let mut old: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| r.metadata.name() != name && !in_use.contains(r.metadata.name()))
        .collect();
    old.sort_by_key(|r| r.revision);
    let excess = old.len().saturating_sub(limit);
    for revision in &old[..excess] {
        let key = revision_key(revision.metadata.namespace(), revision.metadata.name());
        match registry.kv.delete(&key, None, fence).await {
            Ok(_) | Err(KvError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
