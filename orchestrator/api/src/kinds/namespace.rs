//! Namespaces: the cluster-scoped kind other objects live in.

use std::time::SystemTime;

use super::cells::{self, Cells, text};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::Namespace;
use crate::objects::{NamespaceSpec, NamespaceStatus, Spec};

pub static NAMESPACE: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    namespaced: false,
    names_are_dns_labels: true,
    field_selectors: &["status.phase"],
    categories: &[],
    subresources: Subresources {
        status: true,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Status",
            "string",
            ".status.phase",
            "The phase of the namespace: Active, or Terminating while it is deleted.",
        ),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Phase("Active"),
    decode: Object::decode::<NamespaceSpec>,
    defaults: |_| {},
    validate: |object, errors| {
        errors.extend(crate::admission::pod_security::label_errors(
            crate::meta::MetaExt::labels(object.metadata()),
        ))
    },
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::Namespace>(),
};

impl Spec for NamespaceSpec {
    type Status = NamespaceStatus;
    const DESCRIPTOR: &'static KindDescriptor = &NAMESPACE;
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(ns) = object.downcast_ref::<Namespace>() else {
        return cells::from_paths(&NAMESPACE, object, now);
    };
    let phase = match text(&ns.status.phase) {
        "" => "Active",
        phase => phase,
    };
    vec![cells::name(object), phase.into(), cells::age(object, now)]
}
