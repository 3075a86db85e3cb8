//! Merging a list whose field has the `merge` strategy.
//!
//! ```text
//!  stored list + patch list
//!     │ one kind of element on both sides (no lists of lists)
//!     ├─ scalars: stored ∪ patch, each value once                  (a set: finalizers)
//!     └─ maps, by merge key:
//!          1. special elements: `$patch: delete` removes the stored elements with
//!             its key; `$patch: replace` makes the patch's other elements the list
//!          2. each other patch element merges into the stored element with its key
//!             (recursively, as a map), or is added
//!     ▼
//!  order (order.rs): patch elements in the patch's order, stored-only ones in theirs
//! ```

use serde_json::{Map, Value};

use super::directive::{Directive, PATCH, directive_of, stripped};
use super::map::merge_map;
use super::order::{Identity, normalize};
use super::{child, fail};
use crate::patch::error::{PatchError, StrategicMergeFailure, kind_of};
use crate::patch::schema::SchemaNode;
use crate::patch::strategy::FieldStrategy;

/// Merges `patch` into `stored`, the value of a field with the merge strategy; `items`
/// is the schema of the elements.
pub(crate) fn merge_list(
    stored: Vec<Value>,
    patch: &[Value],
    items: SchemaNode<'_>,
    strategy: FieldStrategy,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if stored.is_empty() && patch.is_empty() {
        return Ok(stored);
    }
    if element_kind(&stored, patch, path)? != "map" {
        return merge_set(stored, patch, path);
    }
    let Some(merge_key) = strategy.merge_key else {
        let definition = items.definition().unwrap_or("an unnamed type").to_owned();
        return Err(fail(path, StrategicMergeFailure::NoMergeKey { definition }));
    };
    let identity = Identity {
        merge_key: Some(merge_key),
    };
    let (stored, patch) = apply_special_elements(stored, patch, identity, path)?;
    let order_before = stored.clone();
    let mut merged = stored;
    for element in &patch {
        identity.require(element, path)?;
        let Some(index) = identity.position(&merged, element) else {
            merged.extend(stripped(element));
            continue;
        };
        let (Value::Object(old), Value::Object(new)) = (std::mem::take(&mut merged[index]), element) else {
            unreachable!("element_kind found maps only");
        };
        merged[index] = Value::Object(merge_map(old, new, items, &child(path, &index.to_string()))?);
    }
    normalize(merged, &patch, &order_before, identity, path)
}

/// The one kind of the elements of both lists ("map", "string", ...).
fn element_kind(stored: &[Value], patch: &[Value], path: &str) -> Result<&'static str, PatchError> {
    let mut kinds = stored.iter().chain(patch).map(kind_of);
    let first = kinds.next().unwrap_or("null");
    if first == "list" {
        return Err(fail(path, StrategicMergeFailure::ListOfLists));
    }
    if kinds.any(|kind| kind != first) {
        let elements = Value::Array(vec![Value::Array(stored.to_vec()), Value::Array(patch.to_vec())]);
        return Err(fail(path, StrategicMergeFailure::MixedElementTypes { elements }));
    }
    Ok(first)
}

/// A list of scalars with the merge strategy is a set: the stored values, then the
/// patch's new ones, each once; ordered as any merged list.
fn merge_set(stored: Vec<Value>, patch: &[Value], path: &str) -> Result<Vec<Value>, PatchError> {
    let identity = Identity { merge_key: None };
    let mut merged: Vec<Value> = Vec::with_capacity(stored.len() + patch.len());
    for value in stored.iter().chain(patch) {
        if identity.position(&merged, value).is_none() {
            merged.push(value.clone());
        }
    }
    normalize(merged, patch, &stored, identity, path)
}

/// Applies the patch's `$patch` elements to the stored list; returns the list and the
/// patch's remaining elements.
fn apply_special_elements(
    mut stored: Vec<Value>,
    patch: &[Value],
    identity: Identity<'_>,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut is_replace = false;
    for element in patch {
        let Value::Object(map) = element else {
            unreachable!("element_kind found maps only");
        };
        match directive_of(map, path)? {
            None => rest.push(element.clone()),
            Some(Directive::Delete) => {
                identity.require(element, path)?;
                stored.retain(|old| !identity.same(old, element));
            }
            Some(Directive::Replace) => is_replace = true,
            Some(Directive::Merge) => {
                let data: Map<String, Value> = map
                    .iter()
                    .filter(|(name, _)| *name != PATCH)
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                if !data.is_empty() {
                    rest.push(Value::Object(data));
                }
            }
        }
    }
    if is_replace {
        return Ok((rest.iter().filter_map(stripped).collect(), Vec::new()));
    }
    Ok((stored, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::PatchSchema;
    use serde_json::json;

    fn merged(stored: Value, patch: Value, merge_key: Option<&'static str>) -> Result<Value, PatchError> {
        let Value::Array(stored) = stored else { panic!() };
        let Value::Array(patch) = patch else { panic!() };
        let schema = PatchSchema::unknown();
        let strategy = FieldStrategy {
            merge: true,
            merge_key,
            ..FieldStrategy::default()
        };
        merge_list(stored, &patch, schema.root(), strategy, "/list").map(Value::Array)
    }

    #[test]
    fn sets_take_each_value_once() {
        let result = merged(json!(["a", "b"]), json!(["b", "c", "c"]), None).unwrap();
        assert_eq!(result, json!(["a", "b", "c"]));
    }

    #[test]
    fn elements_merge_by_key_and_new_ones_are_added() {
        let result = merged(
            json!([{"name": "a", "value": "1", "keep": true}, {"name": "b", "value": "2"}]),
            json!([{"name": "a", "value": "one"}, {"name": "c", "value": "3", "gone": null}]),
            Some("name"),
        )
        .unwrap();
        assert_eq!(
            result,
            json!([{"name": "a", "value": "one", "keep": true}, {"name": "c", "value": "3"}, {"name": "b", "value": "2"}])
        );
    }

    #[test]
    fn delete_and_replace_elements() {
        let stored = json!([{"name": "a"}, {"name": "b"}]);
        let deleted = merged(stored.clone(), json!([{"name": "a", "$patch": "delete"}]), Some("name")).unwrap();
        assert_eq!(deleted, json!([{"name": "b"}]));
        let replaced = merged(
            stored.clone(),
            json!([{"$patch": "replace"}, {"name": "z"}]),
            Some("name"),
        )
        .unwrap();
        assert_eq!(replaced, json!([{"name": "z"}]));
        let emptied = merged(stored, json!([{"$patch": "replace"}]), Some("name")).unwrap();
        assert_eq!(emptied, json!([]));
    }

    #[test]
    fn kinds_must_agree() {
        let error = merged(json!(["a"]), json!([{"name": "a"}]), Some("name")).unwrap_err();
        assert!(
            error.to_string().contains("list element types are not identical"),
            "{error}"
        );
        let error = merged(json!([["a"]]), json!([]), None).unwrap_err();
        assert!(
            error.to_string().ends_with("lists of lists are not supported"),
            "{error}"
        );
    }

    #[test]
    fn maps_need_a_merge_key() {
        let error = merged(json!([{"name": "a"}]), json!([{"name": "b"}]), None).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("cannot merge lists without merge key for an unnamed type"),
            "{error}"
        );
        let error = merged(json!([{"name": "a"}]), json!([{"image": "b"}]), Some("name")).unwrap_err();
        assert!(
            error.to_string().contains("does not contain declared merge key: name"),
            "{error}"
        );
        let error = merged(json!([{"name": "a"}]), json!([{"$patch": "delete"}]), Some("name")).unwrap_err();
        assert!(
            error.to_string().contains("does not contain declared merge key: name"),
            "{error}"
        );
    }
}
