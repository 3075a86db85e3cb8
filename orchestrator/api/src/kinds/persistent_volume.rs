//! PersistentVolumes (core/v1, cluster-scoped): a piece of storage on the nodes,
//! made by hand or by a provisioner, bound to at most one claim. berth acts on two
//! sources: `local` (a directory of one node, pinned by `nodeAffinity`) and
//! `hostPath`; every other source is refused by name.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells, or_none};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{PersistentVolume, PersistentVolumeSpec, PersistentVolumeStatus, Spec};
use crate::persistent_volumes::{ACCESS_MODES, DELETE, RECYCLE, RETAIN, access_modes_text, storage_bytes};
use crate::validation::{FieldError, NOT_IMPLEMENTED, is_dns_subdomain};

pub static PERSISTENT_VOLUME: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "PersistentVolume",
    plural: "persistentvolumes",
    singular: "persistentvolume",
    short_names: &["pv"],
    namespaced: false,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: true,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new("Capacity", "string", "", "The volume's storage capacity."),
        PrinterColumn::new("Access Modes", "string", "", "How the volume may be mounted."),
        PrinterColumn::new(
            "Reclaim Policy",
            "string",
            ".spec.persistentVolumeReclaimPolicy",
            "What happens to the volume when its claim is released.",
        ),
        PrinterColumn::new("Status", "string", ".status.phase", "The volume's phase."),
        PrinterColumn::new("Claim", "string", "", "The claim bound to the volume, namespace/name."),
        PrinterColumn::new(
            "StorageClass",
            "string",
            ".spec.storageClassName",
            "The class of the volume.",
        ),
        PrinterColumn::new(
            "VolumeAttributesClass",
            "string",
            ".spec.volumeAttributesClassName",
            "The volume's attributes class.",
        ),
        PrinterColumn::new("Reason", "string", ".status.reason", "Why the volume is in its phase."),
        PrinterColumn::AGE,
        PrinterColumn::new("VolumeMode", "string", ".spec.volumeMode", "Filesystem or Block.").wide(),
    ],
    status_on_create: StatusOnCreate::Phase("Pending"),
    decode: Object::decode::<PersistentVolumeSpec>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::PersistentVolume>(),
};

impl Spec for PersistentVolumeSpec {
    type Status = PersistentVolumeStatus;
    const DESCRIPTOR: &'static KindDescriptor = &PERSISTENT_VOLUME;
}

/// The spec's fields berth acts on; any other is a volume source it does not.
const KNOWN_FIELDS: &[&str] = &[
    "accessModes",
    "capacity",
    "claimRef",
    "local",
    "hostPath",
    "nodeAffinity",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "volumeMode",
    "mountOptions",
    "volumeAttributesClassName",
];

fn defaults(object: &mut Object) {
    if let Some(volume) = object.downcast_mut::<PersistentVolume>() {
        let spec = &mut volume.spec;
        spec.persistent_volume_reclaim_policy
            .get_or_insert_with(|| RETAIN.into());
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(volume) = object.downcast_ref::<PersistentVolume>() {
        validate_spec(&volume.spec, errors);
    }
}

/// Kubernetes' rules (`ValidatePersistentVolumeSpec`) for what berth serves.
pub(crate) fn validate_spec(spec: &PersistentVolumeSpec, errors: &mut Vec<FieldError>) {
    let mut error = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    access_modes(spec.access_modes.as_deref(), "spec.accessModes", &mut error);
    match &spec.capacity {
        None => error("spec.capacity", "Required value".into()),
        Some(capacity) if capacity.is_empty() => error("spec.capacity", "Required value".into()),
        Some(capacity) => {
            for key in capacity.keys().filter(|k| *k != "storage") {
                error(
                    "spec.capacity",
                    format!("Unsupported value: {key:?}: supported values: \"storage\""),
                );
            }
            if capacity.contains_key("storage") {
                match storage_bytes(Some(capacity)) {
                    Some(0) => error(
                        "spec.capacity[storage]",
                        "Invalid value: must be greater than zero".into(),
                    ),
                    Some(_) => {}
                    None => error(
                        "spec.capacity[storage]",
                        format!("Invalid value: {:?}: not a quantity", capacity["storage"].0),
                    ),
                }
            }
        }
    }
    match spec.persistent_volume_reclaim_policy.as_deref() {
        None | Some(RETAIN) | Some(DELETE) => {}
        Some(RECYCLE) => error(
            "spec.persistentVolumeReclaimPolicy",
            format!("{NOT_IMPLEMENTED} (Recycle is deprecated; use Delete or Retain)"),
        ),
        Some(other) => error(
            "spec.persistentVolumeReclaimPolicy",
            format!("Unsupported value: {other:?}: supported values: \"Delete\", \"Recycle\", \"Retain\""),
        ),
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty())
        && !is_dns_subdomain(class)
    {
        error(
            "spec.storageClassName",
            format!("Invalid value: {class:?}: a lowercase RFC 1123 subdomain is required"),
        );
    }
    volume_mode(spec.volume_mode.as_deref(), "spec.volumeMode", &mut error);
    if spec.mount_options.as_ref().is_some_and(|m| !m.is_empty()) {
        error(
            "spec.mountOptions",
            "Forbidden: may not specify mount options for this volume type".into(),
        );
    }
    if spec.volume_attributes_class_name.is_some() {
        error("spec.volumeAttributesClassName", NOT_IMPLEMENTED.into());
    }
    let as_json = serde_json::to_value(spec).unwrap_or(Value::Null);
    for field in as_json.as_object().into_iter().flat_map(|o| o.keys()) {
        if !KNOWN_FIELDS.contains(&field.as_str()) {
            error(
                &format!("spec.{field}"),
                format!("{NOT_IMPLEMENTED} (volume sources other than local and hostPath)"),
            );
        }
    }
    match (&spec.local, &spec.host_path) {
        (None, None) => {
            if as_json
                .as_object()
                .is_none_or(|o| o.keys().all(|k| KNOWN_FIELDS.contains(&k.as_str())))
            {
                error("spec", "Required value: must specify a volume type".into());
            }
        }
        (Some(_), Some(_)) => error(
            "spec.hostPath",
            "Forbidden: may not specify more than 1 volume type".into(),
        ),
        (Some(local), None) => {
            absolute_path(&local.path, "spec.local.path", &mut error);
            if local.fs_type.as_deref().is_some_and(|t| !t.is_empty()) {
                error("spec.local.fsType", NOT_IMPLEMENTED.into());
            }
            match &spec.node_affinity {
                None => error(
                    "spec.nodeAffinity",
                    "Required value: Local volume requires node affinity".into(),
                ),
                Some(affinity) => match &affinity.required {
                    None => error(
                        "spec.nodeAffinity.required",
                        "Required value: must specify required node constraints".into(),
                    ),
                    Some(selector) if selector.node_selector_terms.is_empty() => error(
                        "spec.nodeAffinity.required.nodeSelectorTerms",
                        "Required value: must have at least one node selector term".into(),
                    ),
                    Some(_) => {}
                },
            }
        }
        (None, Some(host_path)) => {
            absolute_path(&host_path.path, "spec.hostPath.path", &mut error);
            match host_path.type_.as_deref() {
                None | Some("") | Some("Directory") | Some("DirectoryOrCreate") => {}
                Some(other) => error(
                    "spec.hostPath.type",
                    format!("{NOT_IMPLEMENTED} (type {other:?}; a volume is a directory)"),
                ),
            }
        }
    }
}

/// At least one known access mode, and ReadWriteOncePod alone.
pub(crate) fn access_modes(modes: Option<&[String]>, field: &str, error: &mut impl FnMut(&str, String)) {
    let modes = modes.unwrap_or_default();
    if modes.is_empty() {
        error(field, "Required value: at least 1 access mode is required".into());
    }
    for mode in modes {
        if !ACCESS_MODES.contains(&mode.as_str()) {
            error(
                field,
                format!(
                    "Unsupported value: {mode:?}: supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \
                     \"ReadWriteOnce\", \"ReadWriteOncePod\""
                ),
            );
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        error(
            field,
            "Forbidden: may not use ReadWriteOncePod with other access modes".into(),
        );
    }
}

/// Filesystem only: block volumes are refused by name.
pub(crate) fn volume_mode(mode: Option<&str>, field: &str, error: &mut impl FnMut(&str, String)) {
    match mode {
        None | Some("Filesystem") => {}
        Some("Block") => error(field, format!("{NOT_IMPLEMENTED} (block volumes)")),
        Some(other) => error(
            field,
            format!("Unsupported value: {other:?}: supported values: \"Block\", \"Filesystem\""),
        ),
    }
}

fn absolute_path(path: &str, field: &str, error: &mut impl FnMut(&str, String)) {
    if path.is_empty() {
        error(field, "Required value".into());
    } else if !path.starts_with('/') {
        error(field, format!("Invalid value: {path:?}: must be an absolute path"));
    } else if path.split('/').any(|part| part == "..") {
        error(field, format!("Invalid value: {path:?}: must not contain '..'"));
    }
}

/// A volume's source and its binding to a claim may change; its class, capacity's
/// meaning and node affinity are as Kubernetes keeps them: the source is fixed, and
/// so is the node affinity once set.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (
        old.downcast_ref::<PersistentVolume>(),
        new.downcast_ref::<PersistentVolume>(),
    ) else {
        return;
    };
    let mut immutable = |field: &str| {
        errors.push(FieldError {
            field: field.into(),
            message: "Invalid value: field is immutable".into(),
        })
    };
    if old.spec.local != new.spec.local || old.spec.host_path != new.spec.host_path {
        immutable("spec.persistentvolumesource");
    }
    if old.spec.node_affinity.is_some() && old.spec.node_affinity != new.spec.node_affinity {
        immutable("spec.nodeAffinity");
    }
    if old.spec.volume_mode != new.spec.volume_mode {
        immutable("spec.volumeMode");
    }
    if old.spec.storage_class_name != new.spec.storage_class_name {
        immutable("spec.storageClassName");
    }
}

/// `Terminating` for an object being deleted (held by its protection finalizer),
/// else its phase, as kubectl shows claims and volumes.
pub(crate) fn terminating_or(object: &Object, phase: &str) -> Value {
    if object.metadata().deletion_timestamp.is_some() {
        "Terminating".into()
    } else {
        phase.into()
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(volume) = object.downcast_ref::<PersistentVolume>() else {
        return cells::from_paths(&PERSISTENT_VOLUME, object, now);
    };
    let spec = &volume.spec;
    let capacity = spec
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .map_or(String::new(), |q| q.0.clone());
    let claim = spec.claim_ref.as_ref().map_or(String::new(), |r| {
        format!(
            "{}/{}",
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default()
        )
    });
    let unset = |v: &Option<String>| match v.as_deref() {
        None | Some("") => Value::from("<unset>"),
        Some(v) => v.into(),
    };
    vec![
        cells::name(object),
        capacity.into(),
        access_modes_text(spec.access_modes.as_ref()).into(),
        cells::text(&spec.persistent_volume_reclaim_policy).into(),
        terminating_or(object, cells::text(&volume.status.phase)),
        claim.into(),
        cells::text(&spec.storage_class_name).into(),
        unset(&spec.volume_attributes_class_name),
        cells::text(&volume.status.reason).into(),
        cells::age(object, now),
        or_none(cells::text(&spec.volume_mode)),
    ]
}

#[cfg(test)]
#[path = "persistent_volume_tests.rs"]
mod tests;
