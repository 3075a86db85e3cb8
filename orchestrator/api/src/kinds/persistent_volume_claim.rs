//! PersistentVolumeClaims (core/v1): a namespace's request for storage, bound by
//! the binder to one PersistentVolume (made by hand, or provisioned for it). A
//! claim that names no class gets the default one when it is created (the API
//! server's admission, as Kubernetes' DefaultStorageClass).

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells, or_none};
use super::persistent_volume::{access_modes, volume_mode};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, Spec};
use crate::persistent_volumes::{BOUND, access_modes_text, requested_bytes, storage_bytes};
use crate::validation::{FieldError, NOT_IMPLEMENTED, is_dns_subdomain};

pub static PERSISTENT_VOLUME_CLAIM: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "PersistentVolumeClaim",
    plural: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    short_names: &["pvc"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: true,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new("Status", "string", ".status.phase", "The claim's phase."),
        PrinterColumn::new("Volume", "string", ".spec.volumeName", "The volume bound to the claim."),
        PrinterColumn::new("Capacity", "string", "", "The bound volume's capacity."),
        PrinterColumn::new("Access Modes", "string", "", "How the bound volume may be mounted."),
        PrinterColumn::new(
            "StorageClass",
            "string",
            ".spec.storageClassName",
            "The class the claim asks for.",
        ),
        PrinterColumn::new(
            "VolumeAttributesClass",
            "string",
            ".spec.volumeAttributesClassName",
            "The claim's attributes class.",
        ),
        PrinterColumn::AGE,
        PrinterColumn::new("VolumeMode", "string", ".spec.volumeMode", "Filesystem or Block.").wide(),
    ],
    status_on_create: StatusOnCreate::Phase("Pending"),
    decode: Object::decode::<PersistentVolumeClaimSpec>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(),
};

impl Spec for PersistentVolumeClaimSpec {
    type Status = PersistentVolumeClaimStatus;
    const DESCRIPTOR: &'static KindDescriptor = &PERSISTENT_VOLUME_CLAIM;
}

/// The message of the claim resize admission (Kubernetes' PersistentVolumeClaimResize).
pub const RESIZE_FORBIDDEN: &str = "only dynamically provisioned pvc can be resized and the storageclass that \
                                    provisions the pvc must support resize";

fn defaults(object: &mut Object) {
    if let Some(claim) = object.downcast_mut::<PersistentVolumeClaim>() {
        claim.spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(claim) = object.downcast_ref::<PersistentVolumeClaim>() {
        validate_spec(&claim.spec, errors);
    }
}

/// Kubernetes' rules (`ValidatePersistentVolumeClaimSpec`); data sources, block
/// volumes, attributes classes and limits are refused by name.
pub(crate) fn validate_spec(spec: &PersistentVolumeClaimSpec, errors: &mut Vec<FieldError>) {
    let mut error = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    access_modes(spec.access_modes.as_deref(), "spec.accessModes", &mut error);
    let requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    match requests.and_then(|r| r.get("storage")) {
        None => error("spec.resources[storage]", "Required value".into()),
        Some(quantity) => match storage_bytes(requests) {
            Some(0) => error(
                "spec.resources.requests[storage]",
                "Invalid value: must be greater than zero".into(),
            ),
            Some(_) => {}
            None => error(
                "spec.resources.requests[storage]",
                format!("Invalid value: {:?}: not a quantity", quantity.0),
            ),
        },
    }
    for key in requests.into_iter().flat_map(|r| r.keys()).filter(|k| *k != "storage") {
        error(
            &format!("spec.resources.requests[{key}]"),
            format!("Unsupported value: {key:?}: supported values: \"storage\""),
        );
    }
    if spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|l| !l.is_empty())
    {
        error("spec.resources.limits", NOT_IMPLEMENTED.into());
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
    for (field, is_set) in [
        ("spec.dataSource", spec.data_source.is_some()),
        ("spec.dataSourceRef", spec.data_source_ref.is_some()),
        (
            "spec.volumeAttributesClassName",
            spec.volume_attributes_class_name.is_some(),
        ),
    ] {
        if is_set {
            error(field, NOT_IMPLEMENTED.into());
        }
    }
    let expressions = spec.selector.iter().flat_map(|s| s.match_expressions.iter().flatten());
    for (i, term) in expressions.enumerate() {
        let at = format!("spec.selector.matchExpressions[{i}]");
        let values = term.values.as_deref().unwrap_or_default();
        match term.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => error(
                &format!("{at}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'".into(),
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => error(
                &format!("{at}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => error(
                &format!("{at}.operator"),
                format!("Invalid value: {other:?}: not a valid selector operator"),
            ),
        }
    }
}

/// `ValidatePersistentVolumeClaimUpdate`: the spec is fixed once created, except
/// `volumeName` (set once, by the binder), a class given to a claim that had none,
/// and, for a bound claim, a larger storage request (whether its class allows
/// that is the API server's admission, which reads the class).
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (
        old.downcast_ref::<PersistentVolumeClaim>(),
        new.downcast_ref::<PersistentVolumeClaim>(),
    ) else {
        return;
    };
    let mut comparable = new.spec.clone();
    if old.spec.volume_name.as_deref().is_none_or(str::is_empty) {
        comparable.volume_name = old.spec.volume_name.clone();
    }
    if old.spec.storage_class_name.is_none() {
        comparable.storage_class_name = None;
    }
    let is_bound = new.status.phase.as_deref() == Some(BOUND);
    if is_bound && let Some(resources) = &mut comparable.resources {
        let old_storage = old.spec.resources.as_ref().and_then(|r| r.requests.as_ref());
        let requests = resources.requests.get_or_insert_default();
        match old_storage.and_then(|r| r.get("storage")) {
            Some(storage) => requests.insert("storage".into(), storage.clone()),
            None => requests.remove("storage"),
        };
    }
    if comparable != old.spec {
        errors.push(FieldError {
            field: "spec".into(),
            message: "Forbidden: spec is immutable after creation except resources.requests and \
                      volumeAttributesClassName for bound claims"
                .into(),
        });
    }
    if let (Some(old_bytes), Some(new_bytes)) = (requested_bytes(old), requested_bytes(new))
        && new_bytes < old_bytes
    {
        errors.push(FieldError {
            field: "spec.resources.requests.storage".into(),
            message: "Forbidden: field can not be less than previous value".into(),
        });
    }
}

/// Whether an update asks for more storage than the claim had.
pub fn is_expansion(old: &PersistentVolumeClaim, new: &PersistentVolumeClaim) -> bool {
    matches!((requested_bytes(old), requested_bytes(new)), (Some(o), Some(n)) if n > o)
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(claim) = object.downcast_ref::<PersistentVolumeClaim>() else {
        return cells::from_paths(&PERSISTENT_VOLUME_CLAIM, object, now);
    };
    let is_bound = claim.status.phase.as_deref() == Some(BOUND);
    let capacity = claim
        .status
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .filter(|_| is_bound)
        .map_or(String::new(), |q| q.0.clone());
    let modes = if is_bound {
        access_modes_text(claim.status.access_modes.as_ref())
    } else {
        String::new()
    };
    let unset = match claim.spec.volume_attributes_class_name.as_deref() {
        None | Some("") => Value::from("<unset>"),
        Some(v) => v.into(),
    };
    vec![
        cells::name(object),
        super::persistent_volume::terminating_or(object, cells::text(&claim.status.phase)),
        cells::text(&claim.spec.volume_name).into(),
        capacity.into(),
        modes.into(),
        cells::text(&claim.spec.storage_class_name).into(),
        unset,
        cells::age(object, now),
        or_none(cells::text(&claim.spec.volume_mode)),
    ]
}

#[cfg(test)]
#[path = "persistent_volume_claim_tests.rs"]
mod tests;
