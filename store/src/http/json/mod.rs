//! The etcd API's messages in JSON, as etcd's gRPC gateway writes and reads them
//! (proto3's JSON mapping with the .proto's own field names):
//!
//! - 64-bit integers are strings (`"revision":"5"`), 32-bit ones numbers;
//! - bytes are base64 (`"key":"Zm9v"`), enums their names (`"sort_order":"DESCEND"`);
//! - fields at their default (0, empty, false, the first enum value) are left out, a
//!   message field that is set is written even when empty (`"header":{}`).
//!
//! Requests are read as the gateway reads them: a field by its .proto name or its
//! lowerCamelCase JSON name (`range_end` or `rangeEnd`), an integer as a number or a
//! string, an enum by name or number, `null` as the default; unknown fields are
//! ignored. A value of the wrong kind is an error naming the field and the problem.
//!
//! Each message lists its fields once (`json_message!`); a field's Rust type picks
//! its encoding ([`Field`]), except enums, which prost keeps as `i32` and so are
//! marked (`as enum SortOrder`).

mod auth;
mod cluster;
mod field;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::fmt;

pub use field::{Field, ProtoEnum};
use serde_json::{Map, Value};

/// A request's object, as read.
pub type Object = Map<String, Value>;

/// A message's fields as written, in the .proto's order (etcd's gateway keeps it;
/// serde_json's own maps would sort the names).
pub type Fields = Vec<(&'static str, Out)>;

/// JSON on its way out.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Scalar(Value),
    Object(Fields),
    Array(Vec<Out>),
}

impl Out {
    pub fn string(s: impl Into<String>) -> Out {
        Out::Scalar(Value::String(s.into()))
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Out::Scalar(value) => out.push_str(&value.to_string()),
            Out::Object(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*name).to_string()).to_string());
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
            Out::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
        }
    }
}

/// A request body that is not what the API expects, said so that the sender can
/// find the problem (`compare[0].value: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message of the etcd API in the gateway's JSON.
pub trait JsonMessage: Default + Sized {
    fn to_json(&self) -> Fields;
    /// `path` names where the object sits in the request, for error messages.
    fn from_json(object: &Object, path: &str) -> Result<Self, JsonError>;
}

/// A whole request body: empty means the default message, as with etcd's gateway.
pub fn parse_request<M: JsonMessage>(body: &[u8]) -> Result<M, JsonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(M::default());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| JsonError(format!("the request body is not valid JSON: {e}")))?;
    from_value(&value, "")
}

/// A message from a JSON value that must be an object (or `null`, the default).
pub fn from_value<M: JsonMessage>(value: &Value, path: &str) -> Result<M, JsonError> {
    match value {
        Value::Object(object) => M::from_json(object, path),
        Value::Null => Ok(M::default()),
        other => Err(JsonError(format!(
            "{}: expected a JSON object, got {}",
            display_path(path),
            kind_of(other)
        ))),
    }
}

pub fn to_string<M: JsonMessage>(message: &M) -> String {
    Out::Object(message.to_json()).render()
}

/// Whether `key` names the field `proto_name`: by that name, or by the lowerCamelCase
/// name protoc derives from it (`range_end` → `rangeEnd`, `TTL` stays `TTL`).
pub fn names_field(key: &str, proto_name: &str) -> bool {
    if key == proto_name {
        return true;
    }
    let mut expected = proto_name.chars().peekable();
    let mut given = key.chars();
    while let Some(c) = expected.next() {
        let want = if c == '_' {
            match expected.next() {
                Some(next) => next.to_ascii_uppercase(),
                None => return given.next().is_none(),
            }
        } else {
            c
        };
        if given.next() != Some(want) {
            return false;
        }
    }
    given.next().is_none()
}

pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

pub fn display_path(path: &str) -> &str {
    if path.is_empty() { "the request body" } else { path }
}

pub fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Implements [`JsonMessage`] for a prost message from its fields:
/// `rust_field: "proto_name"`, with `as enum Type` (or `as enums Type` when repeated)
/// for enum fields.
macro_rules! json_message {
    ($ty:ty { $($field:ident : $name:literal $(as $kind:ident $enum_ty:ty)?),* $(,)? }) => {
        impl $crate::http::json::JsonMessage for $ty {
            fn to_json(&self) -> $crate::http::json::Fields {
                #[allow(unused_mut)]
                let mut fields = $crate::http::json::Fields::new();
                $(
                    if let Some(value) = $crate::http::json::encode_field!(self.$field $(, $kind $enum_ty)?) {
                        fields.push(($name, value));
                    }
                )*
                fields
            }

            fn from_json(
                object: &$crate::http::json::Object,
                path: &str,
            ) -> Result<Self, $crate::http::json::JsonError> {
                #[allow(unused_mut)]
                let mut message = Self::default();
                #[allow(unused_variables)]
                for (key, value) in object {
                    $(
                        if $crate::http::json::names_field(key, $name) {
                            let path = $crate::http::json::join(path, $name);
                            message.$field =
                                $crate::http::json::decode_field!(value, &path $(, $kind $enum_ty)?)?;
                            continue;
                        }
                    )*
                }
                let _ = path;
                Ok(message)
            }
        }
    };
}

macro_rules! encode_field {
    ($value:expr) => {
        $crate::http::json::Field::encode(&$value)
    };
    ($value:expr, enum $enum_ty:ty) => {
        $crate::http::json::field::encode_enum::<$enum_ty>($value)
    };
    ($value:expr, enums $enum_ty:ty) => {
        $crate::http::json::field::encode_enums::<$enum_ty>(&$value)
    };
}

macro_rules! decode_field {
    ($value:expr, $path:expr) => {
        $crate::http::json::Field::decode($value, $path)
    };
    ($value:expr, $path:expr, enum $enum_ty:ty) => {
        $crate::http::json::field::decode_enum::<$enum_ty>($value, $path)
    };
    ($value:expr, $path:expr, enums $enum_ty:ty) => {
        $crate::http::json::field::decode_enums::<$enum_ty>($value, $path)
    };
}

pub(crate) use {decode_field, encode_field, json_message};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_answer_to_both_their_names() {
        assert!(names_field("range_end", "range_end"));
        assert!(names_field("rangeEnd", "range_end"));
        assert!(names_field("TTL", "TTL"));
        assert!(names_field("grantedTTL", "grantedTTL"));
        assert!(names_field("remainingTTL", "remaining_TTL"));
        assert!(
            !names_field("ttl", "TTL"),
            "etcd's gateway does not take other spellings"
        );
        assert!(!names_field("range", "range_end"));
        assert!(!names_field("rangeEndX", "range_end"));
    }

    #[test]
    fn an_empty_body_is_the_default_request() {
        let request: berth_proto::etcdserverpb::RangeRequest = parse_request(b" \n").unwrap();
        assert_eq!(request, Default::default());
    }

    #[test]
    fn bad_json_is_named() {
        let err = parse_request::<berth_proto::etcdserverpb::RangeRequest>(b"{\"key\":").unwrap_err();
        assert!(err.0.starts_with("the request body is not valid JSON: EOF"), "{err}");
        let err = parse_request::<berth_proto::etcdserverpb::RangeRequest>(b"[1]").unwrap_err();
        assert_eq!(err.0, "the request body: expected a JSON object, got an array");
    }
}
