//! Timestamps as Kubernetes writes them: RFC 3339 in UTC with whole seconds
//! (`2026-11-22T02:18:30Z`), and the ages `kubectl get` prints (`5s`, `3m`, `2h`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;

use crate::meta::Time;

/// Now, as the `Time` of a Kubernetes field, in whole seconds as Kubernetes keeps them.
pub fn now() -> Time {
    from_system_time(SystemTime::now())
}

/// A `Time` of whole seconds.
pub fn from_system_time(t: SystemTime) -> Time {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Time(Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX))
}

pub fn to_system_time(t: &Time) -> SystemTime {
    let secs = t.0.as_second();
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

/// How long ago `t` was, as kubectl prints it; `<unknown>` without a time.
pub fn age_of(t: Option<&Time>, now: SystemTime) -> String {
    match t {
        Some(t) => age(&format_rfc3339(to_system_time(t)), now),
        None => "<unknown>".into(),
    }
}

/// Now, as an RFC 3339 UTC timestamp.
pub fn now_rfc3339() -> String {
    format_rfc3339(SystemTime::now())
}

pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    format_unix_rfc3339(secs, None)
}

/// `t` as RFC 3339 in UTC with nine fraction digits, always (Go's `RFC3339NanoFixed`,
/// the kubelet's log timestamps), so that such times sort as text.
pub fn format_rfc3339_nanos(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = format_unix_rfc3339(since.as_secs() as i64, None);
    format!("{}.{:09}Z", whole.trim_end_matches('Z'), since.subsec_nanos())
}

/// Seconds since the Unix epoch (before it too) as RFC 3339 in UTC: whole seconds,
/// as `Time` fields are written, or with six fraction digits (`micros`), as
/// `MicroTime` fields are.
pub fn format_unix_rfc3339(secs: i64, micros: Option<u32>) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let fraction = micros.map(|us| format!(".{us:06}")).unwrap_or_default();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// How long ago `timestamp` was, as kubectl prints it: `42s`, `5m`, `3h`, `2d`.
pub fn age(timestamp: &str, now: SystemTime) -> String {
    let Some(then) = parse_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    match secs {
        0..120 => format!("{secs}s"),
        120..7_200 => format!("{}m", secs / 60),
        7_200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

// Howard Hinnant's days <-> civil date algorithms (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_400_310);
        let s = format_rfc3339(t);
        assert_eq!(s, "2026-11-23T02:18:30Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_nanos(t + Duration::from_nanos(1_500)),
            "2026-11-23T02:18:30.000001500Z"
        );
        assert_eq!(format_rfc3339_nanos(t), "2026-11-23T02:18:30.000000000Z");
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.123+01:00"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_247_599))
        );
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn unix_seconds_format_with_and_without_micros() {
        assert_eq!(format_unix_rfc3339(1_795_400_310, None), "2026-11-23T02:18:30Z");
        assert_eq!(
            format_unix_rfc3339(1_795_400_310, Some(7_500)),
            "2026-11-23T02:18:30.007500Z"
        );
        assert_eq!(format_unix_rfc3339(-1, None), "1969-12-31T23:59:59Z");
        assert_eq!(format_unix_rfc3339(0, Some(0)), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn times_are_whole_seconds_and_read_back() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_400_310_750);
        let time = from_system_time(t);
        assert_eq!(serde_json::to_value(&time).unwrap(), "2026-11-23T02:18:30Z");
        assert_eq!(to_system_time(&time), UNIX_EPOCH + Duration::from_secs(1_795_400_310));
        assert_eq!(age_of(Some(&time), t + Duration::from_secs(300)), "5m");
        assert_eq!(age_of(None, t), "<unknown>");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |ago: u64| format_rfc3339(now - Duration::from_secs(ago));
        assert_eq!(age(&at(42), now), "42s");
        assert_eq!(age(&at(300), now), "5m");
        assert_eq!(age(&at(3 * 3600), now), "3h");
        assert_eq!(age(&at(3 * 86_400), now), "3d");
        assert_eq!(age("garbage", now), "<unknown>");
    }
}
