//! Go's duration syntax, which etcd's duration flags take (`500ms`, `1h30m`), read into
//! milliseconds. Public because the orchestrator's flags take the same syntax.

use super::FlagError;

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers, each
/// with an optional fraction and a unit out of `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`,
/// as in "500ms", "1.5h" or "1h30m"; "0" needs no unit. Negative durations are refused,
/// since nothing berth configures can go back in time. Truncates to whole milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, FlagError> {
    const NANOS_PER_MS: u128 = 1_000_000;
    // Go's limit: a duration is an i64 count of nanoseconds.
    const MAX_NANOS: u128 = i64::MAX as u128;
    let invalid = |reason: &str| FlagError::InvalidDuration {
        value: s.to_string(),
        reason: reason.to_string(),
    };

    let unsigned = s.strip_prefix('+').unwrap_or(s);
    if unsigned.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    if unsigned == "0" {
        return Ok(0);
    }
    if unsigned.is_empty() {
        return Err(invalid("empty duration"));
    }

    let mut rest = unsigned;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let integer_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (integer, after_integer) = rest.split_at(integer_len);
        let (fraction, after_number) = match after_integer.strip_prefix('.') {
            Some(after_dot) => {
                let len = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
                after_dot.split_at(len)
            }
            None => ("", after_integer),
        };
        if integer.is_empty() && fraction.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "" => return Err(invalid("missing unit (one of ns, us, ms, s, m, h)")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 60 * 60 * 1_000_000_000,
            _ => return Err(invalid(&format!("unknown unit {unit:?}"))),
        };

        let too_long = || invalid("too long (Go durations stop near 292 years)");
        let integer_value: u128 = if integer.is_empty() {
            0
        } else {
            integer.parse().map_err(|_| too_long())?
        };
        let mut nanos = integer_value.checked_mul(unit_nanos).ok_or_else(too_long)?;
        // Digits past the nineteenth cannot matter to a nanosecond count of a unit of
        // at most an hour (3.6e12 ns), and dropping them keeps the arithmetic in range.
        let fraction = &fraction[..fraction.len().min(19)];
        if !fraction.is_empty() {
            let numerator: u128 = fraction.parse().map_err(|_| too_long())?;
            let denominator = 10u128.pow(fraction.len() as u32);
            nanos += numerator * unit_nanos / denominator;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(too_long)?;
        if total_nanos > MAX_NANOS {
            return Err(too_long());
        }
        rest = after_unit;
    }
    // Fits: MAX_NANOS / 1e6 is far below u64::MAX.
    Ok((total_nanos / NANOS_PER_MS) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases = [
            ("0", 0),
            ("500ms", 500),
            ("5s", 5_000),
            ("10m", 600_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("2h45m30s", 9_930_000),
            ("1.5h", 5_400_000),
            (".5s", 500),
            ("1.s", 1_000),
            ("+3s", 3_000),
            ("1500us", 1),
            ("1500µs", 1),
            ("999999ns", 0),
            ("1m0.25s", 60_250),
            ("0.000000001s", 0),
        ];
        for (input, expected_ms) in cases {
            assert_eq!(parse_duration_ms(input), Ok(expected_ms), "{input}");
        }
    }

    #[test]
    fn bad_go_durations() {
        for (input, reason) in [
            ("", "empty"),
            ("10", "missing unit"),
            ("1h30", "missing unit"),
            ("5x", "unknown unit"),
            ("abc", "expected a number"),
            (".s", "expected a number"),
            ("-5s", "negative"),
            ("3000000h", "too long"),
            ("99999999999999999999999h", "too long"),
        ] {
            let message = parse_duration_ms(input).unwrap_err().to_string();
            assert!(message.starts_with(&format!("invalid duration {input:?}")), "{message}");
            assert!(message.contains(reason), "{input}: {message}");
        }
    }
}
