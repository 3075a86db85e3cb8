//! Roles (`rbac.authorization.k8s.io/v1`): permissions within one namespace, as
//! policy rules (verbs on resources of API groups, perhaps of some names only).
//! Flat, as Kubernetes has them; a Role's rules cannot name non-resource URLs.
//! What a rule allows is `rbac::rule_allows_resource`; who has it, the bindings.

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::rbac::{self, Role};
use crate::validation::FieldError;

/// kubectl's column of the RBAC kinds: when the object was made, as a time.
pub const CREATED_AT: PrinterColumn = PrinterColumn::new(
    "Created At",
    "date",
    ".metadata.creationTimestamp",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

pub static ROLE: KindDescriptor = KindDescriptor {
    group: rbac::GROUP,
    version: "v1",
    kind: "Role",
    plural: "roles",
    singular: "role",
    short_names: &[],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[PrinterColumn::NAME, CREATED_AT],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<Role>,
    defaults: |_| {},
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<Role>(),
};

flat_kind!(Role, ROLE);

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(role) = object.downcast_ref::<Role>() {
        rbac::validate_rules(role.rules.as_ref(), true, errors);
    }
}

/// The `Created At` cell: the creation time, RFC 3339, as kubectl prints it.
pub fn created_at(object: &Object) -> serde_json::Value {
    object
        .metadata()
        .creation_timestamp
        .as_ref()
        .map(|t| crate::time::format_rfc3339(crate::time::to_system_time(t)))
        .unwrap_or_default()
        .into()
}

fn cells(object: &Object, _now: SystemTime) -> Cells {
    vec![cells::name(object), created_at(object)]
}
