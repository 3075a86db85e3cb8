//! RoleBindings (`rbac.authorization.k8s.io/v1`): grant the rules of a Role of
//! their namespace, or of a ClusterRole within their namespace, to users, groups
//! and ServiceAccounts. The role a binding names never changes (`roleRef` is
//! immutable, as in Kubernetes: delete and create to change it).

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::rbac::{self, RoleBinding, RoleRef, Subject};
use crate::validation::FieldError;

/// The columns kubectl shows for both kinds of binding.
pub const BINDING_COLUMNS: &[PrinterColumn] = &[
    PrinterColumn::NAME,
    PrinterColumn::new("Role", "string", "", "Role is the role of this binding."),
    PrinterColumn::AGE,
    PrinterColumn::new("Users", "string", "", "Users in the roleBinding.").wide(),
    PrinterColumn::new("Groups", "string", "", "Groups in the roleBinding.").wide(),
    PrinterColumn::new("ServiceAccounts", "string", "", "ServiceAccounts in the roleBinding.").wide(),
];

pub static ROLE_BINDING: KindDescriptor = KindDescriptor {
    group: rbac::GROUP,
    version: "v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    singular: "rolebinding",
    short_names: &[],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: BINDING_COLUMNS,
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<RoleBinding>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<RoleBinding>(),
};

flat_kind!(RoleBinding, ROLE_BINDING);

fn defaults(object: &mut Object) {
    if let Some(binding) = object.downcast_mut::<RoleBinding>() {
        rbac::default_binding(&mut binding.role_ref, binding.subjects.as_mut());
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(binding) = object.downcast_ref::<RoleBinding>() {
        rbac::validate_binding(
            &binding.role_ref,
            binding.subjects.as_ref(),
            &["Role", "ClusterRole"],
            true,
            errors,
        );
    }
}

/// `roleRef: Invalid value: ...: cannot change roleRef`, as Kubernetes words it.
pub fn role_ref_changed(old: &RoleRef, new: &RoleRef, errors: &mut Vec<FieldError>) {
    if old != new {
        errors.push(FieldError {
            field: "roleRef".into(),
            message: format!(
                "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}: cannot change roleRef",
                new.api_group, new.kind, new.name
            ),
        });
    }
}

fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    if let (Some(old), Some(new)) = (old.downcast_ref::<RoleBinding>(), new.downcast_ref::<RoleBinding>()) {
        role_ref_changed(&old.role_ref, &new.role_ref, errors);
    }
}

/// The cells of a binding's row.
pub fn binding_cells(object: &Object, role_ref: &RoleRef, subjects: Option<&Vec<Subject>>, now: SystemTime) -> Cells {
    let [users, groups, service_accounts] = rbac::subject_cells(subjects);
    vec![
        cells::name(object),
        format!("{}/{}", role_ref.kind, role_ref.name).into(),
        cells::age(object, now),
        users.into(),
        groups.into(),
        service_accounts.into(),
    ]
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    match object.downcast_ref::<RoleBinding>() {
        Some(b) => binding_cells(object, &b.role_ref, b.subjects.as_ref(), now),
        None => cells::from_paths(&ROLE_BINDING, object, now),
    }
}
