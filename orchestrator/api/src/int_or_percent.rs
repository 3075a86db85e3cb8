//! Fields that are a count or a percentage of one (`maxSurge: 1`, `maxUnavailable:
//! "25%"`), read as Kubernetes' `intstr.GetScaledValueFromIntOrPercent` reads them:
//! a percentage scales a total, rounded up or down as the field's meaning wants
//! (a Deployment's surge rounds up, its unavailability down).

use crate::objects::IntOrString;

/// The percentage in `"25%"`, if the text is one (digits, then `%`).
pub fn percent(text: &str) -> Option<i32> {
    let digits = text.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The value of `value` against `total`: a count as it is, a percentage of
/// `total` rounded up or down; `None` for text that is not a percentage.
pub fn scaled(value: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(text) => {
            let product = i64::from(percent(text)?) * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_scale_and_round_as_asked() {
        let quarter = IntOrString::String("25%".into());
        assert_eq!(scaled(&quarter, 10, true), Some(3));
        assert_eq!(scaled(&quarter, 10, false), Some(2));
        assert_eq!(scaled(&quarter, 4, false), Some(1));
        assert_eq!(scaled(&quarter, 1, false), Some(0));
        assert_eq!(scaled(&quarter, 1, true), Some(1));
        assert_eq!(scaled(&IntOrString::String("0%".into()), 7, true), Some(0));
        assert_eq!(scaled(&IntOrString::Int(2), 100, true), Some(2));
        for bad in ["25", "%", "-5%", "2.5%", "x%"] {
            assert_eq!(scaled(&IntOrString::String(bad.into()), 10, true), None, "{bad}");
        }
    }
}
