//! The query parameters of a request, each read with its type and its range: a value
//! that does not parse or is out of range is a 400 naming the parameter, never a
//! panic, an overflow or a silent default.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use axum::extract::Query;
use axum::http::Uri;

use super::route::Kind;
use super::selector::{FieldSelector, Filter, LabelSelector};
use super::status::ApiError;

/// The query parameters of a request.
#[derive(Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(uri: &Uri) -> Result<Params, ApiError> {
        Query::<HashMap<String, String>>::try_from_uri(uri)
            .map(|Query(params)| Params(params))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
    }

    /// Whether the parameter was given at all.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The parameter's text; "" when absent.
    pub fn text(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// A boolean parameter, in every spelling Kubernetes takes (Go's
    /// `strconv.ParseBool`): the official Python client sends `watch=True`.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name) {
            "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            other => Err(ApiError::bad_request(format!("{name}: {other:?} is not a boolean"))),
        }
    }

    /// An integer parameter within `range`; `None` when absent or empty.
    pub fn integer(&self, name: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, ApiError> {
        let text = self.text(name);
        if text.is_empty() {
            return Ok(None);
        }
        let n: i64 = text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{name}: {text:?} is not an integer")))?;
        if n < *range.start() {
            return Err(ApiError::bad_request(format!(
                "{name}: must be greater than or equal to {}, not {n}",
                range.start()
            )));
        }
        if n > *range.end() {
            return Err(ApiError::bad_request(format!(
                "{name}: must be at most {}, not {n}",
                range.end()
            )));
        }
        Ok(Some(n))
    }

    /// A duration parameter in Go's syntax (`30s`, `1m0s`, `1.5h`, `500ms`), as
    /// client-go sends `timeout`; `None` when absent or empty.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        let text = self.text(name);
        if text.is_empty() {
            return Ok(None);
        }
        parse_go_duration(text).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("{name}: {text:?} is not a duration such as 30s, 1m0s or 500ms"))
        })
    }

    pub fn filter(&self, kind: &Kind) -> Result<Filter, ApiError> {
        Ok(Filter {
            labels: LabelSelector::parse(self.text("labelSelector")).map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(self.text("fieldSelector"), kind).map_err(ApiError::bad_request)?,
        })
    }
}

/// Go's `time.ParseDuration`, for non-negative durations up to Go's limit (an i64 of
/// nanoseconds, about 292 years).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        seconds += number.parse::<f64>().ok()? * unit_seconds;
        rest = after;
    }
    // Go's limit.
    if seconds > i64::MAX as f64 / 1e9 {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::parse(&format!("/api/v1/pods?{query}").parse().unwrap()).unwrap()
    }

    #[test]
    fn integers_are_range_checked_and_name_the_parameter() {
        let p =
            params("limit=500&timeoutSeconds=9223372036854775807&tailLines=-1&sinceSeconds=x&big=99999999999999999999");
        assert_eq!(p.integer("limit", 0..=i64::MAX), Ok(Some(500)));
        assert_eq!(p.integer("absent", 0..=i64::MAX), Ok(None));
        assert_eq!(
            p.integer("timeoutSeconds", 0..=i64::MAX),
            Ok(Some(i64::MAX)),
            "in range; what it means is the caller's to bound"
        );
        let negative = p.integer("tailLines", 0..=i64::MAX).unwrap_err();
        assert_eq!((negative.code, negative.reason), (400, "BadRequest"));
        assert_eq!(
            negative.message,
            "tailLines: must be greater than or equal to 0, not -1"
        );
        assert_eq!(
            p.integer("sinceSeconds", 1..=i64::MAX).unwrap_err().message,
            "sinceSeconds: \"x\" is not an integer"
        );
        assert_eq!(
            p.integer("big", 0..=i64::MAX).unwrap_err().message,
            "big: \"99999999999999999999\" is not an integer"
        );
        assert_eq!(
            p.integer("limit", 0..=100).unwrap_err().message,
            "limit: must be at most 100, not 500"
        );
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        let p = params("a=1m0s&b=1.5s&c=500ms&d=0&e=-1s&f=10&g=9999999h&h=1h2m3.5s");
        assert_eq!(p.duration("a"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(p.duration("b"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(p.duration("c"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(p.duration("d"), Ok(Some(Duration::ZERO)));
        assert_eq!(p.duration("h"), Ok(Some(Duration::from_millis(3_723_500))));
        assert_eq!(p.duration("absent"), Ok(None));
        for bad in ["e", "f", "g"] {
            let error = p.duration(bad).unwrap_err();
            assert_eq!(error.code, 400, "{bad}");
            assert!(error.message.starts_with(&format!("{bad}: ")), "{}", error.message);
        }
    }
}
