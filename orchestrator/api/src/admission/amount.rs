//! Resource amounts of any resource (`500m`, `2Gi`, `1e3`, `10`) as exact integers
//! of thousandths, so that the quota's sums and the limit ranges' bounds compare
//! exactly whatever suffix each side was written with (Kubernetes compares
//! quantities by their `MilliValue`).

use std::collections::BTreeMap;

use crate::objects::Quantity;

/// A resource amount in thousandths of its unit (cores, bytes, objects).
pub type Milli = i128;

/// Amounts by resource name (`requests.cpu`, `pods`), in thousandths.
pub type Amounts = BTreeMap<String, Milli>;

/// `2Gi` as thousandths of a byte; `None` when it is not a quantity. A fraction
/// finer than a thousandth is rounded up, as Kubernetes rounds a `MilliValue`.
pub fn parse(text: &str) -> Option<Milli> {
    let text = text.trim();
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    // The amount is number × 10^exp10 × 2^exp2, in thousandths: 10^(exp10 + 3).
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => {
            let exponent = other.strip_prefix(['e', 'E'])?;
            (exponent.parse::<i32>().ok().filter(|e| e.abs() <= 18)?, 0)
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{whole}{fraction}");
    if digits.len() > 30 {
        return None;
    }
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let mut scaled = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    let power = exp10 + 3 - fraction.len() as i32;
    if power >= 0 {
        scaled = scaled.checked_mul(10i128.checked_pow(power as u32)?)?;
    } else {
        let divisor = 10i128.checked_pow(power.unsigned_abs())?;
        scaled = (scaled + divisor - 1) / divisor;
    }
    Some(sign * scaled)
}

/// A quantity's thousandths, `None` when it does not parse.
pub fn of(quantity: &Quantity) -> Option<Milli> {
    parse(&quantity.0)
}

/// Whether the resource is counted in bytes (memory, storage).
fn is_bytes(resource: &str) -> bool {
    resource.contains("memory") || resource.contains("storage")
}

/// An amount as Kubernetes writes it: `500m`, `2`, and for bytes the largest binary
/// or decimal suffix that divides it (`2Gi`, `1G`, `1500`).
pub fn format(resource: &str, milli: Milli) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let value = milli / 1000;
    if is_bytes(resource) && value != 0 {
        for (suffix, unit) in [
            ("Ei", 1i128 << 60),
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if value % unit == 0 {
                return format!("{}{suffix}", value / unit);
            }
        }
        for (suffix, unit) in [
            ("E", 10i128.pow(18)),
            ("P", 10i128.pow(15)),
            ("T", 10i128.pow(12)),
            ("G", 10i128.pow(9)),
            ("M", 10i128.pow(6)),
            ("k", 1000),
        ] {
            if value % unit == 0 {
                return format!("{}{suffix}", value / unit);
            }
        }
    }
    value.to_string()
}

/// `format` as a [`Quantity`].
pub fn quantity(resource: &str, milli: Milli) -> Quantity {
    Quantity(format(resource, milli))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suffix_parses_to_exact_thousandths() {
        assert_eq!(parse("500m"), Some(500));
        assert_eq!(parse("1"), Some(1000));
        assert_eq!(parse("0.5"), Some(500));
        assert_eq!(parse("2Gi"), Some((2i128 << 30) * 1000));
        assert_eq!(parse("1G"), Some(1_000_000_000_000));
        assert_eq!(parse("1.5Ki"), Some(1536 * 1000));
        assert_eq!(parse("1e3"), Some(1_000_000));
        assert_eq!(parse("0.0001"), Some(1), "rounded up to a thousandth");
        assert_eq!(parse("-1"), Some(-1000));
        assert_eq!(parse("1X"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("1.2.3"), None);
    }

    #[test]
    fn amounts_print_as_kubernetes_prints_them() {
        assert_eq!(format("requests.cpu", 500), "500m");
        assert_eq!(format("cpu", 2000), "2");
        assert_eq!(format("pods", 3000), "3");
        assert_eq!(format("requests.memory", (1i128 << 30) * 1000), "1Gi");
        assert_eq!(format("memory", 1_000_000_000_000), "1G");
        assert_eq!(format("requests.storage", 1_500_000), "1500");
        assert_eq!(format("memory", 0), "0");
    }
}
