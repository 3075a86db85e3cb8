//! What a write changed: the fields of the new object that the old one lacked
//! (`added`), the leaves whose value differs (`modified`) and the fields that went
//! (`removed`). A container that appears is added with everything in it; a list item
//! is the same item when its key is, wherever it moved; an atomic value is one leaf.
//!
//! A list that cannot be told apart by its keys (an item without its key, a key
//! twice) is compared as one value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::field_set::FieldSet;
use super::path::PathElement;
use super::schema::{Form, ListType, Node, item_element};
use crate::patch::PatchSchema;
use crate::patch::value::json_equal;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// The fields whose value the new object sets: added or modified.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// The difference from `old` to `new`, two objects of the kind `schema` describes.
pub fn compare(old: &Value, new: &Value, schema: &PatchSchema) -> Comparison {
    compare_walk(old, new, schema, false)
}

/// [`compare`] of two objects as if neither had `metadata.managedFields`, without
/// copying them to take it out.
pub fn compare_without_managed_fields(old: &Value, new: &Value, schema: &PatchSchema) -> Comparison {
    compare_walk(old, new, schema, true)
}

fn compare_walk(old: &Value, new: &Value, schema: &PatchSchema, skip_managed_fields: bool) -> Comparison {
    let mut walk = Walk {
        comparison: Comparison::default(),
        path: Vec::new(),
        skip_managed_fields,
    };
    walk.value(Some(old), Some(new), Node::root(schema));
    walk.comparison
}

struct Walk {
    comparison: Comparison,
    path: Vec<PathElement>,
    /// `metadata.managedFields` is not walked.
    skip_managed_fields: bool,
}

fn is_empty_container(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(fields)) => fields.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}

impl Walk {
    fn value(&mut self, old: Option<&Value>, new: Option<&Value>, node: Node<'_>) {
        let form = match (old, new) {
            (None, None) => return,
            (Some(old), Some(new)) => Some(node.form(old)).filter(|form| *form == node.form(new)),
            (Some(only), None) | (None, Some(only)) => Some(node.form(only)),
        };
        if is_empty_container(old) && is_empty_container(new) {
            return self.leaf(old, new);
        }
        match form {
            Some(Form::Struct | Form::Map) => self.object(old, new, node),
            Some(Form::List(list @ (ListType::Map(_) | ListType::Set))) => self.list(old, new, list, node),
            _ => self.leaf(old, new),
        }
    }

    fn leaf(&mut self, old: Option<&Value>, new: Option<&Value>) {
        match (old, new) {
            (None, Some(_)) => self.comparison.added.insert(&self.path),
            (Some(_), None) => self.comparison.removed.insert(&self.path),
            (Some(old), Some(new)) if !json_equal(old, new) => self.comparison.modified.insert(&self.path),
            _ => {}
        }
    }

    /// A container that appears or goes is itself added or removed, besides what is
    /// in it.
    fn container(&mut self, old: Option<&Value>, new: Option<&Value>) {
        match (old, new) {
            (None, Some(_)) => self.comparison.added.insert(&self.path),
            (Some(_), None) => self.comparison.removed.insert(&self.path),
            _ => {}
        }
    }

    fn object(&mut self, old: Option<&Value>, new: Option<&Value>, node: Node<'_>) {
        let empty = Map::new();
        let old_fields = old.and_then(Value::as_object).unwrap_or(&empty);
        let new_fields = new.and_then(Value::as_object).unwrap_or(&empty);
        let names: std::collections::BTreeSet<&String> = old_fields.keys().chain(new_fields.keys()).collect();
        let in_metadata = self.skip_managed_fields
            && self.path.len() == 1
            && matches!(&self.path[0], PathElement::Field(name) if name == "metadata");
        for name in names {
            if in_metadata && name == "managedFields" {
                continue;
            }
            self.path.push(PathElement::field(name));
            self.value(old_fields.get(name), new_fields.get(name), node.field(name));
            self.path.pop();
        }
        self.container(old, new);
    }

    fn list(&mut self, old: Option<&Value>, new: Option<&Value>, list: ListType, node: Node<'_>) {
        let (Some(old_items), Some(new_items)) = (items_by_element(old, list), items_by_element(new, list)) else {
            return self.leaf(old, new);
        };
        let elements: std::collections::BTreeSet<&PathElement> = old_items.keys().chain(new_items.keys()).collect();
        let items = node.items();
        for element in elements {
            self.path.push(element.clone());
            let (old_item, new_item) = (old_items.get(element).copied(), new_items.get(element).copied());
            match list {
                ListType::Map(_) => self.value(old_item, new_item, items),
                _ => self.leaf(old_item, new_item),
            }
            // An item is a field of its own, even when it is a struct.
            self.container(old_item, new_item);
            self.path.pop();
        }
        self.container(old, new);
    }
}

/// The items of a list by the element that names each; `None` if one cannot be
/// named or two share a name. An absent list has no items.
fn items_by_element(list_value: Option<&Value>, list: ListType) -> Option<BTreeMap<PathElement, &Value>> {
    let mut items = BTreeMap::new();
    let Some(values) = list_value.and_then(Value::as_array) else {
        return Some(items);
    };
    for item in values {
        let element = item_element(list, item).ok()?;
        if items.insert(element, item).is_some() {
            return None;
        }
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fields_v1::to_fields_v1;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    fn deployment(replicas: i64, containers: Value) -> Value {
        json!({"spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}})
    }

    fn diff(old: &Value, new: &Value) -> (Value, Value, Value) {
        let comparison = compare(old, new, &PatchSchema::for_type::<Deployment>());
        (
            to_fields_v1(&comparison.added),
            to_fields_v1(&comparison.modified),
            to_fields_v1(&comparison.removed),
        )
    }

    fn containers(inner: Value) -> Value {
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": inner}}}})
    }

    #[test]
    fn managed_fields_can_be_left_out_of_a_comparison() {
        let object = |replicas: i64, manager: &str| {
            json!({"metadata": {"name": "web", "managedFields": [{"manager": manager}]},
                   "spec": {"replicas": replicas}})
        };
        let (old, new) = (object(1, "a"), object(2, "b"));
        let schema = PatchSchema::for_type::<Deployment>();
        let comparison = compare_without_managed_fields(&old, &new, &schema);
        assert_eq!(
            to_fields_v1(&comparison.modified),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            (to_fields_v1(&comparison.added), to_fields_v1(&comparison.removed)),
            (json!({}), json!({}))
        );
        let whole = compare(&old, &new, &schema);
        assert_ne!(to_fields_v1(&whole.modified), to_fields_v1(&comparison.modified));
    }

    #[test]
    fn equal_objects_differ_in_nothing() {
        let web = deployment(2, json!([{"name": "a", "image": "x"}, {"name": "b"}]));
        assert_eq!(diff(&web, &web), (json!({}), json!({}), json!({})));
        // Items are matched by key, not position.
        let moved = deployment(2, json!([{"name": "b"}, {"name": "a", "image": "x"}]));
        assert_eq!(diff(&web, &moved), (json!({}), json!({}), json!({})));
        // Numbers compare by value.
        assert_eq!(
            diff(&json!({"spec": {"replicas": 2}}), &json!({"spec": {"replicas": 2.0}})).1,
            json!({})
        );
    }

    #[test]
    fn leaves_are_modified_items_are_added_and_removed_whole() {
        let old = deployment(2, json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]));
        let new = deployment(3, json!([{"name": "a", "image": "z"}, {"name": "c", "image": "y"}]));
        let (added, modified, removed) = diff(&old, &new);
        assert_eq!(
            added,
            containers(json!({"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}}}))
        );
        assert_eq!(
            modified,
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {"f:image": {}}}}}}})
        );
        assert_eq!(
            removed,
            containers(json!({"k:{\"name\":\"b\"}": {".": {}, "f:name": {}, "f:image": {}}}))
        );
    }

    #[test]
    fn maps_that_appear_are_added_with_their_members() {
        let old = json!({"metadata": {"name": "web"}});
        let new = json!({"metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {}}});
        let (added, modified, removed) = diff(&old, &new);
        assert_eq!(
            added,
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:annotations": {}}})
        );
        assert_eq!((modified, removed), (json!({}), json!({})));
        let (added, _, removed) = diff(&new, &old);
        assert_eq!(added, json!({}));
        assert_eq!(
            removed,
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:annotations": {}}})
        );
    }

    #[test]
    fn atomic_values_change_as_one() {
        let old = json!({"spec": {"selector": {"matchLabels": {"a": "1"}},
                                  "template": {"spec": {"containers": [{"name": "c", "args": ["1"]}]}}}});
        let new = json!({"spec": {"selector": {"matchLabels": {"a": "2"}},
                                  "template": {"spec": {"containers": [{"name": "c", "args": ["1", "2"]}]}}}});
        let (_, modified, _) = diff(&old, &new);
        assert_eq!(
            modified,
            json!({"f:spec": {"f:selector": {},
                              "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {"f:args": {}}}}}}})
        );
    }

    #[test]
    fn set_items_and_unkeyable_lists() {
        let old = json!({"metadata": {"finalizers": ["a", "b"]}});
        let new = json!({"metadata": {"finalizers": ["b", "c"]}});
        let (added, _, removed) = diff(&old, &new);
        assert_eq!(added, json!({"f:metadata": {"f:finalizers": {"v:\"c\"": {}}}}));
        assert_eq!(removed, json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}}}));
        // Two containers of one name: the list is one value.
        let twice = deployment(1, json!([{"name": "a"}, {"name": "a", "image": "x"}]));
        let once = deployment(1, json!([{"name": "a"}]));
        let (_, modified, _) = diff(&once, &twice);
        assert_eq!(modified, containers(json!({})));
    }
}
