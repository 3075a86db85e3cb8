//! JSON patch (RFC 6902), `application/json-patch+json`, which `kubectl patch --type json`
//! sends: a list of operations applied in order to one document; the first that fails
//! fails the whole patch, and nothing of it is kept.
//!
//! The six operations, with `path` and `from` JSON pointers (see `pointer`):
//!
//! | op        | does                                                            |
//! |-----------|-----------------------------------------------------------------|
//! | `add`     | sets a member, or inserts before an array index (`-`: appends)  |
//! | `remove`  | removes a member or element, which must exist                   |
//! | `replace` | replaces a member or element, which must exist                  |
//! | `move`    | `remove` at `from`, then `add` at `path`                        |
//! | `copy`    | `add` at `path` of a copy of the value at `from`                |
//! | `test`    | fails unless the value at `path` equals `value`                 |
//!
//! Unlike the library kube-apiserver uses, negative array indices (a non-standard
//! extension there) are refused, as RFC 6901 says.

use serde_json::{Map, Value};

use super::error::{JsonPatchFailure, PatchError};
use super::pointer::{Pointer, parse_index};
use super::value::json_equal;

/// Applies the JSON patch `patch` to `original`. Operations count from 0 in errors.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(operations) = patch else {
        return Err(PatchError::Malformed("a JSON patch is a list of operations".to_owned()));
    };
    let mut document = original.clone();
    for (index, operation) in operations.iter().enumerate() {
        apply_operation(&mut document, operation).map_err(|failure| PatchError::JsonPatch { index, failure })?;
    }
    Ok(document)
}

/// A `path` or `from` member: its text, for messages, and the parsed pointer.
struct Location {
    text: String,
    pointer: Pointer,
}

fn apply_operation(document: &mut Value, operation: &Value) -> Result<(), JsonPatchFailure> {
    let Value::Object(fields) = operation else {
        return Err(JsonPatchFailure::NotAnOperation);
    };
    let kind = match fields.get("op") {
        Some(Value::String(kind)) => kind.clone(),
        Some(other) => other.to_string(),
        // The library kube-apiserver uses names a missing op "unknown".
        None => "unknown".to_owned(),
    };
    match kind.as_str() {
        "add" => {
            let path = location(fields, "path")?;
            add(document, &path, value(fields)?.clone(), "add")
        }
        "remove" => remove(document, &location(fields, "path")?).map(drop),
        "replace" => replace(document, &location(fields, "path")?, value(fields)?.clone()),
        "move" => {
            let from = location(fields, "from")?;
            let path = location(fields, "path")?;
            move_value(document, &from, &path)
        }
        "copy" => {
            let from = location(fields, "from")?;
            let path = location(fields, "path")?;
            let copied = get(document, &from.pointer.tokens)
                .cloned()
                .ok_or_else(|| JsonPatchFailure::MissingFrom {
                    op: "copy",
                    from: from.text.clone(),
                })?;
            add(document, &path, copied, "copy")
        }
        "test" => test(document, &location(fields, "path")?, value(fields)?),
        _ => Err(JsonPatchFailure::UnexpectedKind { kind }),
    }
}

fn location(fields: &Map<String, Value>, field: &'static str) -> Result<Location, JsonPatchFailure> {
    let Some(Value::String(text)) = fields.get(field) else {
        return Err(JsonPatchFailure::MissingField { field });
    };
    let pointer = Pointer::parse(text).map_err(|reason| JsonPatchFailure::InvalidPointer {
        pointer: text.clone(),
        reason,
    })?;
    Ok(Location {
        text: text.clone(),
        pointer,
    })
}

fn value(fields: &Map<String, Value>) -> Result<&Value, JsonPatchFailure> {
    fields
        .get("value")
        .ok_or(JsonPatchFailure::MissingField { field: "value" })
}

fn get<'a>(document: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(document, |node, token| match node {
        Value::Object(members) => members.get(token),
        Value::Array(elements) => elements.get(parse_index(token)?),
        _ => None,
    })
}

fn get_mut<'a>(document: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(document, |node, token| match node {
        Value::Object(members) => members.get_mut(token),
        Value::Array(elements) => elements.get_mut(parse_index(token)?),
        _ => None,
    })
}

/// `add` itself, and the second half of `move` and `copy` (`op` says which, for messages).
fn add(document: &mut Value, path: &Location, value: Value, op: &'static str) -> Result<(), JsonPatchFailure> {
    let Some((parent, last)) = path.pointer.split_last() else {
        *document = value;
        return Ok(());
    };
    let no_container = || match op {
        "add" => JsonPatchFailure::MissingPath {
            op,
            path: path.text.clone(),
        },
        _ => JsonPatchFailure::MissingDestination {
            op,
            path: path.text.clone(),
        },
    };
    match get_mut(document, parent).ok_or_else(no_container)? {
        Value::Object(members) => {
            members.insert(last.to_owned(), value);
            Ok(())
        }
        Value::Array(elements) if last == "-" => {
            elements.push(value);
            Ok(())
        }
        Value::Array(elements) => match parse_index(last) {
            Some(index) if index <= elements.len() => {
                elements.insert(index, value);
                Ok(())
            }
            Some(index) => Err(JsonPatchFailure::InvalidIndex {
                op,
                path: path.text.clone(),
                index,
            }),
            None => Err(JsonPatchFailure::NotAnIndex {
                op,
                path: path.text.clone(),
                token: last.to_owned(),
            }),
        },
        _ => Err(no_container()),
    }
}

/// Removes and returns the value at `path`.
fn remove(document: &mut Value, path: &Location) -> Result<Value, JsonPatchFailure> {
    let missing_path = || JsonPatchFailure::MissingPath {
        op: "remove",
        path: path.text.clone(),
    };
    // Removing the whole document is no operation RFC 6902 defines; the library
    // kube-apiserver uses reports it as a missing path too.
    let (parent, last) = path.pointer.split_last().ok_or_else(missing_path)?;
    match get_mut(document, parent).ok_or_else(missing_path)? {
        Value::Object(members) => members.remove(last).ok_or_else(|| JsonPatchFailure::NonexistentKey {
            path: path.text.clone(),
            key: last.to_owned(),
        }),
        Value::Array(elements) => match parse_index(last) {
            Some(index) if index < elements.len() => Ok(elements.remove(index)),
            Some(index) => Err(JsonPatchFailure::InvalidIndex {
                op: "remove",
                path: path.text.clone(),
                index,
            }),
            None => Err(JsonPatchFailure::NotAnIndex {
                op: "remove",
                path: path.text.clone(),
                token: last.to_owned(),
            }),
        },
        _ => Err(missing_path()),
    }
}

fn replace(document: &mut Value, path: &Location, value: Value) -> Result<(), JsonPatchFailure> {
    let Some((parent, _)) = path.pointer.split_last() else {
        *document = value;
        return Ok(());
    };
    if !matches!(get(document, parent), Some(Value::Object(_) | Value::Array(_))) {
        return Err(JsonPatchFailure::MissingPath {
            op: "replace",
            path: path.text.clone(),
        });
    }
    let target = get_mut(document, &path.pointer.tokens).ok_or_else(|| JsonPatchFailure::MissingKey {
        path: path.text.clone(),
    })?;
    *target = value;
    Ok(())
}

fn move_value(document: &mut Value, from: &Location, path: &Location) -> Result<(), JsonPatchFailure> {
    if get(document, &from.pointer.tokens).is_none() {
        return Err(JsonPatchFailure::MissingFrom {
            op: "move",
            from: from.text.clone(),
        });
    }
    if from.pointer == path.pointer {
        return Ok(());
    }
    // RFC 6902 forbids moving a value into itself; removing it first leaves the
    // destination without its container, which is how kube-apiserver reports it.
    if path.pointer.is_inside(&from.pointer) {
        return Err(JsonPatchFailure::MissingDestination {
            op: "move",
            path: path.text.clone(),
        });
    }
    let value = remove(document, from)?;
    add(document, path, value, "move")
}

fn test(document: &Value, path: &Location, expected: &Value) -> Result<(), JsonPatchFailure> {
    let failed = || JsonPatchFailure::TestFailed {
        path: path.text.clone(),
    };
    let Some((parent, last)) = path.pointer.split_last() else {
        return if json_equal(document, expected) {
            Ok(())
        } else {
            Err(failed())
        };
    };
    let actual = match get(document, parent) {
        Some(Value::Object(members)) => members.get(last).ok_or_else(failed)?,
        Some(Value::Array(elements)) => match parse_index(last) {
            Some(index) => elements.get(index).ok_or(JsonPatchFailure::InvalidIndex {
                op: "test",
                path: path.text.clone(),
                index,
            })?,
            None => {
                return Err(JsonPatchFailure::NotAnIndex {
                    op: "test",
                    path: path.text.clone(),
                    token: last.to_owned(),
                });
            }
        },
        _ => {
            return Err(JsonPatchFailure::MissingPath {
                op: "test",
                path: path.text.clone(),
            });
        }
    };
    if json_equal(actual, expected) {
        Ok(())
    } else {
        Err(failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "http", "image": "python:3.11"},
                {"name": "sidecar", "image": "envoy"}
            ]}}}
        })
    }

    fn failure(result: Result<Value, PatchError>) -> (usize, JsonPatchFailure, String) {
        match result {
            Err(error @ PatchError::JsonPatch { .. }) => {
                let message = error.to_string();
                let PatchError::JsonPatch { index, failure } = error else {
                    unreachable!()
                };
                (index, failure, message)
            }
            other => panic!("expected a JSON patch failure, got {other:?}"),
        }
    }

    #[test]
    fn add_sets_members_and_inserts_elements() {
        let patched = json_patch(
            &deployment(),
            &json!([
                {"op": "add", "path": "/metadata/labels/tier", "value": "web"},
                {"op": "add", "path": "/metadata/finalizers/1", "value": "x"},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "z"},
                {"op": "add", "path": "/metadata/finalizers/4", "value": "end"},
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": "/metadata/annotations/example.com~1team", "value": "blue"},
                {"op": "add", "path": "/spec/replicas", "value": 3},
            ]),
        )
        .unwrap();
        assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "tier": "web"}));
        assert_eq!(patched["metadata"]["finalizers"], json!(["a", "x", "b", "z", "end"]));
        assert_eq!(patched["metadata"]["annotations"], json!({"example.com/team": "blue"}));
        assert_eq!(patched["spec"]["replicas"], 3);
    }

    #[test]
    fn add_at_the_root_replaces_the_document() {
        assert_eq!(
            json_patch(&json!({"a": 1}), &json!([{"op": "add", "path": "", "value": [1]}])).unwrap(),
            json!([1])
        );
    }

    #[test]
    fn remove_takes_members_and_elements() {
        let patched = json_patch(
            &deployment(),
            &json!([
                {"op": "remove", "path": "/metadata/labels/app"},
                {"op": "remove", "path": "/spec/template/spec/containers/0"},
            ]),
        )
        .unwrap();
        assert_eq!(patched["metadata"]["labels"], json!({}));
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"],
            json!([{"name": "sidecar", "image": "envoy"}])
        );
    }

    #[test]
    fn replace_changes_what_exists() {
        let patched = json_patch(
            &deployment(),
            &json!([
                {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "python:3.12"},
                {"op": "replace", "path": "/metadata/finalizers/1", "value": "c"},
            ]),
        )
        .unwrap();
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"][0]["image"],
            "python:3.12"
        );
        assert_eq!(patched["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn move_removes_then_adds() {
        let patched = json_patch(
            &deployment(),
            &json!([
                {"op": "move", "from": "/metadata/labels", "path": "/metadata/annotations"},
                {"op": "move", "from": "/metadata/finalizers/0", "path": "/metadata/finalizers/-"},
                {"op": "move", "from": "/spec/replicas", "path": "/spec/replicas"},
            ]),
        )
        .unwrap();
        assert_eq!(patched["metadata"].get("labels"), None);
        assert_eq!(patched["metadata"]["annotations"], json!({"app": "web"}));
        assert_eq!(patched["metadata"]["finalizers"], json!(["b", "a"]));
        assert_eq!(patched["spec"]["replicas"], 2);
    }

    #[test]
    fn copy_duplicates() {
        let patched = json_patch(
            &deployment(),
            &json!([
                {"op": "copy", "from": "/spec/template/spec/containers/0", "path": "/spec/template/spec/containers/-"},
                {"op": "replace", "path": "/spec/template/spec/containers/2/name", "value": "copy"},
            ]),
        )
        .unwrap();
        let containers = &patched["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "http");
        assert_eq!(containers[2], json!({"name": "copy", "image": "python:3.11"}));
    }

    #[test]
    fn test_passes_on_equal_values_and_keeps_going() {
        let patched = json_patch(
            &deployment(),
            &json!([
                {"op": "test", "path": "/spec/replicas", "value": 2.0},
                {"op": "test", "path": "/metadata/finalizers", "value": ["a", "b"]},
                {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "sidecar"},
                {"op": "replace", "path": "/spec/replicas", "value": 5},
            ]),
        )
        .unwrap();
        assert_eq!(patched["spec"]["replicas"], 5);
    }

    #[test]
    fn test_failure_names_the_operation_and_path() {
        let (index, failure, message) = failure(json_patch(
            &deployment(),
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/spec/replicas", "value": 2},
            ]),
        ));
        assert_eq!(index, 1);
        assert_eq!(
            failure,
            JsonPatchFailure::TestFailed {
                path: "/spec/replicas".into()
            }
        );
        assert_eq!(
            message,
            "json patch operation 1: testing value /spec/replicas failed: test failed"
        );
        // A missing member fails the test too.
        let (_, failure, _) = failure_of(&json!([{"op": "test", "path": "/spec/paused", "value": false}]));
        assert_eq!(
            failure,
            JsonPatchFailure::TestFailed {
                path: "/spec/paused".into()
            }
        );
    }

    fn failure_of(patch: &Value) -> (usize, JsonPatchFailure, String) {
        failure(json_patch(&deployment(), patch))
    }

    #[test]
    fn missing_containers_and_members_are_errors() {
        let cases = [
            (
                json!({"op": "add", "path": "/spec/strategy/type", "value": "Recreate"}),
                "add operation does not apply: doc is missing path: \"/spec/strategy/type\": missing value",
            ),
            (
                json!({"op": "remove", "path": "/metadata/labels/tier"}),
                "error in remove for path: '/metadata/labels/tier': Unable to remove nonexistent key: tier: missing value",
            ),
            (
                json!({"op": "replace", "path": "/spec/paused", "value": true}),
                "replace operation does not apply: doc is missing key: /spec/paused: missing value",
            ),
            (
                json!({"op": "replace", "path": "/spec/strategy/type", "value": "Recreate"}),
                "replace operation does not apply: doc is missing path: /spec/strategy/type: missing value",
            ),
            (
                json!({"op": "move", "from": "/spec/paused", "path": "/spec/x"}),
                "move operation does not apply: doc is missing from path: /spec/paused: missing value",
            ),
            (
                json!({"op": "copy", "from": "/spec/replicas", "path": "/status/replicas"}),
                "copy operation does not apply: doc is missing destination path: /status/replicas: missing value",
            ),
            (
                json!({"op": "move", "from": "/spec", "path": "/spec/inner"}),
                "move operation does not apply: doc is missing destination path: /spec/inner: missing value",
            ),
            (
                json!({"op": "test", "path": "/status/replicas", "value": 1}),
                "test operation does not apply: is missing path: /status/replicas: missing value",
            ),
            (
                json!({"op": "remove", "path": ""}),
                "remove operation does not apply: doc is missing path: \"\": missing value",
            ),
        ];
        for (operation, expected) in cases {
            let (index, _, message) = failure_of(&json!([operation]));
            assert_eq!(index, 0);
            assert_eq!(message, format!("json patch operation 0: {expected}"), "{operation}");
        }
    }

    #[test]
    fn array_indices_are_checked() {
        let cases = [
            (
                json!({"op": "add", "path": "/metadata/finalizers/3", "value": "x"}),
                "error in add for path: '/metadata/finalizers/3': Unable to access invalid index: 3: invalid index referenced",
            ),
            (
                json!({"op": "remove", "path": "/metadata/finalizers/2"}),
                "error in remove for path: '/metadata/finalizers/2': Unable to access invalid index: 2: invalid index referenced",
            ),
            (
                json!({"op": "remove", "path": "/metadata/finalizers/-"}),
                "error in remove for path: '/metadata/finalizers/-': value was not a proper array index: '-'",
            ),
            (
                json!({"op": "add", "path": "/metadata/finalizers/01", "value": "x"}),
                "error in add for path: '/metadata/finalizers/01': value was not a proper array index: '01'",
            ),
            (
                json!({"op": "add", "path": "/metadata/finalizers/-1", "value": "x"}),
                "error in add for path: '/metadata/finalizers/-1': value was not a proper array index: '-1'",
            ),
            (
                json!({"op": "replace", "path": "/metadata/finalizers/2", "value": "x"}),
                "replace operation does not apply: doc is missing key: /metadata/finalizers/2: missing value",
            ),
            (
                json!({"op": "test", "path": "/metadata/finalizers/9", "value": "x"}),
                "error in test for path: '/metadata/finalizers/9': Unable to access invalid index: 9: invalid index referenced",
            ),
        ];
        for (operation, expected) in cases {
            let (_, _, message) = failure_of(&json!([operation]));
            assert_eq!(message, format!("json patch operation 0: {expected}"), "{operation}");
        }
    }

    #[test]
    fn malformed_operations_are_errors() {
        let cases = [
            (json!("add"), "operation is not a JSON object"),
            (json!({"path": "/a"}), "Unexpected kind: unknown"),
            (json!({"op": "merge", "path": "/a"}), "Unexpected kind: merge"),
            (
                json!({"op": "add", "value": 1}),
                "operation missing path field: missing value",
            ),
            (
                json!({"op": "add", "path": "/a"}),
                "operation, missing value field: missing value",
            ),
            (
                json!({"op": "copy", "path": "/a"}),
                "operation, missing from field: missing value",
            ),
            (
                json!({"op": "add", "path": "spec", "value": 1}),
                "invalid JSON pointer \"spec\": a pointer other than \"\" starts with '/'",
            ),
        ];
        for (operation, expected) in cases {
            let (_, _, message) = failure_of(&json!([{"op": "test", "path": "/spec/replicas", "value": 2}, operation]));
            assert_eq!(message, format!("json patch operation 1: {expected}"), "{operation}");
        }
        assert_eq!(
            json_patch(&deployment(), &json!({"op": "add"})),
            Err(PatchError::Malformed("a JSON patch is a list of operations".into()))
        );
    }

    #[test]
    fn a_failed_patch_leaves_the_original_untouched() {
        let original = deployment();
        let result = json_patch(
            &original,
            &json!([{"op": "remove", "path": "/spec"}, {"op": "test", "path": "/spec", "value": 1}]),
        );
        assert!(result.is_err());
        assert_eq!(original, deployment());
    }
}
