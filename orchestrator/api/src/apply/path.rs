//! Where a field is in an object, as server-side apply names it: a path of elements,
//! each a field name, the key of an item of a keyed list, the value of an item of a
//! set, or an index. Two spellings, both Kubernetes':
//!
//! | element            | in `fieldsV1`               | in messages (`Display`)     |
//! |--------------------|-----------------------------|-----------------------------|
//! | field `replicas`   | `f:replicas`                | `.replicas`                 |
//! | item keyed `name`  | `k:{"name":"c"}`            | `[name="c"]`                |
//! | set item           | `v:"example.com/guard"`     | `[="example.com/guard"]`    |
//! | index              | `i:3`                       | `[3]`                       |
//!
//! Keys and values are held as canonical JSON (compact, object members sorted by
//! name, whole floats as integers), so equal keys are equal strings and the order is
//! total without comparing JSON values.

use std::fmt;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object, or a member of a map.
    Field(String),
    /// An item of a keyed list, by its key fields: canonical JSON of an object.
    Key(String),
    /// An item of a set, by its value: canonical JSON.
    Value(String),
    /// An item by position. berth never records these; they are read and kept.
    Index(usize),
}

impl PathElement {
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    /// The element of a keyed list's item whose key fields have these values.
    pub fn key(fields: Map<String, Value>) -> PathElement {
        PathElement::Key(canonical(&Value::Object(fields)))
    }

    /// The element of a set's item.
    pub fn value(value: &Value) -> PathElement {
        PathElement::Value(canonical(value))
    }

    /// The spelling in `fieldsV1`: `f:name`, `k:{...}`, `v:...`, `i:3`.
    pub fn to_fields_v1(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(key) => format!("k:{key}"),
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// Reads the spelling in `fieldsV1`.
    pub fn from_fields_v1(text: &str) -> Result<PathElement, String> {
        let (prefix, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("unexpected path element {text:?}: no prefix"))?;
        let json = |rest: &str| {
            serde_json::from_str::<Value>(rest).map_err(|e| format!("invalid JSON in path element {text:?}: {e}"))
        };
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "k" => match json(rest)? {
                key @ Value::Object(_) => Ok(PathElement::Key(canonical(&key))),
                _ => Err(format!("the key of path element {text:?} is not an object")),
            },
            "v" => Ok(PathElement::Value(canonical(&json(rest)?))),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|_| format!("the index of path element {text:?} is not a number")),
            _ => Err(format!("unknown path element prefix in {text:?}")),
        }
    }
}

/// Kubernetes' spelling in conflict messages: `.spec`, `[name="c"]`, `[="x"]`, `[3]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(key) => {
                let fields = match serde_json::from_str::<Value>(key) {
                    Ok(Value::Object(fields)) => fields,
                    _ => Map::new(),
                };
                let pairs: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", message_text(value)))
                    .collect();
                write!(f, "[{}]", pairs.join(","))
            }
            PathElement::Value(value) => {
                let value = serde_json::from_str(value).unwrap_or(Value::Null);
                write!(f, "[={}]", message_text(&value))
            }
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A field's full path from the object's root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A path of field names: `Path::fields(&["spec", "replicas"])`.
    pub fn fields(names: &[&str]) -> Path {
        Path(names.iter().map(|name| PathElement::field(name)).collect())
    }
}

/// `.spec.template.spec.containers[name="c"].image`
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|element| write!(f, "{element}"))
    }
}

/// Compact JSON with object members sorted by name and whole floats written as
/// integers.
pub(crate) fn canonical(value: &Value) -> String {
    serde_json::to_string(&normalized(value)).expect("JSON values serialize")
}

fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        // serde_json's map keeps its members sorted by name.
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), normalized(value)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// A value as Kubernetes prints it in a path: strings quoted, the rest as JSON.
fn message_text(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(message_text).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(value: Value) -> PathElement {
        match value {
            Value::Object(fields) => PathElement::key(fields),
            _ => unreachable!(),
        }
    }

    #[test]
    fn paths_print_as_kubernetes_prints_them() {
        let path = Path(vec![
            PathElement::field("spec"),
            PathElement::field("containers"),
            key(json!({"name": "c"})),
            PathElement::field("ports"),
            key(json!({"protocol": "TCP", "containerPort": 80})),
        ]);
        assert_eq!(
            path.to_string(),
            r#".spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]"#
        );
        let finalizer = Path(vec![
            PathElement::field("metadata"),
            PathElement::field("finalizers"),
            PathElement::value(&json!("example.com/guard")),
        ]);
        assert_eq!(finalizer.to_string(), r#".metadata.finalizers[="example.com/guard"]"#);
        assert_eq!(
            Path(vec![PathElement::field("args"), PathElement::Index(3)]).to_string(),
            ".args[3]"
        );
        assert_eq!(Path::fields(&["spec", "replicas"]).to_string(), ".spec.replicas");
    }

    #[test]
    fn elements_read_back_what_they_write() {
        let elements = [
            PathElement::field("replicas"),
            PathElement::field("with:colon"),
            key(json!({"name": "c"})),
            key(json!({"protocol": "UDP", "containerPort": 53})),
            PathElement::value(&json!("x")),
            PathElement::value(&json!(7)),
            PathElement::Index(2),
        ];
        for element in elements {
            let text = element.to_fields_v1();
            assert_eq!(PathElement::from_fields_v1(&text), Ok(element), "{text}");
        }
        assert_eq!(
            key(json!({"protocol": "TCP", "containerPort": 80})).to_fields_v1(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        assert_eq!(PathElement::value(&json!("a")).to_fields_v1(), r#"v:"a""#);
    }

    #[test]
    fn keys_are_canonical() {
        // Kubernetes writes keys compactly with sorted fields; a client's spacing or
        // order, or a whole float, names the same item.
        let spaced = PathElement::from_fields_v1(r#"k:{ "protocol": "TCP", "containerPort": 80.0 }"#).unwrap();
        assert_eq!(spaced, key(json!({"containerPort": 80, "protocol": "TCP"})));
        assert!(PathElement::field("a") < key(json!({"name": "a"})));
        assert!(key(json!({"name": "a"})) < PathElement::value(&json!("a")));
    }

    #[test]
    fn malformed_elements_are_refused() {
        for text in ["replicas", "x:y", "k:[1]", "k:{", "i:x", "v:"] {
            assert!(PathElement::from_fields_v1(text).is_err(), "{text}");
        }
    }
}
