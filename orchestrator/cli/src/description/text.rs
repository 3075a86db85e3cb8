//! What every description is written with: [`Text`], kubectl's indented lines of
//! tab-separated cells, and the blocks most kinds share (labels, annotations, the
//! controlling owner) and kubectl's way of printing times and booleans.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use crate::tabwriter::align;
use berth_api::meta::{MetaExt, ObjectMeta, Time};
use berth_api::owners::controller_of;
use berth_api::time::{format_rfc3339, parse_rfc3339, to_system_time};

/// Lines with kubectl's indentation levels; cells separated by `\t`.
#[derive(Default)]
pub(super) struct Text(String);

impl Text {
    pub(super) fn line(&mut self, level: usize, text: impl AsRef<str>) {
        for _ in 0..level {
            self.0.push_str("  ");
        }
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    pub(super) fn finish(self) -> String {
        align(&self.0, 0, 2)
    }
}

/// `Sun, 22 Nov 2026 02:18:30 +0000` (Go's RFC1123Z), as kubectl prints times.
pub(super) fn rfc1123z(timestamp: &str) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(time) = parse_rfc3339(timestamp) else {
        return if timestamp.is_empty() {
            "<unknown>".into()
        } else {
            timestamp.to_string()
        };
    };
    let days = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    let utc = format_rfc3339(time); // YYYY-MM-DDTHH:MM:SSZ
    let month: usize = utc[5..7].parse().unwrap_or(1);
    format!(
        "{}, {} {} {} {} +0000",
        DAYS[((days + 4) % 7) as usize], // 1970-01-01 was a Thursday
        &utc[8..10],
        MONTHS[month.saturating_sub(1) % 12],
        &utc[0..4],
        &utc[11..19]
    )
}

/// A time of an object as [`rfc1123z`] prints it; `<unknown>` when absent.
pub(super) fn time_text(time: Option<&Time>) -> String {
    rfc1123z(&time.map(|t| format_rfc3339(to_system_time(t))).unwrap_or_default())
}

pub(super) fn labels(text: &mut Text, title: &str, indent: &str, labels: &BTreeMap<String, String>, separator: &str) {
    if labels.is_empty() {
        text.line(0, format!("{indent}{title}:\t<none>"));
        return;
    }
    for (i, (key, value)) in labels.iter().enumerate() {
        let head = if i == 0 { format!("{title}:") } else { String::new() };
        text.line(0, format!("{indent}{head}\t{key}{separator}{value}"));
    }
}

pub(super) fn meta_lines(text: &mut Text, meta: &ObjectMeta) {
    labels(text, "Labels", "", meta.labels(), "=");
    labels(text, "Annotations", "", meta.annotations(), ": ");
}

pub(super) fn controlled_by(meta: &ObjectMeta) -> Option<String> {
    controller_of(meta).map(|o| format!("{}/{}", o.kind, o.name))
}

pub(super) fn bool_text(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_kubectl_prints_them() {
        assert_eq!(rfc1123z("2026-11-22T02:18:30Z"), "Sun, 22 Nov 2026 02:18:30 +0000");
        assert_eq!(rfc1123z("1970-01-01T00:00:00Z"), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc1123z(""), "<unknown>");
        let time = berth_api::time::from_system_time(parse_rfc3339("2026-11-22T02:18:30Z").unwrap());
        assert_eq!(time_text(Some(&time)), "Sun, 22 Nov 2026 02:18:30 +0000");
        assert_eq!(time_text(None), "<unknown>");
    }
}
