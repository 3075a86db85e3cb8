//! ControllerRevisions: the templates a StatefulSet has had, one object each,
//! named `<set>-<hash>` and numbered (`revision`), owned by the set. Kubernetes'
//! `apps/v1` `ControllerRevision`, flat (`data` and `revision` beside the metadata);
//! `kubectl rollout history` and `undo` of a StatefulSet read them. The StatefulSet
//! controller writes them; their `data` never changes.

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::owners::controller_of;
use crate::validation::FieldError;

pub use k8s_openapi::api::apps::v1::ControllerRevision;
pub use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

pub static CONTROLLER_REVISION: KindDescriptor = KindDescriptor {
    group: "apps",
    version: "v1",
    kind: "ControllerRevision",
    plural: "controllerrevisions",
    singular: "controllerrevision",
    short_names: &[],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new("Controller", "string", "", "The object whose revision this is."),
        PrinterColumn::new("Revision", "integer", ".revision", "The revision's number."),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<ControllerRevision>,
    defaults: |_| {},
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<ControllerRevision>(),
};

flat_kind!(ControllerRevision, CONTROLLER_REVISION);

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(revision) = object.downcast_ref::<ControllerRevision>()
        && revision.revision < 0
    {
        errors.push(FieldError {
            field: "revision".into(),
            message: format!(
                "Invalid value: {}: must be greater than or equal to 0",
                revision.revision
            ),
        });
    }
}

/// Kubernetes' rule: a revision's data is immutable.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (
        old.downcast_ref::<ControllerRevision>(),
        new.downcast_ref::<ControllerRevision>(),
    ) else {
        return;
    };
    if old.data != new.data {
        errors.push(FieldError {
            field: "data".into(),
            message: "Invalid value: field is immutable".into(),
        });
    }
}

/// CONTROLLER is `<kind>.<group>/<name>` of the controlling owner, as kubectl shows it.
fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(revision) = object.downcast_ref::<ControllerRevision>() else {
        return cells::from_paths(&CONTROLLER_REVISION, object, now);
    };
    let controller = controller_of(&revision.metadata).map_or("<none>".to_string(), |owner| {
        let group = owner.api_version.split_once('/').map_or("", |(group, _)| group);
        format!(
            "{}/{}",
            super::qualify(&owner.kind.to_ascii_lowercase(), group),
            owner.name
        )
    });
    vec![
        cells::name(object),
        controller.into(),
        revision.revision.into(),
        cells::age(object, now),
    ]
}
