//! StorageClasses (`storage.k8s.io/v1`): the kinds of storage claims ask for by
//! name. Flat, as Kubernetes has them: `provisioner`, `reclaimPolicy`,
//! `volumeBindingMode`, `allowVolumeExpansion` and `parameters` beside the metadata.
//!
//! The API server creates the class `local` at start when it is absent: berth's
//! own provisioner (a directory per claim on the node of its first pod), binding
//! when a pod is scheduled, reclaim Delete, and the default for claims that name
//! no class.

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::meta::{MetaExt, ObjectMeta};
use crate::persistent_volumes::{
    DEFAULT_CLASS, DELETE, IMMEDIATE, IS_DEFAULT_CLASS, LOCAL_PROVISIONER, RECYCLE, RETAIN, WAIT_FOR_FIRST_CONSUMER,
};
use crate::validation::{FieldError, NOT_IMPLEMENTED, is_dns_subdomain};

pub use k8s_openapi::api::storage::v1::StorageClass;

pub static STORAGE_CLASS: KindDescriptor = KindDescriptor {
    group: "storage.k8s.io",
    version: "v1",
    kind: "StorageClass",
    plural: "storageclasses",
    singular: "storageclass",
    short_names: &["sc"],
    namespaced: false,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Provisioner",
            "string",
            ".provisioner",
            "Indicates the type of the provisioner.",
        ),
        PrinterColumn::new(
            "ReclaimPolicy",
            "string",
            ".reclaimPolicy",
            "Indicates the type of the reclaim policy.",
        ),
        PrinterColumn::new(
            "VolumeBindingMode",
            "string",
            ".volumeBindingMode",
            "Indicates how PersistentVolumeClaims should be provisioned and bound.",
        ),
        PrinterColumn::new(
            "AllowVolumeExpansion",
            "string",
            ".allowVolumeExpansion",
            "Indicates whether the storage class allows volume expand.",
        ),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<StorageClass>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<StorageClass>(),
};

flat_kind!(StorageClass, STORAGE_CLASS);

/// The class the API server makes at start: `local`, berth's provisioner, the default.
pub fn default_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(DEFAULT_CLASS.into()),
            annotations: Some([(IS_DEFAULT_CLASS.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        provisioner: LOCAL_PROVISIONER.into(),
        reclaim_policy: Some(DELETE.into()),
        volume_binding_mode: Some(WAIT_FOR_FIRST_CONSUMER.into()),
        allow_volume_expansion: Some(false),
        ..Default::default()
    }
}

/// Whether the class carries the default-class annotation (`true`).
pub fn is_default(class: &StorageClass) -> bool {
    class.metadata.annotations().get(IS_DEFAULT_CLASS).map(String::as_str) == Some("true")
}

/// The class claims without one get: among the default ones, the newest (then the
/// name), as Kubernetes' DefaultStorageClass admission picks.
pub fn default_of<'a>(classes: impl IntoIterator<Item = &'a StorageClass>) -> Option<&'a StorageClass> {
    classes.into_iter().filter(|c| is_default(c)).max_by(|a, b| {
        let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| b.metadata.name().cmp(a.metadata.name()))
    })
}

fn defaults(object: &mut Object) {
    let Some(class) = object.downcast_mut::<StorageClass>() else {
        return;
    };
    class.reclaim_policy.get_or_insert_with(|| DELETE.into());
    class.volume_binding_mode.get_or_insert_with(|| IMMEDIATE.into());
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(class) = object.downcast_ref::<StorageClass>() {
        validate_class(class, errors);
    }
}

/// Kubernetes' rules; `allowedTopologies` and `mountOptions` are refused by name
/// (the local provisioner would ignore both).
fn validate_class(class: &StorageClass, errors: &mut Vec<FieldError>) {
    let mut error = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    let provisioner = class.provisioner.as_str();
    if provisioner.is_empty() {
        error("provisioner", "Required value".into());
    } else if !is_qualified_name(provisioner) {
        error(
            "provisioner",
            format!(
                "Invalid value: {provisioner:?}: name part must consist of alphanumeric characters, '-', '_' or \
                 '.', and must start and end with an alphanumeric character"
            ),
        );
    }
    match class.reclaim_policy.as_deref() {
        None | Some(DELETE) | Some(RETAIN) => {}
        Some(RECYCLE) => error(
            "reclaimPolicy",
            format!("{NOT_IMPLEMENTED} (Recycle is deprecated; use Delete or Retain)"),
        ),
        Some(other) => error(
            "reclaimPolicy",
            format!("Unsupported value: {other:?}: supported values: \"Delete\", \"Retain\""),
        ),
    }
    match class.volume_binding_mode.as_deref() {
        None | Some(IMMEDIATE) | Some(WAIT_FOR_FIRST_CONSUMER) => {}
        Some(other) => error(
            "volumeBindingMode",
            format!("Unsupported value: {other:?}: supported values: \"Immediate\", \"WaitForFirstConsumer\""),
        ),
    }
    if provisioner == LOCAL_PROVISIONER && class.volume_binding_mode.as_deref() != Some(WAIT_FOR_FIRST_CONSUMER) {
        error(
            "volumeBindingMode",
            format!(
                "Unsupported value: {:?}: {LOCAL_PROVISIONER} makes a volume on the node of a claim's first pod: \
                 supported values: \"WaitForFirstConsumer\"",
                class.volume_binding_mode.as_deref().unwrap_or(IMMEDIATE)
            ),
        );
    }
    let parameters = class.parameters.as_ref().map_or(0, |p| p.len());
    if parameters > 512 {
        error(
            "parameters",
            format!("Too many: {parameters}: must have at most 512 items"),
        );
    }
    if class.parameters.iter().flatten().any(|(k, _)| k.is_empty()) {
        error("parameters", "Invalid value: \"\": field can not be empty.".into());
    }
    if class.allowed_topologies.as_ref().is_some_and(|t| !t.is_empty()) {
        error("allowedTopologies", NOT_IMPLEMENTED.into());
    }
    if class.mount_options.as_ref().is_some_and(|m| !m.is_empty()) {
        error("mountOptions", NOT_IMPLEMENTED.into());
    }
}

/// `example.com/name` or `name`: a qualified name, as Kubernetes checks provisioners.
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

/// What Kubernetes keeps fixed for a class's life.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (old.downcast_ref::<StorageClass>(), new.downcast_ref::<StorageClass>()) else {
        return;
    };
    let mut forbid = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        })
    };
    if old.parameters.clone().unwrap_or_default() != new.parameters.clone().unwrap_or_default() {
        forbid("parameters", "Forbidden: updates to parameters are forbidden.");
    }
    if old.provisioner != new.provisioner {
        forbid("provisioner", "Forbidden: updates to provisioner are forbidden.");
    }
    if old.reclaim_policy != new.reclaim_policy {
        forbid("reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden.");
    }
    if old.volume_binding_mode != new.volume_binding_mode {
        forbid("volumeBindingMode", "Invalid value: field is immutable");
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(class) = object.downcast_ref::<StorageClass>() else {
        return cells::from_paths(&STORAGE_CLASS, object, now);
    };
    let name = if is_default(class) {
        format!("{} (default)", class.metadata.name())
    } else {
        class.metadata.name().to_string()
    };
    vec![
        name.into(),
        class.provisioner.as_str().into(),
        cells::text(&class.reclaim_policy).into(),
        cells::text(&class.volume_binding_mode).into(),
        class.allow_volume_expansion.unwrap_or(false).to_string().into(),
        cells::age(object, now),
    ]
}

/// A stored class (its JSON as the store keeps it), for the components that read
/// classes by key: the binder, the scheduler, the API server's admission.
pub fn from_stored(value: &[u8]) -> Option<StorageClass> {
    serde_json::from_slice(value).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::validation::parse_value;

    fn class(fields: Value) -> Result<Object, Vec<String>> {
        let mut value = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "fast"}});
        for (k, v) in fields.as_object().unwrap() {
            value[k] = v.clone();
        }
        parse_value(value)
            .map(|p| p.object)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_and_refusals() {
        let fast = class(json!({"provisioner": "example.com/fast"})).unwrap();
        assert_eq!(fast.key(), "/registry/storageclasses/fast");
        let value = fast.to_value();
        assert_eq!(
            (value["reclaimPolicy"].as_str(), value["volumeBindingMode"].as_str()),
            (Some("Delete"), Some("Immediate"))
        );
        assert_eq!(class(json!({})).unwrap_err(), ["provisioner: Required value"]);
        assert_eq!(
            class(json!({"provisioner": "x", "reclaimPolicy": "Keep"})).unwrap_err(),
            ["reclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Retain\""]
        );
        let recycle = class(json!({"provisioner": "x", "reclaimPolicy": "Recycle"})).unwrap_err();
        assert!(
            recycle[0].starts_with("reclaimPolicy: berth does not implement"),
            "{recycle:?}"
        );
        assert_eq!(
            class(json!({"provisioner": "x", "volumeBindingMode": "Later"}))
                .unwrap_err()
                .len(),
            1
        );
        assert_eq!(
            class(json!({"provisioner": "x", "mountOptions": ["ro"]})).unwrap_err(),
            ["mountOptions: berth does not implement this field yet"]
        );
        assert!(class(json!({"provisioner": "-bad/"})).is_err());
        let immediate = class(json!({"provisioner": "berth.io/local"})).unwrap_err();
        assert!(
            immediate[0].starts_with("volumeBindingMode: Unsupported value: \"Immediate\""),
            "{immediate:?}"
        );
        assert!(class(json!({"provisioner": "berth.io/local", "volumeBindingMode": "WaitForFirstConsumer"})).is_ok());
    }

    #[test]
    fn what_stays_fixed() {
        let old = class(json!({"provisioner": "example.com/fast", "parameters": {"a": "b"}})).unwrap();
        let new =
            class(json!({"provisioner": "other", "reclaimPolicy": "Retain", "allowVolumeExpansion": true})).unwrap();
        let mut errors = Vec::new();
        (STORAGE_CLASS.validate_update)(&old, &new, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["parameters", "provisioner", "reclaimPolicy"]);
    }

    #[test]
    fn the_default_class_and_its_row() {
        let local = default_class();
        assert!(is_default(&local));
        let mut other = default_class();
        other.metadata.name = Some("other".into());
        other.metadata.annotations = None;
        assert_eq!(default_of([&other, &local]).map(|c| c.metadata.name()), Some("local"));
        assert_eq!(default_of([&other]), None);
        let row = cells(&Object::new(local), SystemTime::now());
        assert_eq!(
            row[..5],
            [
                json!("local (default)"),
                json!("berth.io/local"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!("false")
            ]
        );
    }
}
