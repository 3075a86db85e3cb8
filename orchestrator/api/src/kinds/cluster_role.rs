//! ClusterRoles (`rbac.authorization.k8s.io/v1`): permissions cluster-wide (through
//! a ClusterRoleBinding) or in one namespace (through a RoleBinding there), on
//! resources and on non-resource URLs (`/healthz`). One with an `aggregationRule`
//! has the rules of the ClusterRoles its selectors match, which the leader's
//! aggregation controller writes into its `rules` (`rbac::aggregation`).

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::role::{CREATED_AT, created_at};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::rbac::{self, ClusterRole};
use crate::validation::FieldError;

pub static CLUSTER_ROLE: KindDescriptor = KindDescriptor {
    group: rbac::GROUP,
    version: "v1",
    kind: "ClusterRole",
    plural: "clusterroles",
    singular: "clusterrole",
    short_names: &[],
    namespaced: false,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[PrinterColumn::NAME, CREATED_AT],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<ClusterRole>,
    defaults: |_| {},
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<ClusterRole>(),
};

flat_kind!(ClusterRole, CLUSTER_ROLE);

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(role) = object.downcast_ref::<ClusterRole>() else {
        return;
    };
    rbac::validate_rules(role.rules.as_ref(), false, errors);
    if let Some(rule) = &role.aggregation_rule {
        let selectors = rule.cluster_role_selectors.as_deref().unwrap_or_default();
        if selectors.is_empty() {
            errors.push(FieldError {
                field: "aggregationRule.clusterRoleSelectors".into(),
                message: "required: at least one clusterRoleSelector required if aggregationRule is non-nil".into(),
            });
        }
        for (i, selector) in selectors.iter().enumerate() {
            for (j, term) in selector.match_expressions.iter().flatten().enumerate() {
                let field = format!("aggregationRule.clusterRoleSelectors[{i}].matchExpressions[{j}]");
                let values = term.values.as_deref().unwrap_or_default();
                match term.operator.as_str() {
                    "In" | "NotIn" if values.is_empty() => errors.push(FieldError {
                        field: format!("{field}.values"),
                        message: "required: must be specified when `operator` is 'In' or 'NotIn'".into(),
                    }),
                    "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(FieldError {
                        field: format!("{field}.values"),
                        message: "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
                    }),
                    "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                    _ => errors.push(FieldError {
                        field: format!("{field}.operator"),
                        message: "not a valid selector operator".into(),
                    }),
                }
            }
        }
    }
}

fn cells(object: &Object, _now: SystemTime) -> Cells {
    vec![cells::name(object), created_at(object)]
}
