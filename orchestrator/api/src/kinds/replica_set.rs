//! ReplicaSets: keep a number of pods like their template running.

use std::time::SystemTime;

use super::cells::{self, Cells, desired_replicas};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus, Spec};
use crate::validation::{self, FieldError};

pub static REPLICA_SET: KindDescriptor = KindDescriptor {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    plural: "replicasets",
    singular: "replicaset",
    short_names: &["rs"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &["status.replicas"],
    categories: &["all"],
    subresources: Subresources {
        status: true,
        scale: true,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new("Desired", "integer", ".spec.replicas", "The number of pods wanted."),
        PrinterColumn::new(
            "Current",
            "integer",
            ".status.replicas",
            "The number of pods that exist.",
        ),
        PrinterColumn::new("Ready", "integer", ".status.readyReplicas", "The number of ready pods."),
        PrinterColumn::AGE,
        PrinterColumn::new(
            "Containers",
            "string",
            "",
            "The names of the containers of the pod template.",
        )
        .wide(),
        PrinterColumn::new(
            "Images",
            "string",
            "",
            "The images of the containers of the pod template.",
        )
        .wide(),
        PrinterColumn::new("Selector", "string", "", "The label selector of the pods.").wide(),
    ],
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<ReplicaSetSpec>,
    defaults,
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::apps::v1::ReplicaSet>(),
};

impl Spec for ReplicaSetSpec {
    type Status = ReplicaSetStatus;
    const DESCRIPTOR: &'static KindDescriptor = &REPLICA_SET;
}

/// `spec.replicas` is 1 when left out, as in Kubernetes.
fn defaults(object: &mut Object) {
    if let Some(object) = object.downcast_mut::<ReplicaSet>() {
        object.spec.replicas.get_or_insert(1);
        if let Some(pod) = object.spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
            crate::probes::set_defaults(pod);
        }
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(object) = object.downcast_ref::<ReplicaSet>() {
        validation::replicas(object.spec.replicas, errors);
        validation::template(&object.spec.selector, object.spec.template.as_ref(), errors);
        validation::min_ready_seconds(object.spec.min_ready_seconds, errors);
        crate::depends_on::validate(&object.metadata, errors);
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(rs) = object.downcast_ref::<ReplicaSet>() else {
        return cells::from_paths(&REPLICA_SET, object, now);
    };
    let mut row = vec![
        cells::name(object),
        desired_replicas(rs.spec.replicas).into(),
        rs.status.replicas.into(),
        rs.status.ready_replicas.unwrap_or_default().into(),
        cells::age(object, now),
    ];
    row.extend(cells::template(rs.spec.template.as_ref(), &rs.spec.selector));
    row
}
