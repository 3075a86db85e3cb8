//! Kubernetes resource quantities: `500m` or `0.5` CPUs, `128Mi` or `1G` of memory.
//! CPU is kept in millicores and memory in bytes, as integers, so sums and
//! comparisons in the scheduler are exact.

/// Why a quantity does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityError(pub String);

impl std::fmt::Display for QuantityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `128Mi` into `("128", "Mi")`.
fn split(s: &str) -> (&str, &str) {
    let at = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    (&s[..at], &s[at..])
}

/// The number part as a value scaled by `scale`, rounded up (Kubernetes rounds
/// requests up, never down, so a request is never understated).
fn scaled(number: &str, scale: u128, original: &str) -> Result<u64, QuantityError> {
    let bad = || QuantityError(format!("quantity {original:?} is not a number with an optional suffix"));
    if number.is_empty() || number.matches('.').count() > 1 || number == "." {
        return Err(bad());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut value = whole
        .checked_mul(scale)
        .ok_or_else(|| QuantityError(format!("quantity {original:?} is too large")))?;
    if !fraction.is_empty() {
        let digits = fraction.len() as u32;
        if digits > 18 {
            return Err(bad());
        }
        let fraction: u128 = fraction.parse().map_err(|_| bad())?;
        let denominator = 10u128.pow(digits);
        value += (fraction * scale).div_ceil(denominator);
    }
    u64::try_from(value).map_err(|_| QuantityError(format!("quantity {original:?} is too large")))
}

/// CPU in millicores: `250m` → 250, `1` → 1000, `0.5` → 500.
pub fn parse_cpu_millis(s: &str) -> Result<u64, QuantityError> {
    let (number, suffix) = split(s.trim());
    match suffix {
        "m" => scaled(number, 1, s),
        "" => scaled(number, 1000, s),
        other => Err(QuantityError(format!(
            "cpu quantity {s:?} has an unknown suffix {other:?} (use m, or none)"
        ))),
    }
}

/// Memory in bytes: `128Mi`, `1Gi`, `500M`, `1000`.
pub fn parse_memory_bytes(s: &str) -> Result<u64, QuantityError> {
    let (number, suffix) = split(s.trim());
    let scale: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        other => {
            return Err(QuantityError(format!(
                "memory quantity {s:?} has an unknown suffix {other:?} (use k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei)"
            )));
        }
    };
    scaled(number, scale, s)
}

/// Millicores as Kubernetes prints them: whole cores as `2`, else `1500m`.
pub fn format_cpu_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes in the largest binary unit that divides them: `2Gi`, `512Mi`, `1000`.
pub fn format_memory_bytes(bytes: u64) -> String {
    for (suffix, unit) in [("Ti", 1u64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu_millis("250m"), Ok(250));
        assert_eq!(parse_cpu_millis("1"), Ok(1000));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("0.0001"), Ok(1), "rounded up, never down");
        assert!(parse_cpu_millis("1Gi").is_err());
        assert!(parse_cpu_millis("").is_err());
        assert!(parse_cpu_millis("-1").is_err());
        assert!(parse_cpu_millis("1.2.3").is_err());
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory_bytes("128Mi"), Ok(128 << 20));
        assert_eq!(parse_memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_memory_bytes("1000"), Ok(1000));
        let err = parse_memory_bytes("12XB").unwrap_err();
        assert!(err.0.contains("unknown suffix \"XB\""), "{err}");
        assert!(parse_memory_bytes("99999999999999Ei").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for millis in [0, 100, 1000, 1500, 4000] {
            assert_eq!(parse_cpu_millis(&format_cpu_millis(millis)).unwrap(), millis);
        }
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_memory_bytes(2 << 30), "2Gi");
        assert_eq!(format_memory_bytes(3 << 20), "3Mi");
        for bytes in [0, 1000, 1 << 20, (1 << 30) + 1] {
            assert_eq!(parse_memory_bytes(&format_memory_bytes(bytes)).unwrap(), bytes);
        }
    }
}
