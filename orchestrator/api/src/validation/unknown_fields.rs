//! Fields a sent object has that its kind does not define, found by comparing it
//! with the same object decoded into its kind's type and encoded again.

/// The paths of fields in `sent` that `kept` (the same object after decoding into
/// its kind's type and encoding again) lost: the fields the kind does not define.
/// A field sent as `null` is absent, not unknown.
pub fn unknown_fields(sent: &serde_json::Value, kept: &serde_json::Value) -> Vec<String> {
    /// One step of the path to a field: a member's name or an item's index. The
    /// path is spelt out only for a field found unknown.
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    fn spelt(path: &[Step]) -> String {
        let mut out = String::new();
        for step in path {
            match step {
                Step::Key(key) if out.is_empty() => out.push_str(key),
                Step::Key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
    fn walk<'a>(
        sent: &'a serde_json::Value,
        kept: &serde_json::Value,
        path: &mut Vec<Step<'a>>,
        found: &mut Vec<String>,
    ) {
        use serde_json::Value;
        match (sent, kept) {
            (Value::Object(sent), Value::Object(kept)) => {
                for (key, value) in sent {
                    path.push(Step::Key(key));
                    match kept.get(key) {
                        Some(kept) => walk(value, kept, path, found),
                        None if value.is_null() => {}
                        None => found.push(spelt(path)),
                    }
                    path.pop();
                }
            }
            (Value::Array(sent), Value::Array(kept)) if sent.len() == kept.len() => {
                for (i, (sent, kept)) in sent.iter().zip(kept).enumerate() {
                    path.push(Step::Index(i));
                    walk(sent, kept, path, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(sent, kept, &mut Vec::new(), &mut found);
    found
}
