//! Scalar values, from the wire to JSON as Kubernetes' JSON form has them: integers
//! of every width as JSON numbers, bytes as standard base64 with padding, strings
//! only when they are UTF-8.

use serde_json::Value;

use super::descriptor::Scalar;
use super::wire::WireValue;

/// The JSON value of one scalar record.
pub fn to_json(scalar: Scalar, wire: WireValue<'_>) -> Result<Value, String> {
    let mismatch = || format!("a {} value where a {scalar:?} belongs", wire.wire_type_name());
    Ok(match (scalar, wire) {
        (Scalar::String, WireValue::Bytes(b)) => match std::str::from_utf8(b) {
            Ok(s) => Value::from(s),
            Err(_) => return Err("a string that is not UTF-8".into()),
        },
        (Scalar::Bytes, WireValue::Bytes(b)) => Value::from(base64(b)),
        (Scalar::Bool, WireValue::Varint(v)) => Value::from(v != 0),
        // A negative int32 travels as a 10-byte varint; its low 32 bits are the value.
        (Scalar::Int32 | Scalar::Enum, WireValue::Varint(v)) => Value::from(v as i32),
        (Scalar::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Scalar::UInt32, WireValue::Varint(v)) => Value::from(v as u32),
        (Scalar::UInt64, WireValue::Varint(v)) => Value::from(v),
        (Scalar::SInt32, WireValue::Varint(v)) => Value::from(zigzag(v) as i32),
        (Scalar::SInt64, WireValue::Varint(v)) => Value::from(zigzag(v)),
        (Scalar::Fixed32, WireValue::Fixed32(v)) => Value::from(v),
        (Scalar::SFixed32, WireValue::Fixed32(v)) => Value::from(v as i32),
        (Scalar::Fixed64, WireValue::Fixed64(v)) => Value::from(v),
        (Scalar::SFixed64, WireValue::Fixed64(v)) => Value::from(v as i64),
        (Scalar::Float, WireValue::Fixed32(v)) => finite(f64::from(f32::from_bits(v)))?,
        (Scalar::Double, WireValue::Fixed64(v)) => finite(f64::from_bits(v))?,
        _ => return Err(mismatch()),
    })
}

/// Whether a scalar holds its type's zero value, which Go does not tell from unset.
pub fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The scalars of a packed repeated field (one length-delimited record holding
/// several numbers back to back).
pub fn unpack(scalar: Scalar, packed: &[u8]) -> Result<Vec<Value>, String> {
    let width = match scalar {
        Scalar::String | Scalar::Bytes => return Err("strings and bytes cannot be packed".into()),
        Scalar::Fixed32 | Scalar::SFixed32 | Scalar::Float => Some(4),
        Scalar::Fixed64 | Scalar::SFixed64 | Scalar::Double => Some(8),
        _ => None,
    };
    let mut values = Vec::new();
    match width {
        Some(width) => {
            if !packed.len().is_multiple_of(width) {
                return Err(format!(
                    "{} packed bytes are not a whole number of {width}-byte values",
                    packed.len()
                ));
            }
            for chunk in packed.chunks(width) {
                let wire = if width == 4 {
                    WireValue::Fixed32(u32::from_le_bytes(chunk.try_into().expect("4 bytes")))
                } else {
                    WireValue::Fixed64(u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
                };
                values.push(to_json(scalar, wire)?);
            }
        }
        None => {
            let mut reader = PackedVarints { bytes: packed };
            while let Some(v) = reader.next_varint()? {
                values.push(to_json(scalar, WireValue::Varint(v))?);
            }
        }
    }
    Ok(values)
}

struct PackedVarints<'a> {
    bytes: &'a [u8],
}

impl PackedVarints<'_> {
    fn next_varint(&mut self) -> Result<Option<u64>, String> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let mut value = 0u64;
        for (i, byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(Some(value));
            }
        }
        Err("a packed varint is cut off or longer than 10 bytes".into())
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn finite(f: f64) -> Result<Value, String> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{f} has no JSON form"))
}

/// Standard base64 (RFC 4648 §4) with padding, as Go's JSON writes `[]byte`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn integers_keep_their_sign_and_width() {
        let varint = |v: u64| WireValue::Varint(v);
        assert_eq!(to_json(Scalar::Int32, varint(-5i64 as u64)).unwrap(), -5);
        assert_eq!(to_json(Scalar::Int64, varint(-5i64 as u64)).unwrap(), -5);
        assert_eq!(to_json(Scalar::Int64, varint(1 << 40)).unwrap(), 1u64 << 40);
        assert_eq!(to_json(Scalar::SInt32, varint(3)).unwrap(), -2);
        assert_eq!(to_json(Scalar::SInt64, varint(4)).unwrap(), 2);
        assert_eq!(to_json(Scalar::Bool, varint(1)).unwrap(), true);
        assert_eq!(
            to_json(Scalar::Double, WireValue::Fixed64(1.5f64.to_bits())).unwrap(),
            1.5
        );
        assert_eq!(to_json(Scalar::SFixed32, WireValue::Fixed32(-7i32 as u32)).unwrap(), -7);
    }

    #[test]
    fn refuses_what_json_cannot_hold() {
        let mismatch = to_json(Scalar::String, WireValue::Varint(3)).unwrap_err();
        assert_eq!(mismatch, "a varint value where a String belongs");
        assert!(to_json(Scalar::String, WireValue::Bytes(&[0xff])).is_err());
        assert!(to_json(Scalar::Double, WireValue::Fixed64(f64::NAN.to_bits())).is_err());
    }

    #[test]
    fn unpacks_packed_runs() {
        assert_eq!(unpack(Scalar::Int32, &[1, 0x96, 0x01, 3]).unwrap(), [1, 150, 3]);
        assert_eq!(unpack(Scalar::Fixed32, &[1, 0, 0, 0, 2, 0, 0, 0]).unwrap(), [1, 2]);
        assert!(unpack(Scalar::Fixed32, &[1, 0, 0]).is_err());
        assert!(unpack(Scalar::Int64, &[0x80]).is_err());
        assert!(unpack(Scalar::String, b"a").is_err());
    }

    #[test]
    fn zero_values_are_go_zero_values() {
        for zero in [Value::from(""), Value::from(0), Value::from(false), Value::from(0.0)] {
            assert!(is_zero(&zero), "{zero}");
        }
        for set in [Value::from("a"), Value::from(-1), Value::from(true)] {
            assert!(!is_zero(&set), "{set}");
        }
    }
}
