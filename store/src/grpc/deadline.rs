//! A call's deadline, from the `grpc-timeout` header its client sent (gRPC over
//! HTTP/2: one to eight digits and a unit, `H`, `M`, `S`, `m`, `u` or `n`). A request
//! waits for a leader, a commit or a read index until then, or until etcd's request
//! timeout when that comes first (see `Store::until`).

use std::time::Duration;

use tokio::time::Instant;
use tonic::Request;

use crate::error::{Result, StoreError};

const HEADER: &str = "grpc-timeout";

/// The store handle that serves `request`: one whose requests end at the call's
/// deadline, if the client set one.
pub fn store_for<T>(store: &crate::store::Store, request: &Request<T>) -> Result<crate::store::Store> {
    let deadline = match request.metadata().get(HEADER) {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| malformed(&String::from_utf8_lossy(value.as_encoded_bytes()), "it is not ASCII"))?;
            Some(Instant::now() + parse(text)?)
        }
    };
    Ok(store.until(deadline))
}

/// The duration a `grpc-timeout` value names.
pub fn parse(text: &str) -> Result<Duration> {
    let Some(unit) = text.chars().last() else {
        return Err(malformed(text, "it is empty"));
    };
    let per_unit: fn(u64) -> Duration = match unit {
        'H' => |v| Duration::from_secs(v * 3600),
        'M' => |v| Duration::from_secs(v * 60),
        'S' => Duration::from_secs,
        'm' => Duration::from_millis,
        'u' => Duration::from_micros,
        'n' => Duration::from_nanos,
        _ => return Err(malformed(text, "the unit must be one of H, M, S, m, u, n")),
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(text, "the value must be 1 to 8 digits"));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| malformed(text, "the value is not a number"))?;
    Ok(per_unit(value))
}

fn malformed(text: &str, why: &str) -> StoreError {
    StoreError::InvalidArgument(format!("malformed grpc-timeout {text:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_is_read() {
        let cases = [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("5S", Duration::from_secs(5)),
            ("4999m", Duration::from_millis(4999)),
            ("99999999u", Duration::from_micros(99_999_999)),
            ("7n", Duration::from_nanos(7)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn a_malformed_timeout_is_refused_naming_the_problem() {
        let cases = [
            ("", "it is empty"),
            ("S", "1 to 8 digits"),
            ("123456789S", "1 to 8 digits"),
            ("-5S", "1 to 8 digits"),
            ("5s", "the unit must be"),
            ("5", "the unit must be"),
        ];
        for (text, why) in cases {
            let err = parse(text).unwrap_err();
            let StoreError::InvalidArgument(message) = &err else {
                panic!("{text:?}: {err:?}");
            };
            assert!(
                message.contains("grpc-timeout") && message.contains(why),
                "{text:?}: {message}"
            );
        }
    }
}
