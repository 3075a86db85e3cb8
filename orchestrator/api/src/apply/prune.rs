//! Taking fields out of an object: what an apply does with the fields its manager
//! applied before and no longer applies, when no other manager owns them.
//!
//! A struct's field counts as owned by whoever owns something under it
//! (`with_named_fields`), so that a manager that stops applying `spec.strategy` takes
//! the whole strategy away unless another manager owns a part of it, while a map
//! (labels) is never owned just because one of its members is.

use serde_json::Value;

use super::field_set::FieldSet;
use super::path::PathElement;
use super::schema::{Form, ListType, Node, item_element};

/// `set` with every struct field that has owned fields under it added as a field.
pub(crate) fn with_named_fields(set: &FieldSet, node: Node<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    for member in set.members() {
        out.insert_member(member.clone());
    }
    for (element, child) in set.children() {
        let child_node = match element {
            PathElement::Field(name) => {
                if node.declares(name) {
                    out.insert_member(element.clone());
                }
                node.field(name)
            }
            _ => node.items(),
        };
        out.insert_child(element.clone(), with_named_fields(child, child_node));
    }
    out
}

/// Removes the fields of `set` from `value` (each with everything under it). A list or
/// object that loses its last member goes too.
pub(crate) fn remove_fields(value: &mut Value, set: &FieldSet, node: Node<'_>) {
    match node.form(value) {
        Form::Struct | Form::Map => {
            let Value::Object(fields) = value else { return };
            for member in set.members() {
                if let PathElement::Field(name) = member {
                    fields.remove(name);
                }
            }
            for (element, child) in set.children() {
                let PathElement::Field(name) = element else { continue };
                let Some(field) = fields.get_mut(name) else { continue };
                let was_empty = is_empty(field);
                remove_fields(field, child, node.field(name));
                if !was_empty && is_empty(field) {
                    fields.remove(name);
                }
            }
        }
        Form::List(list @ (ListType::Map(_) | ListType::Set)) => {
            let Value::Array(items) = value else { return };
            items.retain(|item| item_element(list, item).map_or(true, |element| !set.has_member(&element)));
            for item in items.iter_mut() {
                if let Some(child) = item_element(list, item).ok().and_then(|element| set.child(&element)) {
                    remove_fields(item, child, node.items());
                }
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(fields) => fields.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fields_v1::{from_fields_v1, to_fields_v1};
    use crate::patch::PatchSchema;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    #[test]
    fn struct_fields_with_owned_fields_are_owned_maps_are_not() {
        let schema = PatchSchema::for_type::<Deployment>();
        let set = from_fields_v1(&json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:strategy": {"f:type": {}},
                       "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {"f:resources": {"f:limits": {"f:cpu": {}}}}}}}}
        }))
        .unwrap();
        assert_eq!(
            to_fields_v1(&with_named_fields(&set, Node::root(&schema))),
            json!({
                "f:metadata": {".": {}, "f:labels": {".": {}, "f:app": {}}},
                "f:spec": {".": {}, "f:strategy": {".": {}, "f:type": {}},
                           "f:template": {".": {}, "f:spec": {".": {}, "f:containers": {".": {},
                               "k:{\"name\":\"c\"}": {"f:resources": {".": {}, "f:limits": {".": {}, "f:cpu": {}}}}}}}}
            })
        );
    }

    #[test]
    fn removes_fields_items_and_what_they_empty() {
        let schema = PatchSchema::for_type::<Deployment>();
        let mut object = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a", "b"]},
            "spec": {"replicas": 2, "strategy": {"type": "Recreate"},
                     "template": {"spec": {"containers": [
                         {"name": "a", "image": "x", "ports": [{"containerPort": 80}, {"containerPort": 81}]},
                         {"name": "b", "image": "y"}
                     ]}}}
        });
        let set = from_fields_v1(&json!({
            "f:metadata": {"f:labels": {"f:tier": {}}, "f:finalizers": {"v:\"a\"": {}}},
            "f:spec": {"f:strategy": {"f:type": {}},
                       "f:template": {"f:spec": {"f:containers": {
                           "k:{\"name\":\"b\"}": {},
                           "k:{\"name\":\"a\"}": {"f:ports": {"k:{\"containerPort\":81,\"protocol\":\"TCP\"}": {}}}
                       }}}}
        }))
        .unwrap();
        remove_fields(&mut object, &set, Node::root(&schema));
        assert_eq!(
            object,
            json!({
                "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["b"]},
                "spec": {"replicas": 2,
                         "template": {"spec": {"containers": [
                             {"name": "a", "image": "x", "ports": [{"containerPort": 80}]}
                         ]}}}
            })
        );
    }
}
