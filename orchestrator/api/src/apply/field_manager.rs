//! The two operations that change who owns which fields, as kube-apiserver's field
//! manager does them:
//!
//! - `apply` (server-side apply, `PATCH` with `application/apply-patch+yaml`): merges
//!   a configuration into the live object, refuses to change fields other managers
//!   own (unless forced, which takes them), removes the fields its manager applied
//!   last time and no longer applies (unless someone else owns them), and makes the
//!   manager own exactly what it applied;
//! - `update` (every other write): the writer owns what it changed, and other
//!   managers lose those fields and the ones it removed.
//!
//! Neither reads a clock: the caller passes the time entries are stamped with.
//!
//! Fields nobody owns, whatever the writer: `apiVersion`, `kind`, `metadata` itself,
//! and the metadata the server keeps (`name`, `namespace`, `uid`, `resourceVersion`,
//! `generation`, `creationTimestamp`, `selfLink`, `managedFields`). Writes to the
//! object itself never own `status` (berth's main resource never changes it; the
//! `status` subresource does).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value, json};

use super::applied_fields::applied_fields;
use super::compare::{compare, compare_without_managed_fields};
use super::conflict::{Conflict, Conflicts};
use super::field_set::FieldSet;
use super::last_applied::{self, KUBECTL, fields_still_as_last_applied};
use super::managed::{MAX_UPDATE_MANAGERS, Managed, ManagedFields, ManagerId};
use super::merge::merge;
use super::path::Path;
use super::prune::{remove_fields, with_named_fields};
use super::schema::Node;
use crate::meta::Time;
use crate::patch::PatchSchema;

/// Who writes: the manager's name, the API version of the request, and the
/// subresource written (`""` for the object itself, `status`, `scale`).
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
}

/// The manager that owns an object's fields when it is first applied to without
/// managed fields (made by writes that recorded none).
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The configuration cannot be applied: the client is at fault (400).
    #[error("{0}")]
    BadRequest(String),
    /// Fields other managers own would change (409).
    #[error("{0}")]
    Conflicts(Conflicts),
}

/// The object after an apply, with its managed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub object: Value,
    /// Nothing changed, managed fields included: there is nothing to write.
    pub is_unchanged: bool,
}

/// The fields no manager owns.
fn ignored() -> FieldSet {
    let mut paths = vec![
        Path::fields(&["apiVersion"]),
        Path::fields(&["kind"]),
        Path::fields(&["metadata"]),
    ];
    for field in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        paths.push(Path::fields(&["metadata", field]));
    }
    FieldSet::of(paths)
}

/// What a writer of `subresource` owns of `fields`.
fn owned(fields: &FieldSet, subresource: &str) -> FieldSet {
    let fields = fields.difference(&ignored());
    if subresource.is_empty() {
        fields.recursive_difference(&FieldSet::of([Path::fields(&["status"])]))
    } else {
        fields
    }
}

/// The part of a configuration a writer of `subresource` applies: all but the status
/// for the object itself, only the status (and the object's name) for `status`.
fn configuration_for(config: &Value, subresource: &str) -> Value {
    let mut config = config.clone();
    let Some(fields) = config.as_object_mut() else {
        return config;
    };
    match subresource {
        "" => {
            fields.remove("status");
        }
        "status" => {
            fields.retain(|name, _| matches!(name.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            if let Some(Value::Object(metadata)) = fields.get_mut("metadata") {
                metadata.retain(|name, _| matches!(name.as_str(), "name" | "namespace"));
            }
        }
        _ => {}
    }
    config
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    object
}

fn set_managed_fields(object: &mut Value, managers: &ManagedFields) {
    let Some(fields) = object.as_object_mut() else { return };
    let metadata = fields.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if managers.is_empty() {
        metadata.remove("managedFields");
    } else {
        let entries = serde_json::to_value(managers.encode()).expect("entries serialize");
        metadata.insert("managedFields".into(), entries);
    }
}

/// Kubernetes' name of the applied object in errors: `default/web; apps/v1,
/// Kind=Deployment`, `default/p; /v1, Kind=Pod`.
fn object_name(api_version: &str, config: &Value) -> String {
    let text = |pointer: &str| config.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let prefix = if api_version.contains('/') { "" } else { "/" };
    format!(
        "{}/{}; {prefix}{api_version}, Kind={}",
        text("/metadata/namespace"),
        text("/metadata/name"),
        text("/kind")
    )
}

/// Kubernetes' words for a list of errors: one alone, or each on a line of its own.
fn error_list(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => std::iter::once("errors:".to_string())
            .chain(many.iter().map(|error| format!("  {error}")))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Applies `config` for `writer`: to `live`, or to nothing when the object does not
/// exist yet (the result is then the object to create). The manager `kubectl` also
/// takes over from client-side apply (see `last_applied`).
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    writer: Writer<'_>,
    force: bool,
    schema: &PatchSchema,
    now: &Time,
) -> Result<Applied, ApplyError> {
    let result = match apply_once(live, config, writer, force, schema, now) {
        Err(ApplyError::Conflicts(conflicts)) if writer.manager == KUBECTL => {
            let kubectls = live.and_then(|live| {
                fields_still_as_last_applied(&without_managed_fields(live), writer.api_version, schema)
            });
            match kubectls {
                None => Err(ApplyError::Conflicts(conflicts)),
                Some(kubectls) => {
                    let remaining: Vec<Conflict> = conflicts
                        .iter()
                        .filter(|conflict| !kubectls.contains(&conflict.path.0))
                        .cloned()
                        .collect();
                    if remaining.is_empty() {
                        apply_once(live, config, writer, true, schema, now)
                    } else {
                        Err(ApplyError::Conflicts(Conflicts::new(remaining)))
                    }
                }
            }
        }
        other => other,
    };
    let mut applied = result?;
    if writer.manager == KUBECTL && last_applied::record(&mut applied.object, live, config) {
        applied.is_unchanged = false;
    }
    Ok(applied)
}

fn apply_once(
    live: Option<&Value>,
    config: &Value,
    writer: Writer<'_>,
    force: bool,
    schema: &PatchSchema,
    now: &Time,
) -> Result<Applied, ApplyError> {
    if config.pointer("/metadata/managedFields").is_some_and(|v| !v.is_null()) {
        return Err(ApplyError::BadRequest("metadata.managedFields must be nil".into()));
    }
    let config = configuration_for(config, writer.subresource);
    let applied = applied_fields(&config, schema).map_err(|errors| {
        ApplyError::BadRequest(format!(
            "failed to create typed patch object ({}): {}",
            object_name(writer.api_version, &config),
            error_list(&errors)
        ))
    })?;
    let live_object = live.map_or_else(|| json!({}), without_managed_fields);
    let mut managers = live
        .map(|live| ManagedFields::of_object(live).unwrap_or_default())
        .unwrap_or_default();
    let before = managers.clone();
    if managers.is_empty() && live.is_some() {
        // The object's fields so far belong to whoever made them, unknown here.
        let existing = owned(&compare(&json!({}), &live_object, schema).changed(), writer.subresource);
        if !existing.is_empty() {
            managers.managers.insert(
                ManagerId::update(BEFORE_FIRST_APPLY, writer.api_version, writer.subresource),
                Managed {
                    api_version: writer.api_version.into(),
                    time: Some(now.clone()),
                    fields: existing,
                },
            );
        }
    }
    let me = ManagerId::apply(writer.manager, writer.subresource);
    let root = Node::root(schema);
    let mut merged = merge(&live_object, &config, schema);
    if let Some(last) = managers.managers.get(&me) {
        let kept = with_named_fields(&applied.union(&managers.owned_by_others(&me)), root);
        let dropped = with_named_fields(&last.fields, root).difference(&kept);
        remove_fields(&mut merged, &dropped.difference(&ignored()), root);
    }
    let comparison = compare(&live_object, &merged, schema);
    let changed = comparison.changed();
    let conflicts: Vec<Conflict> = managers
        .managers
        .iter()
        .filter(|(id, _)| **id != me)
        .flat_map(|(id, managed)| {
            managed
                .fields
                .intersection(&changed)
                .paths()
                .into_iter()
                .map(|path| Conflict {
                    manager: id.clone(),
                    path,
                })
        })
        .collect();
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(Conflicts::new(conflicts)));
    }
    for (id, managed) in managers.managers.iter_mut() {
        if *id != me {
            managed.fields = managed.fields.difference(&changed).difference(&comparison.removed);
        }
    }
    let fields = owned(&applied, writer.subresource);
    let is_same_object = merged == live_object;
    let time = match managers.managers.get(&me) {
        Some(previous) if is_same_object && previous.fields == fields => previous.time.clone(),
        _ => Some(now.clone()),
    };
    managers.managers.insert(
        me,
        Managed {
            api_version: writer.api_version.into(),
            time,
            fields,
        },
    );
    managers.drop_empty();
    let is_unchanged = live.is_some() && is_same_object && managers == before;
    set_managed_fields(&mut merged, &managers);
    Ok(Applied {
        object: merged,
        is_unchanged,
    })
}

/// The managed fields of `new` after `writer` wrote it over `live` (`None`: created
/// it) by any write but an apply; empty when the object keeps none.
///
/// The managers start from those `new` carries (a client may edit them; `[]` or
/// `[{}]` clears them), else from `live`'s; writes to a subresource always start from
/// `live`'s. An object that had none gets none until its first apply (except when
/// created).
pub fn update(
    live: Option<&Value>,
    new: &Value,
    writer: Writer<'_>,
    schema: &PatchSchema,
    now: &Time,
) -> Vec<ManagedFieldsEntry> {
    let requested = new.pointer("/metadata/managedFields");
    let is_reset = match requested {
        Some(Value::Array(entries)) => entries.is_empty() || (entries.len() == 1 && entries[0] == json!({})),
        _ => false,
    };
    let from_live = || {
        live.map(|live| ManagedFields::of_object(live).unwrap_or_default())
            .unwrap_or_default()
    };
    let mut managers = if !writer.subresource.is_empty() {
        from_live()
    } else if is_reset {
        ManagedFields::default()
    } else {
        match ManagedFields::of_object(new) {
            Ok(managers) if !managers.is_empty() => managers,
            _ => from_live(),
        }
    };
    if managers.is_empty() && live.is_some() {
        return Vec::new();
    }
    let nothing = json!({});
    let comparison = compare_without_managed_fields(live.unwrap_or(&nothing), new, schema);
    let changed = owned(&comparison.changed(), writer.subresource);
    let me = ManagerId::update(writer.manager, writer.api_version, writer.subresource);
    for (id, managed) in managers.managers.iter_mut() {
        if *id != me {
            managed.fields = managed.fields.difference(&changed).difference(&comparison.removed);
        }
    }
    match managers.managers.get_mut(&me) {
        Some(mine) => {
            mine.fields = mine.fields.difference(&comparison.removed).union(&changed);
            if !changed.is_empty() {
                mine.time = Some(now.clone());
                mine.api_version = writer.api_version.into();
            }
        }
        None if !changed.is_empty() => {
            managers.managers.insert(
                me,
                Managed {
                    api_version: writer.api_version.into(),
                    time: Some(now.clone()),
                    fields: changed,
                },
            );
        }
        None => {}
    }
    managers.drop_empty();
    managers.cap_updates(MAX_UPDATE_MANAGERS);
    managers.encode()
}
