//! Equality of JSON values as the patch formats mean it: numbers compare by value (RFC
//! 6902's `test` says so, and a merge key of `80` must find the element keyed `80.0`),
//! objects by members regardless of order, arrays element by element.

use serde_json::Value;

/// Whether `left` and `right` are the same JSON value.
pub(crate) fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_i64(), r.as_i64(), l.as_u64(), r.as_u64()) {
            (Some(l), Some(r), _, _) => l == r,
            (_, _, Some(l), Some(r)) => l == r,
            _ => l.as_f64() == r.as_f64(),
        },
        (Value::Array(l), Value::Array(r)) => l.len() == r.len() && l.iter().zip(r).all(|(l, r)| json_equal(l, r)),
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .all(|(name, value)| r.get(name).is_some_and(|other| json_equal(value, other)))
        }
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_equal(&json!(80), &json!(80.0)));
        assert!(json_equal(&json!(-1), &json!(-1.0)));
        assert!(!json_equal(&json!(80), &json!(81)));
        assert!(!json_equal(&json!(80), &json!("80")));
    }

    #[test]
    fn containers_compare_deeply() {
        assert!(json_equal(&json!({"a": [1, {"b": 2}]}), &json!({"a": [1.0, {"b": 2}]})));
        assert!(!json_equal(&json!({"a": [1, 2]}), &json!({"a": [2, 1]})));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }
}
