//! Namespaces: the cluster-scoped kind other objects live in.

use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{NamespaceSpec, NamespaceStatus, Spec};

pub static NAMESPACE: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    namespaced: false,
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
    validate: |_, _| {},
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::Namespace>(),
};

impl Spec for NamespaceSpec {
    type Status = NamespaceStatus;
    const DESCRIPTOR: &'static KindDescriptor = &NAMESPACE;
}
