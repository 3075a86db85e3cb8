//! Merging a patch map into a stored map, the step every level of a strategic merge
//! patch takes.
//!
//! ```text
//!  1. `$patch` on the map:  replace → the patch (less directives) is the result
//!                           delete  → the result is an empty map
//!  2. `$retainKeys`:        stored members it does not list go
//!  3. `$setElementOrder/f`: list f is merged (below) and put in that order
//!  4. every data member, by the stored and patch values:
//!       patch null            → the member goes
//!       nothing stored        → the patch value, less directives and nulls
//!       map + map             → merge_map, one level down (unless strategy replace)
//!       list + list           → merge_list if the field's strategy is merge, else replace
//!       anything else         → the patch value replaces
//!  5. `$deleteFromPrimitiveList/f`: those values leave list f
//! ```
//!
//! Kubernetes walks a Go map, so where steps 4 and 5 meet on one list it has no fixed
//! order; berth deletes last.

use serde_json::{Map, Value};

use super::directive::{
    DELETE_FROM_PRIMITIVE_LIST, Directive, RETAIN_KEYS, SET_ELEMENT_ORDER, directive_of, is_directive, parallel_field,
    stripped, stripped_members,
};
use super::list::merge_list;
use super::order::{Identity, check_patch_order, normalize};
use super::{child, fail};
use crate::patch::error::{PatchError, StrategicMergeFailure, kind_of};
use crate::patch::schema::SchemaNode;
use crate::patch::value::json_equal;

type Members = Map<String, Value>;

/// Merges `patch` into `stored`; `node` is the schema of the map, `path` its pointer.
pub(crate) fn merge_map(
    mut stored: Members,
    patch: &Members,
    node: SchemaNode<'_>,
    path: &str,
) -> Result<Members, PatchError> {
    match directive_of(patch, path)? {
        Some(Directive::Replace) => return Ok(stripped_members(patch)),
        Some(Directive::Delete) => return Ok(Members::new()),
        Some(Directive::Merge) | None => {}
    }
    retain_keys(&mut stored, patch, path)?;
    let mut ordered = Vec::new();
    for (name, order) in patch {
        if let Some(field) = parallel_field(name, SET_ELEMENT_ORDER) {
            let field = field.map_err(|()| fail(path, StrategicMergeFailure::BadSetElementOrder))?;
            set_element_order(&mut stored, patch, field, order, node, path)?;
            ordered.push(field);
        }
    }
    for (name, value) in patch {
        if is_directive(name) || ordered.contains(&name.as_str()) {
            continue;
        }
        if value.is_null() {
            stored.remove(name);
            continue;
        }
        let Some(slot) = stored.get_mut(name) else {
            stored.extend(stripped(value).map(|value| (name.clone(), value)));
            continue;
        };
        let (field, strategy) = node.field(name);
        let field_path = child(path, name);
        let merged = match (std::mem::take(slot), value) {
            (Value::Object(old), Value::Object(new)) if !strategy.replace => {
                Some(Value::Object(merge_map(old, new, field, &field_path)?))
            }
            (Value::Array(old), Value::Array(new)) if strategy.merge => Some(Value::Array(merge_list(
                old,
                new,
                field.items(),
                strategy,
                &field_path,
            )?)),
            (_, new) => stripped(new),
        };
        match merged {
            Some(merged) => *slot = merged,
            None => {
                stored.remove(name);
            }
        }
    }
    for (name, values) in patch {
        if let Some(field) = parallel_field(name, DELETE_FROM_PRIMITIVE_LIST) {
            delete_from_primitive_list(&mut stored, field, values, path)?;
        }
    }
    Ok(stored)
}

/// `$retainKeys`: the stored members the list does not name go; every data member of
/// the patch must be named.
fn retain_keys(stored: &mut Members, patch: &Members, path: &str) -> Result<(), PatchError> {
    let Some(keys) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = |detail: Option<String>| fail(path, StrategicMergeFailure::BadRetainKeys { detail });
    let Value::Array(keys) = keys else {
        return Err(bad(Some(format!("$retainKeys is a {}, not a list", kind_of(keys)))));
    };
    let is_kept = |name: &str| keys.iter().any(|key| key.as_str() == Some(name));
    for (name, value) in patch {
        if !is_directive(name) && !value.is_null() && !is_kept(name) {
            return Err(bad(Some(format!("{name:?} is in the patch but not in $retainKeys"))));
        }
    }
    stored.retain(|name, _| is_kept(name));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the patch's list `field` (if any) into the stored
/// one (if any) and orders the result as `order` says.
fn set_element_order(
    stored: &mut Members,
    patch: &Members,
    field: &str,
    order: &Value,
    node: SchemaNode<'_>,
    path: &str,
) -> Result<(), PatchError> {
    let Value::Array(order) = order else {
        return Err(fail(path, StrategicMergeFailure::BadSetElementOrder));
    };
    let field_path = child(path, field);
    let as_list = |value: Option<&Value>| match value {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list.clone())),
        Some(other) => Err(fail(
            &field_path,
            StrategicMergeFailure::WrongType {
                expected: "list",
                found: kind_of(other),
            },
        )),
    };
    let old = as_list(stored.get(field))?;
    let new = as_list(patch.get(field))?;
    let (schema, strategy) = node.field(field);
    let identity = Identity {
        merge_key: strategy.merge_key,
    };
    check_patch_order(new.as_deref().unwrap_or_default(), order, identity, &field_path)?;
    let merged = match (&old, &new) {
        (None, None) => return Ok(()),
        (Some(old), None) => old.clone(),
        (Some(old), Some(new)) if strategy.merge => {
            merge_list(old.clone(), new, schema.items(), strategy, &field_path)?
        }
        (_, Some(new)) => new.iter().filter_map(stripped).collect(),
    };
    let ordered = normalize(merged, order, old.as_deref().unwrap_or_default(), identity, &field_path)?;
    stored.insert(field.to_owned(), Value::Array(ordered));
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>`: the listed values leave the stored list `field`
/// (nothing happens where none is stored).
fn delete_from_primitive_list(
    stored: &mut Members,
    field: Result<&str, ()>,
    values: &Value,
    path: &str,
) -> Result<(), PatchError> {
    let bad = || fail(path, StrategicMergeFailure::BadPrimitiveList);
    let field = field.map_err(|()| bad())?;
    let Value::Array(values) = values else {
        return Err(bad());
    };
    if let Some(Value::Array(list)) = stored.get_mut(field) {
        list.retain(|element| !values.iter().any(|value| json_equal(element, value)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::PatchSchema;
    use serde_json::json;

    fn merged(stored: Value, patch: Value) -> Result<Value, PatchError> {
        let (Value::Object(stored), Value::Object(patch)) = (stored, patch) else {
            panic!()
        };
        merge_map(stored, &patch, PatchSchema::unknown().root(), "").map(Value::Object)
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let result = merged(
            json!({"labels": {"app": "web", "tier": "x"}, "replicas": 1, "gone": 1}),
            json!({"labels": {"tier": null, "new": "y"}, "replicas": 2, "gone": null, "added": {"a": null, "b": 1}}),
        )
        .unwrap();
        assert_eq!(
            result,
            json!({"labels": {"app": "web", "new": "y"}, "replicas": 2, "added": {"b": 1}})
        );
    }

    #[test]
    fn without_a_schema_lists_are_replaced() {
        let result = merged(json!({"args": ["a", "b"]}), json!({"args": ["c"]})).unwrap();
        assert_eq!(result, json!({"args": ["c"]}));
    }

    #[test]
    fn map_directives() {
        let stored = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
        let replaced = merged(
            stored.clone(),
            json!({"strategy": {"$patch": "replace", "type": "Recreate"}}),
        )
        .unwrap();
        assert_eq!(replaced, json!({"strategy": {"type": "Recreate"}}));
        let deleted = merged(stored.clone(), json!({"strategy": {"$patch": "delete"}})).unwrap();
        assert_eq!(deleted, json!({"strategy": {}}));
        let merged_explicitly = merged(stored, json!({"strategy": {"$patch": "merge", "type": "Recreate"}})).unwrap();
        assert_eq!(
            merged_explicitly,
            json!({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}})
        );
        // Where nothing is stored, a map with a directive is dropped, as in Kubernetes.
        let absent = merged(
            json!({}),
            json!({"strategy": {"$patch": "replace", "type": "Recreate"}}),
        )
        .unwrap();
        assert_eq!(absent, json!({}));
    }

    #[test]
    fn retain_keys_must_name_the_patch_members() {
        let error = merged(json!({"a": 1, "b": 2}), json!({"$retainKeys": ["a"], "b": 3})).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"strategic merge patch at "": invalid patch format of retainKeys: "b" is in the patch but not in $retainKeys"#
        );
        let error = merged(json!({}), json!({"$retainKeys": "a"})).unwrap_err();
        assert!(
            error.to_string().contains("invalid patch format of retainKeys"),
            "{error}"
        );
        let kept = merged(
            json!({"a": 1, "b": 2, "c": 3}),
            json!({"$retainKeys": ["a", "b"], "b": null}),
        )
        .unwrap();
        assert_eq!(kept, json!({"a": 1}));
    }

    #[test]
    fn parallel_lists_need_field_names_and_lists() {
        for patch in [
            json!({"$deleteFromPrimitiveList": ["a"]}),
            json!({"$deleteFromPrimitiveList/finalizers": "a"}),
        ] {
            let error = merged(json!({"finalizers": ["a"]}), patch).unwrap_err();
            assert!(
                error.to_string().ends_with("invalid patch format of primitive list"),
                "{error}"
            );
        }
        for patch in [
            json!({"$setElementOrder": []}),
            json!({"$setElementOrder/finalizers": "a"}),
        ] {
            let error = merged(json!({"finalizers": ["a"]}), patch).unwrap_err();
            assert!(
                error
                    .to_string()
                    .ends_with("invalid patch format of setElementOrder list"),
                "{error}"
            );
        }
        let error = merged(
            json!({"finalizers": "a"}),
            json!({"$setElementOrder/finalizers": ["a"]}),
        )
        .unwrap_err();
        assert!(
            error.to_string().ends_with("expected a list, but received a string"),
            "{error}"
        );
    }

    #[test]
    fn set_element_order_reorders_a_replaced_list() {
        let result = merged(
            json!({"args": ["a", "b"]}),
            json!({"$setElementOrder/args": ["c", "a"], "args": ["c", "a"]}),
        )
        .unwrap();
        assert_eq!(result, json!({"args": ["c", "a"]}));
    }
}
