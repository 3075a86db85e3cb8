//! Leases (`coordination.k8s.io/v1`): a named hold with a holder, a duration and the
//! time it was last renewed. Flat (a spec, no status), stored under
//! `/registry/leases/<ns>/<name>`. Each agent reaching the cluster through the API
//! server keeps one in [`NODE_LEASE_NAMESPACE`], named after its node, as the kubelet
//! does: the node lifecycle controller counts one not renewed within its grace
//! period as a missed heartbeat.

use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, cells, flat_kind};
use crate::validation::FieldError;

pub use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

/// Where the nodes' heartbeat Leases live, one per node, named after it.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub static LEASE: KindDescriptor = KindDescriptor {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    singular: "lease",
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
        PrinterColumn::new("Holder", "string", ".spec.holderIdentity", "The holder of the lease."),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<Lease>,
    defaults: |_| {},
    validate,
    validate_update: |_, _, _| {},
    cells: |object, now| cells::from_paths(&LEASE, object, now),
    conversion: None,
    schema: |generator| generator.subschema_for::<Lease>(),
};

flat_kind!(Lease, LEASE);

/// Kubernetes' `ValidateLeaseSpec`: positive durations, transitions never negative,
/// a preferred holder only with a strategy.
fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(spec) = object.downcast_ref::<Lease>().and_then(|l| l.spec.as_ref()) else {
        return;
    };
    if let Some(seconds) = spec.lease_duration_seconds
        && seconds <= 0
    {
        errors.push(FieldError {
            field: "spec.leaseDurationSeconds".into(),
            message: format!("Invalid value: {seconds}: must be greater than 0"),
        });
    }
    if let Some(transitions) = spec.lease_transitions
        && transitions < 0
    {
        errors.push(FieldError {
            field: "spec.leaseTransitions".into(),
            message: format!("Invalid value: {transitions}: must be greater than or equal to 0"),
        });
    }
    if spec.preferred_holder.as_deref().is_some_and(|h| !h.is_empty())
        && spec.strategy.as_deref().unwrap_or_default().is_empty()
    {
        errors.push(FieldError {
            field: "spec.strategy".into(),
            message: "Required value: must be specified when preferredHolder is set".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(spec: serde_json::Value) -> Vec<String> {
        let object = (LEASE.decode)(&json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": NODE_LEASE_NAMESPACE},
            "spec": spec,
        }))
        .unwrap();
        let mut errors = Vec::new();
        (LEASE.validate)(&object, &mut errors);
        errors
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn a_node_lease_is_valid_and_bad_durations_are_not() {
        let renewed = "2026-01-02T03:04:05.123456Z";
        assert!(problems(json!({"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": renewed})).is_empty());
        assert_eq!(
            problems(json!({"leaseDurationSeconds": 0, "leaseTransitions": -1})),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            problems(json!({"preferredHolder": "n2"})),
            ["spec.strategy: Required value: must be specified when preferredHolder is set"]
        );
    }

    #[test]
    fn the_holder_is_a_column() {
        let object = (LEASE.decode)(&json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": NODE_LEASE_NAMESPACE},
            "spec": {"holderIdentity": "n1"},
        }))
        .unwrap();
        let row = (LEASE.cells)(&object, std::time::SystemTime::now());
        assert_eq!(row[1], json!("n1"));
        assert_eq!(
            LEASE.key(NODE_LEASE_NAMESPACE, "n1"),
            "/registry/leases/kube-node-lease/n1"
        );
    }
}
