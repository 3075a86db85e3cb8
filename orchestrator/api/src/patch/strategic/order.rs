//! The order of a merged list, as Kubernetes settles it (its design note "preserve
//! order in strategic merge patch"):
//!
//! - the elements the patch names keep the patch's order: `$setElementOrder/<field>`'s
//!   when the patch has one (`kubectl apply` always sends it), else the patch list's;
//! - the elements only the stored list has keep their stored order;
//! - the two runs are then interleaved: a stored-only element goes before a patch element
//!   when both were stored and it was stored first; otherwise the patch element goes
//!   first. So a patch without `$setElementOrder` that adds an element puts it before
//!   the stored elements it cannot be compared with, i.e. first.
//!
//! Elements are identified by their merge key's value, or by their value in lists of
//! scalars.

use serde_json::Value;

use super::directive::PATCH;
use super::fail;
use crate::patch::error::{PatchError, StrategicMergeFailure};
use crate::patch::value::json_equal;

/// How elements of one list are identified.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'k> {
    pub merge_key: Option<&'k str>,
}

impl Identity<'_> {
    /// The identity of `element`; `None` when it lacks the merge key.
    pub fn of<'v>(&self, element: &'v Value) -> Option<&'v Value> {
        match self.merge_key {
            Some(key) => element.as_object()?.get(key),
            None => Some(element),
        }
    }

    /// The identity of `element`, or the error Kubernetes gives for an element without
    /// the merge key.
    pub fn require<'v>(&self, element: &'v Value, path: &str) -> Result<&'v Value, PatchError> {
        self.of(element).ok_or_else(|| {
            fail(
                path,
                StrategicMergeFailure::MissingMergeKey {
                    element: element.clone(),
                    merge_key: self.merge_key.unwrap_or_default().to_owned(),
                },
            )
        })
    }

    /// The position in `list` of the first element with `element`'s identity.
    pub fn position(&self, list: &[Value], element: &Value) -> Option<usize> {
        let wanted = self.of(element)?;
        list.iter()
            .position(|other| self.of(other).is_some_and(|id| json_equal(id, wanted)))
    }

    pub fn same(&self, left: &Value, right: &Value) -> bool {
        matches!((self.of(left), self.of(right)), (Some(l), Some(r)) if json_equal(l, r))
    }
}

/// Orders `merged`: elements named in `order` (the patch list, or `$setElementOrder`)
/// in that order, interleaved with the others in the order of `stored`.
pub(crate) fn normalize(
    merged: Vec<Value>,
    order: &[Value],
    stored: &[Value],
    identity: Identity<'_>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    for element in merged.iter().chain(order).chain(stored) {
        identity.require(element, path)?;
    }
    let (mut named, mut stored_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|element| identity.position(order, element).is_some());
    named.sort_by_key(|element| identity.position(order, element));
    stored_only.sort_by_key(|element| identity.position(stored, element).unwrap_or(usize::MAX));
    Ok(interleave(stored_only, named, stored, identity))
}

fn interleave(stored_only: Vec<Value>, named: Vec<Value>, stored: &[Value], identity: Identity<'_>) -> Vec<Value> {
    let mut result = Vec::with_capacity(stored_only.len() + named.len());
    let mut stored_only = stored_only.into_iter().peekable();
    let mut named = named.into_iter().peekable();
    while let (Some(old), Some(new)) = (stored_only.peek(), named.peek()) {
        let old_first = matches!(
            (identity.position(stored, old), identity.position(stored, new)),
            (Some(old), Some(new)) if old < new
        );
        let next = if old_first { stored_only.next() } else { named.next() };
        result.extend(next);
    }
    result.extend(stored_only);
    result.extend(named);
    result
}

/// Checks that the patch list names its elements in the order `$setElementOrder` gives
/// and names none it lacks (elements with `$patch` are not counted). An empty list on
/// either side checks nothing, as in Kubernetes.
pub(crate) fn check_patch_order(
    patch: &[Value],
    order: &[Value],
    identity: Identity<'_>,
    path: &str,
) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let data: Vec<&Value> = patch
        .iter()
        .filter(|element| element.as_object().is_none_or(|map| !map.contains_key(PATCH)))
        .collect();
    let mut remaining = order.iter();
    for element in data {
        let wanted = identity.require(element, path)?;
        let mut found = false;
        for entry in remaining.by_ref() {
            if json_equal(identity.require(entry, path)?, wanted) {
                found = true;
                break;
            }
        }
        if !found {
            return Err(fail(
                path,
                StrategicMergeFailure::OrderMismatch {
                    patch: Value::Array(patch.to_vec()),
                    order: Value::Array(order.to_vec()),
                },
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().map(|element| element["name"].as_str().unwrap()).collect()
    }

    fn by_name(names: &[&str]) -> Vec<Value> {
        names.iter().map(|name| json!({"name": name})).collect()
    }

    const NAME: Identity<'static> = Identity {
        merge_key: Some("name"),
    };

    #[test]
    fn a_patch_element_that_was_stored_keeps_its_place() {
        let stored = by_name(&["a", "b", "c"]);
        let merged = normalize(stored.clone(), &by_name(&["b"]), &stored, NAME, "").unwrap();
        assert_eq!(names(&merged), ["a", "b", "c"]);
    }

    #[test]
    fn a_new_element_goes_before_what_it_cannot_be_compared_with() {
        let stored = by_name(&["a", "b", "c"]);
        let merged = by_name(&["a", "b", "c", "d"]);
        assert_eq!(
            names(&normalize(merged.clone(), &by_name(&["d"]), &stored, NAME, "").unwrap()),
            ["d", "a", "b", "c"]
        );
        assert_eq!(
            names(&normalize(merged, &by_name(&["b", "d"]), &stored, NAME, "").unwrap()),
            ["a", "b", "d", "c"]
        );
    }

    /// The example of Kubernetes' design note: live B, C, A; patch A', B', D.
    #[test]
    fn the_design_note_example() {
        let stored = by_name(&["b", "c", "a"]);
        let merged = by_name(&["b", "c", "a", "d"]);
        let order = by_name(&["a", "b", "d"]);
        assert_eq!(
            names(&normalize(merged, &order, &stored, NAME, "").unwrap()),
            ["c", "a", "b", "d"]
        );
    }

    #[test]
    fn scalars_are_their_own_identity() {
        let identity = Identity { merge_key: None };
        let stored = vec![json!("x"), json!("y")];
        let merged = vec![json!("x"), json!("y"), json!("z")];
        let ordered = normalize(merged, &[json!("y"), json!("z")], &stored, identity, "").unwrap();
        assert_eq!(ordered, [json!("x"), json!("y"), json!("z")]);
    }

    #[test]
    fn elements_without_the_key_are_errors() {
        let stored = vec![json!({"image": "x"})];
        let error = normalize(stored.clone(), &[], &stored, NAME, "/c").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"strategic merge patch at "/c": map: {"image":"x"} does not contain declared merge key: name"#
        );
    }

    #[test]
    fn patch_order_must_follow_set_element_order() {
        let order = by_name(&["a", "b", "c"]);
        assert!(check_patch_order(&by_name(&["a", "c"]), &order, NAME, "").is_ok());
        let with_delete = vec![json!({"name": "z", "$patch": "delete"}), json!({"name": "b"})];
        assert!(check_patch_order(&with_delete, &order, NAME, "").is_ok());
        let error = check_patch_order(&by_name(&["c", "a"]), &order, NAME, "").unwrap_err();
        assert!(
            error.to_string().contains("doesn't match $setElementOrder list"),
            "{error}"
        );
        assert!(check_patch_order(&by_name(&["d"]), &order, NAME, "").is_err());
    }
}
