//! The messages whose JSON form is not an object of their fields, as Kubernetes
//! writes them:
//!
//! | message                  | wire fields                      | JSON                          |
//! |--------------------------|----------------------------------|-------------------------------|
//! | resource.Quantity        | 1 string                         | the string (`"500m"`)         |
//! | intstr.IntOrString       | 1 type, 2 intVal, 3 strVal       | a number (type 0) or a string |
//! | meta.v1.Time             | 1 seconds, 2 nanos               | RFC 3339, whole seconds       |
//! | meta.v1.MicroTime        | 1 seconds, 2 nanos               | RFC 3339, six fraction digits |
//! | meta.v1.Duration         | 1 nanoseconds                    | Go's duration string (`1m30s`)|
//! | runtime.RawExtension     | 1 raw bytes                      | the embedded JSON object      |
//! | meta.v1.FieldsV1         | 1 raw bytes                      | the embedded JSON object      |
//!
//! A `Time` or `MicroTime` with nothing on the wire is Go's zero time, which its
//! JSON form writes as `null`; so are empty raw bytes. Both are left out.

use std::collections::BTreeMap;

use serde_json::Value;

use super::wire::{Records, WireValue};
use berth_api::time::format_unix_rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Quantity,
    IntOrString,
    Time,
    MicroTime,
    Duration,
    /// `RawExtension` and `FieldsV1`: JSON carried as bytes.
    EmbeddedJson,
}

impl Special {
    /// The special form of a message, by its full name.
    pub fn of(message: &str) -> Option<Special> {
        Some(match message {
            "k8s.io.apimachinery.pkg.api.resource.Quantity" => Special::Quantity,
            "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
            "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => Special::Time,
            "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => Special::MicroTime,
            "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => Special::Duration,
            "k8s.io.apimachinery.pkg.runtime.RawExtension" | "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => {
                Special::EmbeddedJson
            }
            _ => return None,
        })
    }

    /// The JSON value of the message in `bytes`; `None` for Go's null forms.
    pub fn to_json(self, bytes: &[u8]) -> Result<Option<Value>, String> {
        let fields = last_values(bytes)?;
        let varint = |number: u32| match fields.get(&number) {
            None => Ok(0),
            Some(WireValue::Varint(v)) => Ok(*v),
            Some(other) => Err(format!("field {number} is {}, not a varint", other.wire_type_name())),
        };
        let bytes_of = |number: u32| match fields.get(&number) {
            None => Ok(&[][..]),
            Some(WireValue::Bytes(b)) => Ok(*b),
            Some(other) => Err(format!(
                "field {number} is {}, not length-delimited",
                other.wire_type_name()
            )),
        };
        let text = |number: u32| {
            std::str::from_utf8(bytes_of(number)?)
                .map(str::to_string)
                .map_err(|_| format!("field {number} is not UTF-8"))
        };
        Ok(Some(match self {
            // A Quantity with no string is Go's zero Quantity, written "0".
            Special::Quantity if !fields.contains_key(&1) => Value::from("0"),
            Special::Quantity => Value::from(text(1)?),
            Special::IntOrString => match varint(1)? {
                0 => Value::from(varint(2)? as i32),
                1 => Value::from(text(3)?),
                other => return Err(format!("IntOrString type {other} is neither 0 (int) nor 1 (string)")),
            },
            Special::Time | Special::MicroTime if fields.is_empty() => return Ok(None),
            Special::Time | Special::MicroTime => {
                // Go's time.Unix takes nanoseconds beyond a second and carries them over.
                let nanos = i64::from(varint(2)? as i32);
                let seconds = (varint(1)? as i64).saturating_add(nanos.div_euclid(1_000_000_000));
                let micros = (self == Special::MicroTime).then_some((nanos.rem_euclid(1_000_000_000) / 1_000) as u32);
                Value::from(format_unix_rfc3339(seconds, micros))
            }
            Special::Duration => Value::from(go_duration(varint(1)? as i64)),
            Special::EmbeddedJson => {
                let raw = bytes_of(1)?;
                if raw.is_empty() {
                    return Ok(None);
                }
                if raw.starts_with(&super::MAGIC) {
                    super::decode(raw).map_err(|e| e.message)?
                } else {
                    serde_json::from_slice(raw).map_err(|e| format!("the embedded object is not JSON: {e}"))?
                }
            }
        }))
    }
}

/// Each field's last value, as protobuf reads a repeated scalar field.
fn last_values(bytes: &[u8]) -> Result<BTreeMap<u32, WireValue<'_>>, String> {
    let mut fields = BTreeMap::new();
    for record in Records::new(bytes) {
        let (number, value) = record?;
        fields.insert(number, value);
    }
    Ok(fields)
}

/// A duration as Go's `time.Duration.String` writes it: `0s`, `1.5µs`, `250ms`,
/// `1m30s`, `2h0m0s`, `-3s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    if n < SECOND {
        let (scale, unit) = match n {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", decimal(n, scale));
    }
    let seconds = n / SECOND;
    let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&decimal(n % (60 * SECOND), SECOND));
    out.push('s');
    out
}

/// `n / scale` with its fraction, without trailing zeros (`1500, 1000` → `1.5`).
fn decimal(n: u64, scale: u64) -> String {
    let (whole, fraction) = (n / scale, n % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::super::wire::testing::{bytes, int, message};
    use super::*;

    fn json(special: Special, records: &[Vec<u8>]) -> Option<Value> {
        special.to_json(&message(records)).unwrap()
    }

    #[test]
    fn durations_read_like_go() {
        let second = 1_000_000_000;
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (250_000_000, "250ms"),
            (second, "1s"),
            (1_500_000_000, "1.5s"),
            (90 * second, "1m30s"),
            (3600 * second, "1h0m0s"),
            (3725 * second + 5_000_000, "1h2m5.005s"),
            (-3 * second, "-3s"),
        ] {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
        assert_eq!(json(Special::Duration, &[int(1, 90 * second)]).unwrap(), "1m30s");
    }

    #[test]
    fn times_are_rfc_3339_and_empty_is_null() {
        let at = [int(1, 1_795_400_310), int(2, 7_500_123)];
        assert_eq!(json(Special::Time, &at).unwrap(), "2026-11-23T02:18:30Z");
        assert_eq!(json(Special::MicroTime, &at).unwrap(), "2026-11-23T02:18:30.007500Z");
        assert_eq!(json(Special::Time, &[]), None);
        // The epoch itself is a time, not Go's zero time.
        assert_eq!(
            json(Special::Time, &[int(1, 0), int(2, 0)]).unwrap(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            json(Special::MicroTime, &[int(1, 0), int(2, 1_000_002_000)]).unwrap(),
            "1970-01-01T00:00:01.000002Z"
        );
    }

    #[test]
    fn quantities_and_int_or_strings() {
        assert_eq!(json(Special::Quantity, &[bytes(1, "500m")]).unwrap(), "500m");
        assert_eq!(json(Special::Quantity, &[]).unwrap(), "0");
        assert_eq!(
            json(Special::IntOrString, &[int(1, 0), int(2, 8080), bytes(3, "")]).unwrap(),
            8080
        );
        assert_eq!(
            json(Special::IntOrString, &[int(1, 1), int(2, 0), bytes(3, "25%")]).unwrap(),
            "25%"
        );
        assert_eq!(json(Special::IntOrString, &[int(1, 0), int(2, -1)]).unwrap(), -1);
        let bad = Special::IntOrString.to_json(&message(&[int(1, 2)])).unwrap_err();
        assert!(bad.contains("type 2"), "{bad}");
    }

    #[test]
    fn raw_bytes_embed_their_json() {
        let raw = json(Special::EmbeddedJson, &[bytes(1, r#"{"f:metadata":{}}"#)]).unwrap();
        assert_eq!(raw, serde_json::json!({"f:metadata": {}}));
        assert_eq!(json(Special::EmbeddedJson, &[]), None);
        assert!(Special::EmbeddedJson.to_json(&message(&[bytes(1, "{")])).is_err());
    }
}
