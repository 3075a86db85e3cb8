//! `fieldsV1`, the JSON form of a field set in `metadata.managedFields`: one object
//! member per element (`f:spec`, `k:{"name":"c"}`, `v:"x"`, `i:0`); a member's value
//! is `{}` when the element is a field of the set and nothing under it is, else an
//! object of what lies under it, with `".": {}` when the element itself is also in
//! the set.
//!
//! ```text
//! {"f:spec": {"f:replicas": {},
//!             "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}}}}}
//! ```

use serde_json::{Map, Value};

use super::field_set::FieldSet;
use super::path::PathElement;

/// The set as `fieldsV1`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut object = Map::new();
    for member in set.members() {
        if set.child(member).is_none() {
            object.insert(member.to_fields_v1(), Value::Object(Map::new()));
        }
    }
    for (element, child) in set.children() {
        let mut nested = match to_fields_v1(child) {
            Value::Object(nested) => nested,
            _ => unreachable!("a field set is written as an object"),
        };
        if set.has_member(element) {
            nested.insert(".".into(), Value::Object(Map::new()));
        }
        object.insert(element.to_fields_v1(), Value::Object(nested));
    }
    Value::Object(object)
}

/// Reads `fieldsV1`; the error says which member is malformed.
pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
    let Value::Object(object) = value else {
        return Err(format!("fieldsV1 must be an object, not {value}"));
    };
    let mut set = FieldSet::new();
    for (name, nested) in object {
        if name == "." {
            continue;
        }
        let element = PathElement::from_fields_v1(name)?;
        let Value::Object(members) = nested else {
            return Err(format!("the value of {name:?} must be an object, not {nested}"));
        };
        if members.is_empty() || members.contains_key(".") {
            set.insert_member(element.clone());
        }
        set.insert_child(element, from_fields_v1(nested)?);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::path::Path;
    use serde_json::json;

    /// The field set kube-apiserver records for `kubectl apply --server-side` of a
    /// small Deployment.
    fn applied() -> Value {
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }
                    }}
                }
            }
        })
    }

    #[test]
    fn reads_and_writes_kubernetes_form() {
        let set = from_fields_v1(&applied()).unwrap();
        let paths: Vec<String> = set.paths().iter().map(Path::to_string).collect();
        assert_eq!(
            paths,
            [
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.selector",
                ".spec.template.metadata.labels.app",
                r#".spec.template.spec.containers[name="web"]"#,
                r#".spec.template.spec.containers[name="web"].image"#,
                r#".spec.template.spec.containers[name="web"].name"#,
                r#".spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"]"#,
                r#".spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].containerPort"#,
            ]
        );
        assert_eq!(to_fields_v1(&set), applied());
    }

    #[test]
    fn an_empty_set_is_an_empty_object() {
        assert_eq!(to_fields_v1(&FieldSet::new()), json!({}));
        assert_eq!(from_fields_v1(&json!({})).unwrap(), FieldSet::new());
    }

    #[test]
    fn malformed_sets_are_refused() {
        assert!(from_fields_v1(&json!([])).is_err());
        assert!(from_fields_v1(&json!({"spec": {}})).is_err());
        assert!(from_fields_v1(&json!({"f:spec": 1})).is_err());
        assert!(from_fields_v1(&json!({"f:spec": {"k:[]": {}}})).is_err());
    }
}
