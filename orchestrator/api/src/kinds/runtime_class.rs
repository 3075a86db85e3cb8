//! RuntimeClasses: the names pods give (`runtimeClassName`) to the runtimes agents
//! offer. Kubernetes' `node.k8s.io/v1` `RuntimeClass`, flat: its `handler` (the
//! runtime an agent runs the pod with, as the node's `status.runtimeHandlers` lists
//! them) sits at the top level, beside the metadata.
//!
//! The API server creates [`BUILT_IN`] at start if they are absent; users may add
//! others naming the same handlers (`fast` with handler `runc`).

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::meta::ObjectMeta;
use crate::validation::FieldError;

pub use k8s_openapi::api::node::v1::RuntimeClass;

/// The classes every cluster has, (name, handler): one per runtime an agent can offer.
pub const BUILT_IN: &[(&str, &str)] = &[("runc", "runc"), ("process", "process")];

pub static RUNTIME_CLASS: KindDescriptor = KindDescriptor {
    group: "node.k8s.io",
    version: "v1",
    kind: "RuntimeClass",
    plural: "runtimeclasses",
    singular: "runtimeclass",
    short_names: &[],
    namespaced: false,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Handler",
            "string",
            ".handler",
            "The runtime agents run the class's pods with.",
        ),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<RuntimeClass>,
    defaults: |_| {},
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<RuntimeClass>(),
};

flat_kind!(RuntimeClass, RUNTIME_CLASS);

/// A RuntimeClass named `name` for `handler`.
pub fn runtime_class(name: &str, handler: &str) -> RuntimeClass {
    RuntimeClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        handler: handler.into(),
        ..Default::default()
    }
}

/// The handler is a DNS label, as Kubernetes requires (it names a CRI handler).
/// `overhead` and `scheduling` are refused by name: the scheduler would have to
/// add the one to pods' requests and the other to their node selectors.
fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(class) = object.downcast_ref::<RuntimeClass>() else {
        return;
    };
    let overhead = class.overhead.as_ref().and_then(|o| o.pod_fixed.as_ref());
    let scheduling = class.scheduling.as_ref();
    let is_set = [
        ("overhead", overhead.is_some_and(|fixed| !fixed.is_empty())),
        (
            "scheduling",
            scheduling.is_some_and(|s| {
                s.node_selector.as_ref().is_some_and(|n| !n.is_empty())
                    || s.tolerations.as_ref().is_some_and(|t| !t.is_empty())
            }),
        ),
    ];
    for (field, _) in is_set.iter().filter(|(_, set)| *set) {
        errors.push(FieldError {
            field: (*field).into(),
            message: crate::validation::NOT_IMPLEMENTED.into(),
        });
    }
    let handler = &class.handler;
    let is_label = !handler.is_empty()
        && handler.len() <= 63
        && handler
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !handler.starts_with('-')
        && !handler.ends_with('-');
    if handler.is_empty() {
        errors.push(FieldError {
            field: "handler".into(),
            message: "required".into(),
        });
    } else if !is_label {
        errors.push(FieldError {
            field: "handler".into(),
            message: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
                      and must start and end with an alphanumeric character"
                .into(),
        });
    }
}

/// The handler is fixed for the class's life, as Kubernetes has it.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    if let (Some(old), Some(new)) = (old.downcast_ref::<RuntimeClass>(), new.downcast_ref::<RuntimeClass>())
        && old.handler != new.handler
    {
        errors.push(FieldError {
            field: "handler".into(),
            message: "field is immutable".into(),
        });
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(class) = object.downcast_ref::<RuntimeClass>() else {
        return cells::from_paths(&RUNTIME_CLASS, object, now);
    };
    vec![
        cells::name(object),
        class.handler.as_str().into(),
        cells::age(object, now),
    ]
}

/// The handler of a stored RuntimeClass (its JSON as the store keeps it), for the
/// components that read the class by its key ([`KindDescriptor::key`]) rather than
/// through the API: the scheduler and the agents.
pub fn handler_of_stored(value: &[u8]) -> Option<String> {
    let class: serde_json::Value = serde_json::from_slice(value).ok()?;
    class.get("handler")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::parse_value;

    fn class(handler: Value) -> Result<Object, Vec<String>> {
        let value = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "fast"}, "handler": handler});
        parse_value(value)
            .map(|p| p.object)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    use serde_json::Value;

    #[test]
    fn the_handler_is_a_dns_label_at_the_top_level_and_fixed() {
        let fast = class(json!("runc")).unwrap();
        assert_eq!(fast.key(), "/registry/runtimeclasses/fast");
        assert_eq!(fast.to_value()["handler"], "runc");
        assert_eq!(handler_of_stored(&fast.stored_form()).as_deref(), Some("runc"));
        assert_eq!(class(json!("")).unwrap_err(), ["handler: required"]);
        assert!(class(json!("Not_A_Label")).unwrap_err()[0].starts_with("handler: a lowercase RFC 1123 label"));
        let mut errors = Vec::new();
        (RUNTIME_CLASS.validate_update)(&fast, &class(json!("process")).unwrap(), &mut errors);
        assert_eq!(errors[0].to_string(), "handler: field is immutable");
        let mut scheduled = fast.to_value();
        scheduled["apiVersion"] = "node.k8s.io/v1".into();
        scheduled["kind"] = "RuntimeClass".into();
        scheduled["scheduling"] = json!({"nodeSelector": {"gpu": "yes"}});
        scheduled["overhead"] = json!({"podFixed": {"memory": "10Mi"}});
        let refused: Vec<String> = parse_value(scheduled)
            .unwrap_err()
            .iter()
            .map(|e| e.field.clone())
            .collect();
        assert_eq!(refused, ["overhead", "scheduling"]);
        let row = (RUNTIME_CLASS.cells)(&fast, SystemTime::now());
        assert_eq!(row[..2], [json!("fast"), json!("runc")]);
    }
}
