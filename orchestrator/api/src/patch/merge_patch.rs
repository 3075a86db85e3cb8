//! JSON merge patch (RFC 7386), `application/merge-patch+json`, which
//! `kubectl patch --type merge` sends: objects merge member by member, `null` removes a
//! member, and anything else (lists included) replaces what it patches.

use serde_json::{Map, Value};

/// Applies the merge patch `patch` to `original`. Every document is a valid merge patch,
/// so this cannot fail.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let Value::Object(members) = patch else {
        return patch.clone();
    };
    let mut target = match original {
        Value::Object(target) => target.clone(),
        _ => Map::new(),
    };
    for (name, value) in members {
        if value.is_null() {
            target.remove(name);
        } else {
            let merged = merge_patch(target.get(name).unwrap_or(&Value::Null), value);
            target.insert(name.clone(), merged);
        }
    }
    Value::Object(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The test vectors of RFC 7386, appendix A: (original, patch, result).
    #[test]
    fn rfc_7386_appendix_a() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":"b","b":"c"}), json!({"a":null}), json!({"b":"c"})),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (json!({}), json!({"a":{"bb":{"ccc":null}}}), json!({"a":{"bb":{}}})),
        ];
        for (original, patch, expected) in cases {
            assert_eq!(merge_patch(&original, &patch), expected, "{original} + {patch}");
        }
    }

    #[test]
    fn null_deletes_labels_and_lists_are_replaced() {
        let deployment = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "x"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "http", "image": "python:3.11", "command": ["python"]}
            ]}}}
        });
        let patched = merge_patch(
            &deployment,
            &json!({
                "metadata": {"labels": {"tier": null, "new": "y"}},
                "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "http", "image": "python:3.12"}]}}}
            }),
        );
        assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "new": "y"}));
        assert_eq!(patched["metadata"]["name"], "web");
        assert_eq!(patched["spec"]["replicas"], 4);
        // A merge patch knows no merge keys: the container list is replaced, command and all.
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"],
            json!([{"name": "http", "image": "python:3.12"}])
        );
    }
}
