//! The fields an applied configuration sets: what its manager owns after the apply.
//!
//! Every leaf value is a field of the set, and so is every item of a keyed list or a
//! set, every member of a map (a label), every empty object and every null. A struct's
//! field that has fields under it (`spec`) is not: it is only on the way. Atomic
//! values (a label selector, `args`) are one field, whatever is inside.
//!
//! A configuration that names a field its kind does not have, an item of a keyed list
//! without its key, or one item twice cannot be applied: the error names the place,
//! in Kubernetes' words.

use serde_json::Value;

use super::field_set::FieldSet;
use super::path::{Path, PathElement};
use super::schema::{Form, ListType, Node, item_element};
use crate::patch::PatchSchema;

/// The fields `config` sets, or every reason it cannot be applied.
pub fn applied_fields(config: &Value, schema: &PatchSchema) -> Result<FieldSet, Vec<String>> {
    let mut walk = Walk {
        set: FieldSet::new(),
        errors: Vec::new(),
        path: Vec::new(),
    };
    walk.value(config, Node::root(schema));
    if walk.errors.is_empty() {
        Ok(walk.set)
    } else {
        Err(walk.errors)
    }
}

struct Walk {
    set: FieldSet,
    errors: Vec<String>,
    path: Vec<PathElement>,
}

impl Walk {
    fn error(&mut self, message: String) {
        self.errors.push(format!("{}: {message}", Path(self.path.clone())));
    }

    fn value(&mut self, value: &Value, node: Node<'_>) {
        match node.form(value) {
            Form::Leaf | Form::List(ListType::Atomic) => self.set.insert(&self.path),
            Form::Struct | Form::Map => self.object(value, node),
            Form::List(list) => self.list(value, list, node),
        }
    }

    fn object(&mut self, value: &Value, node: Node<'_>) {
        let Some(fields) = value.as_object() else { return };
        if fields.is_empty() {
            self.set.insert(&self.path);
            return;
        }
        for (name, member) in fields {
            if !node.accepts(name) {
                self.path.push(PathElement::field(name));
                self.error("field not declared in schema".into());
                self.path.pop();
                continue;
            }
            self.path.push(PathElement::field(name));
            self.value(member, node.field(name));
            let is_empty_object = member.as_object().is_some_and(|m| m.is_empty());
            if member.is_null() || is_empty_object || !node.declares(name) {
                self.set.insert(&self.path);
            }
            self.path.pop();
        }
    }

    fn list(&mut self, value: &Value, list: ListType, node: Node<'_>) {
        let Some(items) = value.as_array() else { return };
        let mut seen = FieldSet::new();
        for (index, item) in items.iter().enumerate() {
            let element = match item_element(list, item) {
                Ok(element) => element,
                Err(message) => {
                    self.error(format!("element {index}: {message}"));
                    continue;
                }
            };
            if seen.has_member(&element) {
                self.error(format!("duplicate entries for key {element}"));
                continue;
            }
            seen.insert_member(element.clone());
            self.path.push(element);
            self.set.insert(&self.path);
            if matches!(list, ListType::Map(_)) {
                self.value(item, node.items());
            }
            self.path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fields_v1::to_fields_v1;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    fn schema() -> PatchSchema {
        PatchSchema::for_type::<Deployment>()
    }

    /// What kube-apiserver records for this configuration, `apiVersion`, `kind` and
    /// the metadata it ignores aside (those go when the set is stored).
    #[test]
    fn a_deployment_sets_what_kubernetes_records() {
        let config = json!({
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web", "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "A", "value": "1"}],
                        "args": ["-v"],
                        "resources": {}
                    }]}
                }
            }
        });
        let set = applied_fields(&config, &schema()).unwrap();
        let container = json!({
            ".": {}, "f:name": {}, "f:image": {}, "f:args": {}, "f:resources": {},
            "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
        });
        assert_eq!(
            to_fields_v1(&set),
            json!({"f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": container}}
                }
            }})
        );
    }

    #[test]
    fn map_members_nulls_and_set_items_are_fields() {
        let config = json!({"metadata": {
            "annotations": {"note": "x"},
            "labels": null,
            "finalizers": ["example.com/a", "example.com/b"]
        }});
        let set = applied_fields(&config, &schema()).unwrap();
        assert_eq!(
            to_fields_v1(&set),
            json!({"f:metadata": {
                "f:annotations": {"f:note": {}},
                "f:labels": {},
                "f:finalizers": {"v:\"example.com/a\"": {}, "v:\"example.com/b\"": {}}
            }})
        );
        // An empty keyed list sets nothing; an empty atomic one is a value.
        let empty = json!({"spec": {"template": {"spec": {"containers": [], "tolerations": []}}}});
        assert_eq!(
            to_fields_v1(&applied_fields(&empty, &schema()).unwrap()),
            json!({"f:spec": {"f:template": {"f:spec": {"f:tolerations": {}}}}})
        );
    }

    #[test]
    fn configurations_that_cannot_be_applied_say_where() {
        let config = json!({"spec": {
            "replicaz": 2,
            "template": {"spec": {"containers": [{"image": "x"}, {"name": "a"}, {"name": "a"}]}}
        }});
        let errors = applied_fields(&config, &schema()).unwrap_err();
        assert_eq!(
            errors,
            [
                ".spec.replicaz: field not declared in schema",
                ".spec.template.spec.containers: element 0: associative list with keys has an element \
                 that omits key field \"name\" (and doesn't have default value)",
                r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#,
            ]
        );
        // Maps and fields the schema leaves open take any member.
        let open = json!({"metadata": {"labels": {"any": "thing"}}});
        assert!(applied_fields(&open, &schema()).is_ok());
    }
}
