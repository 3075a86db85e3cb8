//! How each kind of field is written and read (see the module above for the rules).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use super::{JsonError, JsonMessage, Out, display_path, from_value, kind_of};

/// A field's JSON: `None` when the value is the default, which JSON leaves out.
pub trait Field: Sized {
    fn encode(&self) -> Option<Out>;
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError>;
}

fn wrong(path: &str, expected: &str, value: &Value) -> JsonError {
    JsonError(format!(
        "{}: expected {expected}, got {}",
        display_path(path),
        kind_of(value)
    ))
}

/// An integer given as a JSON number or as a string of digits, as proto3 JSON allows.
fn integer<T: TryFrom<i128> + Default>(value: &Value, path: &str, what: &str) -> Result<T, JsonError> {
    let parsed: Option<i128> = match value {
        Value::Null => return Ok(T::default()),
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(64))
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    let Some(parsed) = parsed else {
        return Err(wrong(path, &format!("{what} (a number or a string of digits)"), value));
    };
    T::try_from(parsed).map_err(|_| JsonError(format!("{}: {parsed} is out of range for {what}", display_path(path))))
}

impl Field for i64 {
    fn encode(&self) -> Option<Out> {
        (*self != 0).then(|| Out::string(self.to_string()))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        integer(value, path, "a 64-bit integer")
    }
}

impl Field for u64 {
    fn encode(&self) -> Option<Out> {
        (*self != 0).then(|| Out::string(self.to_string()))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        integer(value, path, "an unsigned 64-bit integer")
    }
}

impl Field for u32 {
    fn encode(&self) -> Option<Out> {
        (*self != 0).then(|| Out::Scalar(Value::from(*self)))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        integer(value, path, "an unsigned 32-bit integer")
    }
}

impl Field for bool {
    fn encode(&self) -> Option<Out> {
        self.then_some(Out::Scalar(Value::Bool(true)))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            other => Err(wrong(path, "true or false", other)),
        }
    }
}

impl Field for String {
    fn encode(&self) -> Option<Out> {
        (!self.is_empty()).then(|| Out::string(self.clone()))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            other => Err(wrong(path, "a string", other)),
        }
    }
}

/// Bytes: base64 in the standard alphabet out; in, either alphabet, padded or not.
impl Field for Vec<u8> {
    fn encode(&self) -> Option<Out> {
        (!self.is_empty()).then(|| Out::string(STANDARD.encode(self)))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        const LENIENT: GeneralPurposeConfig =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
        const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
        match value {
            Value::String(s) => STANDARD_LENIENT
                .decode(s)
                .or_else(|e| URL_SAFE_LENIENT.decode(s).map_err(|_| e))
                .map_err(|e| JsonError(format!("{}: {s:?} is not base64: {e}", display_path(path)))),
            Value::Null => Ok(Vec::new()),
            other => Err(wrong(path, "base64 bytes in a string", other)),
        }
    }
}

impl<M: JsonMessage> Field for Option<M> {
    fn encode(&self) -> Option<Out> {
        self.as_ref().map(|m| Out::Object(m.to_json()))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        match value {
            Value::Null => Ok(None),
            value => from_value(value, path).map(Some),
        }
    }
}

/// Repeated fields of messages, strings or bytes.
trait Repeatable: Sized {
    fn encode_item(&self) -> Out;
    fn decode_item(value: &Value, path: &str) -> Result<Self, JsonError>;
}

impl<M: JsonMessage> Repeatable for M {
    fn encode_item(&self) -> Out {
        Out::Object(self.to_json())
    }
    fn decode_item(value: &Value, path: &str) -> Result<Self, JsonError> {
        from_value(value, path)
    }
}

/// Repeated strings (`peerURLs`, `errors`) and repeated bytes (`keys`).
macro_rules! repeatable_scalar {
    ($($ty:ty),*) => {$(
        impl Field for Vec<$ty> {
            fn encode(&self) -> Option<Out> {
                (!self.is_empty()).then(|| {
                    // An item at its default is still an item (`""`).
                    Out::Array(self.iter().map(|item| item.encode().unwrap_or_else(|| Out::string(""))).collect())
                })
            }
            fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
                decode_array(value, path, |item, path| <$ty as Field>::decode(item, path))
            }
        }
    )*};
}

repeatable_scalar!(String, Vec<u8>);

impl<M: JsonMessage> Field for Vec<M> {
    fn encode(&self) -> Option<Out> {
        (!self.is_empty()).then(|| Out::Array(self.iter().map(Repeatable::encode_item).collect()))
    }
    fn decode(value: &Value, path: &str) -> Result<Self, JsonError> {
        decode_array(value, path, M::decode_item)
    }
}

fn decode_array<T>(
    value: &Value,
    path: &str,
    mut item: impl FnMut(&Value, &str) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, value)| item(value, &format!("{path}[{i}]")))
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(wrong(path, "an array", other)),
    }
}

/// A proto enum, which prost keeps as `i32` in messages.
pub trait ProtoEnum {
    fn name_of(value: i32) -> Option<&'static str>;
    fn value_of(name: &str) -> Option<i32>;
    /// Every name, for the error that lists them.
    fn names() -> Vec<&'static str>;
}

macro_rules! proto_enums {
    ($($ty:ty),* $(,)?) => {$(
        impl ProtoEnum for $ty {
            fn name_of(value: i32) -> Option<&'static str> {
                <$ty>::try_from(value).ok().map(|e| e.as_str_name())
            }
            fn value_of(name: &str) -> Option<i32> {
                <$ty>::from_str_name(name).map(|e| e as i32)
            }
            fn names() -> Vec<&'static str> {
                (0..).map_while(Self::name_of).collect()
            }
        }
    )*};
}

use berth_proto::authpb::permission::Type as PermissionType;
use berth_proto::etcdserverpb::{
    AlarmType, alarm_request::AlarmAction, compare::CompareResult, compare::CompareTarget, range_request::SortOrder,
    range_request::SortTarget, watch_create_request::FilterType,
};
use berth_proto::mvccpb::event::EventType;

proto_enums!(
    PermissionType,
    AlarmType,
    AlarmAction,
    CompareResult,
    CompareTarget,
    SortOrder,
    SortTarget,
    FilterType,
    EventType
);

/// An enum by name; a number no name has stays a number, as proto3 JSON writes it.
fn enum_value<E: ProtoEnum>(value: i32) -> Out {
    E::name_of(value).map_or_else(|| Out::Scalar(Value::from(value)), Out::string)
}

pub fn encode_enum<E: ProtoEnum>(value: i32) -> Option<Out> {
    (value != 0).then(|| enum_value::<E>(value))
}

pub fn encode_enums<E: ProtoEnum>(values: &[i32]) -> Option<Out> {
    (!values.is_empty()).then(|| Out::Array(values.iter().map(|v| enum_value::<E>(*v)).collect()))
}

pub fn decode_enum<E: ProtoEnum>(value: &Value, path: &str) -> Result<i32, JsonError> {
    match value {
        Value::String(name) => E::value_of(name).ok_or_else(|| {
            JsonError(format!(
                "{}: unknown value {name:?} (expected one of {})",
                display_path(path),
                E::names().join(", ")
            ))
        }),
        Value::Null => Ok(0),
        Value::Number(_) => integer(value, path, "an enum value"),
        other => Err(wrong(path, &format!("one of {}", E::names().join(", ")), other)),
    }
}

pub fn decode_enums<E: ProtoEnum>(value: &Value, path: &str) -> Result<Vec<i32>, JsonError> {
    decode_array(value, path, decode_enum::<E>)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rendered(out: Option<Out>) -> Option<String> {
        out.map(|out| out.render())
    }

    #[test]
    fn integers_are_strings_out_and_either_in() {
        assert_eq!(rendered(5i64.encode()).as_deref(), Some(r#""5""#));
        assert_eq!(0i64.encode(), None, "defaults are left out");
        assert_eq!(
            rendered(u64::MAX.encode()).as_deref(),
            Some(r#""18446744073709551615""#)
        );
        assert_eq!(i64::decode(&json!("12"), "limit"), Ok(12));
        assert_eq!(i64::decode(&json!(-3), "limit"), Ok(-3));
        assert_eq!(u64::decode(&json!("18446744073709551615"), "ID"), Ok(u64::MAX));
        let err = i64::decode(&json!("x"), "limit").unwrap_err();
        assert_eq!(
            err.0,
            "limit: expected a 64-bit integer (a number or a string of digits), got the string \"x\""
        );
        let err = u64::decode(&json!(-1), "ID").unwrap_err();
        assert_eq!(err.0, "ID: -1 is out of range for an unsigned 64-bit integer");
    }

    #[test]
    fn bytes_are_base64() {
        assert_eq!(rendered(b"foo".to_vec().encode()).as_deref(), Some(r#""Zm9v""#));
        assert_eq!(Vec::<u8>::decode(&json!("Zm9v"), "key"), Ok(b"foo".to_vec()));
        assert_eq!(Vec::<u8>::decode(&json!("YQ"), "key"), Ok(b"a".to_vec()), "unpadded");
        assert_eq!(
            Vec::<u8>::decode(&json!("-_8="), "key"),
            Ok(vec![0xfb, 0xff]),
            "URL-safe"
        );
        let err = Vec::<u8>::decode(&json!("!!"), "key").unwrap_err();
        assert!(err.0.starts_with("key: \"!!\" is not base64: "), "{err}");
        let err = Vec::<u8>::decode(&json!(3), "key").unwrap_err();
        assert_eq!(err.0, "key: expected base64 bytes in a string, got the number 3");
    }

    #[test]
    fn enums_are_names() {
        assert_eq!(
            rendered(encode_enum::<SortOrder>(SortOrder::Descend as i32)).as_deref(),
            Some(r#""DESCEND""#)
        );
        assert_eq!(encode_enum::<SortOrder>(0), None);
        assert_eq!(decode_enum::<SortOrder>(&json!("ASCEND"), "sort_order"), Ok(1));
        assert_eq!(decode_enum::<SortOrder>(&json!(2), "sort_order"), Ok(2));
        let err = decode_enum::<SortOrder>(&json!("UP"), "sort_order").unwrap_err();
        assert_eq!(
            err.0,
            "sort_order: unknown value \"UP\" (expected one of NONE, ASCEND, DESCEND)"
        );
    }
}
