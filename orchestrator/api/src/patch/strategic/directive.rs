//! The directives a strategic merge patch may carry besides data, and what becomes of a
//! patch value that lands where nothing was stored.
//!
//! | directive                              | where                | does                               |
//! |----------------------------------------|----------------------|------------------------------------|
//! | `$patch: replace`                      | a map                | the map replaces the stored one    |
//! | `$patch: replace`                      | an element of a list | the list's other elements replace it |
//! | `$patch: delete`                       | a map                | the stored map is emptied          |
//! | `$patch: delete` (with the merge key)  | an element of a list | the element with that key goes     |
//! | `$patch: merge`                        | a map or element     | the default, spelled out           |
//! | `$retainKeys: [..]`                    | a map                | stored members not listed go       |
//! | `$setElementOrder/<field>: [..]`       | beside a list        | the merged list takes this order   |
//! | `$deleteFromPrimitiveList/<field>: [..]` | beside a list of scalars | these values go             |

use serde_json::{Map, Value};

use super::fail;
use crate::patch::error::{PatchError, StrategicMergeFailure};

pub(crate) const PATCH: &str = "$patch";
pub(crate) const RETAIN_KEYS: &str = "$retainKeys";
pub(crate) const SET_ELEMENT_ORDER: &str = "$setElementOrder";
pub(crate) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// The value of a `$patch` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    Replace,
    Delete,
    Merge,
}

/// The `$patch` directive of `map`, if it has one.
pub(crate) fn directive_of(map: &Map<String, Value>, path: &str) -> Result<Option<Directive>, PatchError> {
    let Some(value) = map.get(PATCH) else {
        return Ok(None);
    };
    match value.as_str() {
        Some("replace") => Ok(Some(Directive::Replace)),
        Some("delete") => Ok(Some(Directive::Delete)),
        // Kubernetes rejects `$patch: merge` although merging is what it does by default;
        // berth takes it at its word.
        Some("merge") => Ok(Some(Directive::Merge)),
        _ => Err(fail(
            path,
            StrategicMergeFailure::UnknownDirective {
                directive: value.as_str().map_or_else(|| value.to_string(), str::to_owned),
                element: Value::Object(map.clone()),
            },
        )),
    }
}

/// For a member named `<prefix>/<field>`: `Some(Ok(field))`; for one named `<prefix>`
/// without a field: `Some(Err(()))`; for any other member: `None`.
pub(crate) fn parallel_field<'k>(name: &'k str, prefix: &str) -> Option<Result<&'k str, ()>> {
    let rest = name.strip_prefix(prefix)?;
    Some(rest.strip_prefix('/').filter(|field| !field.is_empty()).ok_or(()))
}

/// Whether a member of a patch map is a directive rather than data.
pub(crate) fn is_directive(name: &str) -> bool {
    name == PATCH
        || name == RETAIN_KEYS
        || name.starts_with(SET_ELEMENT_ORDER)
        || name.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// What a patch value becomes where nothing is stored to merge it with: itself, less
/// its directives and its null members (which delete nothing there). `None` when the
/// value is itself a map with `$patch`, which Kubernetes drops there, whatever the
/// directive says.
pub(crate) fn stripped(value: &Value) -> Option<Value> {
    match value {
        Value::Object(members) if members.contains_key(PATCH) => None,
        Value::Object(members) => Some(Value::Object(stripped_members(members))),
        Value::Array(elements) => Some(Value::Array(elements.iter().filter_map(stripped).collect())),
        other => Some(other.clone()),
    }
}

/// The members of a map, less directives and nulls, each stripped.
pub(crate) fn stripped_members(members: &Map<String, Value>) -> Map<String, Value> {
    members
        .iter()
        .filter(|(name, value)| !is_directive(name) && !value.is_null())
        .filter_map(|(name, value)| Some((name.clone(), stripped(value)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parallel_fields_need_a_name() {
        assert_eq!(
            parallel_field("$setElementOrder/containers", SET_ELEMENT_ORDER),
            Some(Ok("containers"))
        );
        assert_eq!(parallel_field("$setElementOrder", SET_ELEMENT_ORDER), Some(Err(())));
        assert_eq!(parallel_field("$setElementOrder/", SET_ELEMENT_ORDER), Some(Err(())));
        assert_eq!(parallel_field("containers", SET_ELEMENT_ORDER), None);
    }

    #[test]
    fn stripping_drops_directives_and_nulls() {
        let value = json!({
            "a": null,
            "b": {"$patch": "replace", "x": 1},
            "c": [{"name": "x", "$patch": "delete"}, {"name": "y", "v": null}],
            "$setElementOrder/c": [{"name": "y"}],
            "$retainKeys": ["c"],
            "$ref": "kept: not a directive",
        });
        assert_eq!(
            stripped(&value),
            Some(json!({"c": [{"name": "y"}], "$ref": "kept: not a directive"}))
        );
        assert_eq!(stripped(&json!({"$patch": "delete"})), None);
    }

    #[test]
    fn unknown_directives_are_errors() {
        let map = json!({"$patch": "sideways", "name": "x"});
        let error = directive_of(map.as_object().unwrap(), "/spec").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"strategic merge patch at "/spec": unknown patch type: sideways in map: {"$patch":"sideways","name":"x"}"#
        );
    }
}
