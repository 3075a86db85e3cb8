//! Nodes: the machines pods run on, registered by their agents.

use std::time::SystemTime;

use super::cells::{self, Cells, or_none};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::conditions::{Condition, condition};
use crate::meta::MetaExt;
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
    names_are_dns_labels: false,
    field_selectors: &["spec.unschedulable"],
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
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
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

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(node) = object.downcast_ref::<Node>() else {
        return cells::from_paths(&NODE, object, now);
    };
    let version = node
        .metadata
        .labels()
        .get("berth.io/version")
        .map_or("", String::as_str);
    vec![
        cells::name(object),
        node_status(node).into(),
        node_roles(node).into(),
        cells::age(object, now),
        or_none(version),
        or_none(node_internal_ip(node)),
    ]
}

/// `Ready`, `NotReady` or `Unknown` (no Ready condition yet), plus
/// `,SchedulingDisabled` for a cordoned node.
pub fn node_status(node: &Node) -> String {
    let conditions = node.status.conditions.as_deref().unwrap_or_default();
    let mut status = match condition(conditions, "Ready") {
        Some(c) if c.status() == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.spec.unschedulable == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// From `node-role.kubernetes.io/<role>` labels, as kubectl finds them; `<none>`.
pub fn node_roles(node: &Node) -> String {
    let roles: Vec<&str> = node
        .metadata
        .labels()
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|role| !role.is_empty())
        .collect();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

/// The node's InternalIP address ("" without one).
pub fn node_internal_ip(node: &Node) -> &str {
    node.status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map_or("", |a| a.address.as_str())
}
