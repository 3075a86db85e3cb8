//! Nodes: the machines pods run on, registered by their agents.

use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{Node, NodeSpec, NodeStatus, Spec};
use crate::validation::{self, FieldError};

pub static NODE: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    short_names: &["no"],
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
            "",
            "Ready, NotReady or Unknown (from the Ready condition), and SchedulingDisabled when cordoned.",
        ),
        PrinterColumn::new(
            "Roles",
            "string",
            "",
            "The roles of the node, from its node-role.kubernetes.io/<role> labels.",
        ),
        PrinterColumn::AGE,
        PrinterColumn::new(
            "Version",
            "string",
            "",
            "The version of berth the node's agent runs, from its berth.io/version label.",
        ),
        PrinterColumn::new("Internal-IP", "string", "", "The node's InternalIP address.").wide(),
    ],
    // A node reports its own status when it registers.
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode::<NodeSpec>,
    defaults: |_| {},
    validate,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::Node>(),
};

impl Spec for NodeSpec {
    type Status = NodeStatus;
    const DESCRIPTOR: &'static KindDescriptor = &NODE;
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(node) = object.downcast_ref::<Node>() {
        validation::taints(node.spec.taints.as_ref(), errors);
    }
}
