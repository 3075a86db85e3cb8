//! One message's bytes to the JSON object Kubernetes' JSON form has for the same Go
//! value, guided by the descriptor table:
//!
//! ```text
//! record (number, wire value) ──► field of the message (unknown numbers: skipped,
//!   │                             as a newer client's fields are)
//!   ├─ scalar ──► JSON scalar; a zero value of a field Go does not keep behind a
//!   │             pointer is "not set" there, so it is left out
//!   ├─ message ─► special form (special.rs), or a nested object; an inline
//!   │             (embedded) one adds its fields to this object
//!   ├─ repeated ► appended to an array (packed runs unpacked)
//!   └─ map ─────► entry (1 key, 2 value) into an object
//! ```
//!
//! Errors name the JSON path of the field at fault (`spec.template.spec.containers[0]`).

use serde_json::{Map, Value};

use super::descriptor::{self, Field, Message, Scalar, Shape, ValueType};
use super::scalar;
use super::special::Special;
use super::wire::{Records, WireValue};

/// The JSON object of `message` encoded in `bytes`; `path` names it in errors.
pub fn to_object(message: &'static Message, bytes: &[u8], path: &str) -> Result<Map<String, Value>, String> {
    let mut object = Map::new();
    decode_into(message, bytes, &mut object, path)?;
    Ok(object)
}

fn decode_into(
    message: &'static Message,
    bytes: &[u8],
    object: &mut Map<String, Value>,
    path: &str,
) -> Result<(), String> {
    for record in Records::new(bytes) {
        let (number, wire) = record.map_err(|e| at(path, &e))?;
        let Some(field) = message.field(number) else {
            continue;
        };
        let field_path = if path.is_empty() {
            field.json_name.to_string()
        } else {
            format!("{path}.{}", field.json_name)
        };
        match field.shape {
            Shape::Single => single(field, wire, object, path, &field_path)?,
            Shape::Repeated => repeated(field, wire, object, &field_path)?,
            Shape::Map { key } => map_entry(field, key, wire, object, &field_path)?,
        }
    }
    Ok(())
}

fn at(path: &str, problem: &str) -> String {
    if path.is_empty() {
        problem.to_string()
    } else {
        format!("{path}: {problem}")
    }
}

fn length_delimited<'a>(wire: WireValue<'a>, path: &str) -> Result<&'a [u8], String> {
    match wire {
        WireValue::Bytes(bytes) => Ok(bytes),
        other => Err(at(
            path,
            &format!("a {} value where a message belongs", other.wire_type_name()),
        )),
    }
}

/// A single value: the last one on the wire wins, and messages merge, as protobuf
/// reads them.
fn single(
    field: &Field,
    wire: WireValue<'_>,
    object: &mut Map<String, Value>,
    parent_path: &str,
    path: &str,
) -> Result<(), String> {
    let name = field.json_name.to_string();
    match field.value {
        ValueType::Scalar(kind) => {
            let value = scalar::to_json(kind, wire).map_err(|e| at(path, &e))?;
            if !field.is_pointer && scalar::is_zero(&value) {
                object.remove(&name);
            } else {
                object.insert(name, value);
            }
        }
        ValueType::Message(index) => {
            let bytes = length_delimited(wire, path)?;
            let message = descriptor::at(index);
            if let Some(special) = Special::of(message.name) {
                match special.to_json(bytes).map_err(|e| at(path, &e))? {
                    Some(value) => object.insert(name, value),
                    None => object.remove(&name),
                };
            } else if field.is_inline {
                decode_into(message, bytes, object, parent_path)?;
            } else {
                let nested = object.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if !nested.is_object() {
                    *nested = Value::Object(Map::new());
                }
                let Value::Object(nested) = nested else {
                    unreachable!("made an object above")
                };
                decode_into(message, bytes, nested, path)?;
            }
        }
    }
    Ok(())
}

/// One value of a message type, as an element of an array or a map.
fn element(value: ValueType, wire: WireValue<'_>, path: &str) -> Result<Value, String> {
    match value {
        ValueType::Scalar(kind) => scalar::to_json(kind, wire).map_err(|e| at(path, &e)),
        ValueType::Message(index) => {
            let bytes = length_delimited(wire, path)?;
            let message = descriptor::at(index);
            match Special::of(message.name) {
                Some(special) => Ok(special.to_json(bytes).map_err(|e| at(path, &e))?.unwrap_or(Value::Null)),
                None => to_object(message, bytes, path).map(Value::Object),
            }
        }
    }
}

fn repeated(field: &Field, wire: WireValue<'_>, object: &mut Map<String, Value>, path: &str) -> Result<(), String> {
    let array = object
        .entry(field.json_name.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !array.is_array() {
        *array = Value::Array(Vec::new());
    }
    let Value::Array(array) = array else {
        unreachable!("made an array above")
    };
    let index_path = format!("{path}[{}]", array.len());
    match (field.value, wire) {
        (ValueType::Scalar(kind), WireValue::Bytes(packed)) if !matches!(kind, Scalar::String | Scalar::Bytes) => {
            array.extend(scalar::unpack(kind, packed).map_err(|e| at(&index_path, &e))?);
        }
        (value, wire) => array.push(element(value, wire, &index_path)?),
    }
    Ok(())
}

fn map_entry(
    field: &Field,
    key_type: Scalar,
    wire: WireValue<'_>,
    object: &mut Map<String, Value>,
    path: &str,
) -> Result<(), String> {
    let entry = length_delimited(wire, path)?;
    let (mut key, mut value) = (None, None);
    for record in Records::new(entry) {
        match record.map_err(|e| at(path, &e))? {
            (1, wire) => key = Some(scalar::to_json(key_type, wire).map_err(|e| at(path, &format!("key: {e}")))?),
            (2, wire) => value = Some(wire),
            _ => {}
        }
    }
    // An entry without a key or value has the type's zero value there.
    let key = match key {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None if key_type == Scalar::String => String::new(),
        None => "0".into(),
    };
    let entry_path = format!("{path}[{key:?}]");
    let value = match value {
        Some(wire) => element(field.value, wire, &entry_path)?,
        None => element(field.value, zero_wire(field.value), &entry_path)?,
    };
    let map = object
        .entry(field.json_name.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !map.is_object() {
        *map = Value::Object(Map::new());
    }
    if let Value::Object(map) = map {
        map.insert(key, value);
    }
    Ok(())
}

/// The wire value of a type's zero value, for a map entry that leaves it out.
fn zero_wire(value: ValueType) -> WireValue<'static> {
    match value {
        ValueType::Scalar(Scalar::Fixed32 | Scalar::SFixed32 | Scalar::Float) => WireValue::Fixed32(0),
        ValueType::Scalar(Scalar::Fixed64 | Scalar::SFixed64 | Scalar::Double) => WireValue::Fixed64(0),
        ValueType::Scalar(Scalar::String | Scalar::Bytes) | ValueType::Message(_) => WireValue::Bytes(&[]),
        ValueType::Scalar(_) => WireValue::Varint(0),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::wire::testing::{bytes, int, message};
    use super::*;

    fn decode(name: &str, records: &[Vec<u8>]) -> Result<Value, String> {
        let message = descriptor::message(name).unwrap();
        to_object(message, &super::super::wire::testing::message(records), "").map(Value::Object)
    }

    const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta";

    #[test]
    fn go_zero_values_are_left_out_unless_behind_a_pointer() {
        // ObjectMeta: 1 name, 2 generateName, 3 namespace; generation (7) is a
        // plain int64, deletionGracePeriodSeconds (10) an *int64.
        let meta = decode(
            META,
            &[bytes(1, "web"), bytes(2, ""), bytes(3, ""), int(7, 0), int(10, 0)],
        )
        .unwrap();
        assert_eq!(meta, json!({"name": "web", "deletionGracePeriodSeconds": 0}));
        // DeploymentSpec: replicas (1) is an *int32 and 0 means zero replicas;
        // paused (7) is a plain bool.
        let spec = decode("k8s.io.api.apps.v1.DeploymentSpec", &[int(1, 0), int(7, 0)]).unwrap();
        assert_eq!(spec, json!({"replicas": 0}));
    }

    #[test]
    fn maps_repeated_fields_and_nested_messages() {
        let label = |k: &str, v: &str| bytes(11, message(&[bytes(1, k), bytes(2, v)]));
        let meta = decode(
            META,
            &[
                label("app", "web"),
                label("tier", ""),
                bytes(12, message(&[bytes(1, "note")])),
            ],
        )
        .unwrap();
        // A label may be empty: map values are kept as they are.
        assert_eq!(
            meta,
            json!({"labels": {"app": "web", "tier": ""}, "annotations": {"note": ""}})
        );
        let container = |name: &str, args: &[&str]| {
            let mut records = vec![bytes(1, name)];
            records.extend(args.iter().map(|a| bytes(4, a)));
            bytes(2, message(&records))
        };
        let spec = decode(
            "k8s.io.api.core.v1.PodSpec",
            &[container("a", &["sleep", "1000"]), container("b", &[])],
        )
        .unwrap();
        assert_eq!(
            spec,
            json!({"containers": [{"name": "a", "args": ["sleep", "1000"]}, {"name": "b"}]})
        );
    }

    #[test]
    fn special_messages_take_their_json_form() {
        // ResourceRequirements: 1 limits, 2 requests (maps of Quantity).
        let quantity = |k: &str, v: &str| message(&[bytes(1, k), bytes(2, message(&[bytes(1, v)]))]);
        let resources = decode(
            "k8s.io.api.core.v1.ResourceRequirements",
            &[bytes(1, quantity("cpu", "500m")), bytes(2, quantity("memory", "64Mi"))],
        )
        .unwrap();
        assert_eq!(
            resources,
            json!({"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}})
        );
        // ObjectMeta.creationTimestamp (8) empty: Go's zero time, null in JSON.
        let meta = decode(META, &[bytes(1, "x"), bytes(8, [])]).unwrap();
        assert_eq!(meta, json!({"name": "x"}));
        // RollingUpdateDeployment: 1 maxUnavailable, 2 maxSurge (IntOrString).
        let rolling = decode(
            "k8s.io.api.apps.v1.RollingUpdateDeployment",
            &[
                bytes(1, message(&[int(1, 1), int(2, 0), bytes(3, "25%")])),
                bytes(2, message(&[int(1, 0), int(2, 2), bytes(3, "")])),
            ],
        )
        .unwrap();
        assert_eq!(rolling, json!({"maxUnavailable": "25%", "maxSurge": 2}));
    }

    #[test]
    fn inline_structs_add_their_fields() {
        // Probe: 1 handler (inline ProbeHandler: 1 exec {1 command}), 2 initialDelaySeconds.
        let probe = decode(
            "k8s.io.api.core.v1.Probe",
            &[bytes(1, message(&[bytes(1, message(&[bytes(1, "true")]))])), int(2, 5)],
        )
        .unwrap();
        assert_eq!(probe, json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 5}));
    }

    #[test]
    fn bytes_are_base64_and_unknown_fields_are_skipped() {
        // Secret: 2 data (map<string, bytes>), 99 is no field of Secret.
        let secret = decode(
            "k8s.io.api.core.v1.Secret",
            &[bytes(2, message(&[bytes(1, "k"), bytes(2, "foo")])), int(99, 1)],
        )
        .unwrap();
        assert_eq!(secret, json!({"data": {"k": "Zm9v"}}));
    }

    #[test]
    fn errors_name_the_field() {
        let spec = "k8s.io.api.core.v1.PodSpec";
        let wrong_type = decode(spec, &[bytes(2, message(&[int(1, 3)]))]).unwrap_err();
        assert_eq!(wrong_type, "containers[0].name: a varint value where a String belongs");
        let cut = decode(spec, &[bytes(2, message(&[bytes(1, "a")]))[..4].to_vec()]).unwrap_err();
        assert!(cut.contains("announced"), "{cut}");
        let not_utf8 = decode(spec, &[bytes(2, message(&[bytes(1, [0xff])]))]).unwrap_err();
        assert_eq!(not_utf8, "containers[0].name: a string that is not UTF-8");
    }
}
