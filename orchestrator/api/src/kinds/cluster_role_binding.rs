//! ClusterRoleBindings (`rbac.authorization.k8s.io/v1`): grant a ClusterRole's
//! rules in every namespace (and its non-resource URLs) to users, groups and
//! ServiceAccounts (which name their namespace here). `roleRef` is immutable.

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::role_binding::{BINDING_COLUMNS, binding_cells, role_ref_changed};
use super::{KindDescriptor, Object, StatusOnCreate, Subresources, flat_kind};
use crate::rbac::{self, ClusterRoleBinding};
use crate::validation::FieldError;

pub static CLUSTER_ROLE_BINDING: KindDescriptor = KindDescriptor {
    group: rbac::GROUP,
    version: "v1",
    kind: "ClusterRoleBinding",
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    short_names: &[],
    namespaced: false,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: BINDING_COLUMNS,
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<ClusterRoleBinding>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<ClusterRoleBinding>(),
};

flat_kind!(ClusterRoleBinding, CLUSTER_ROLE_BINDING);

fn defaults(object: &mut Object) {
    if let Some(binding) = object.downcast_mut::<ClusterRoleBinding>() {
        rbac::default_binding(&mut binding.role_ref, binding.subjects.as_mut());
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(binding) = object.downcast_ref::<ClusterRoleBinding>() {
        rbac::validate_binding(
            &binding.role_ref,
            binding.subjects.as_ref(),
            &["ClusterRole"],
            false,
            errors,
        );
    }
}

fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    if let (Some(old), Some(new)) = (
        old.downcast_ref::<ClusterRoleBinding>(),
        new.downcast_ref::<ClusterRoleBinding>(),
    ) {
        role_ref_changed(&old.role_ref, &new.role_ref, errors);
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    match object.downcast_ref::<ClusterRoleBinding>() {
        Some(b) => binding_cells(object, &b.role_ref, b.subjects.as_ref(), now),
        None => cells::from_paths(&CLUSTER_ROLE_BINDING, object, now),
    }
}
