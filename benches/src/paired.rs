//! Benchmarks that give the same load to a server started two ways, round after
//! round (a fresh server and data dir each time, the two ways alternating so the
//! machine's drift spreads over both), and report each figure's median over the
//! rounds of each way and their ratio: `secrets` (plain / encrypted at rest) and
//! `api-security` (plain HTTP / TLS with authentication and RBAC).

use std::fmt::Write as _;

use serde_json::json;

use crate::latency::ms;
use crate::report::{Report, json_line};

/// One server's phases, in the benchmark's phase order.
pub struct Run {
    /// Started the second way (the one priced against the first).
    pub second: bool,
    pub phases: Vec<Report>,
}

/// The median of `values` (0 when there are none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A figure of a report: its name in the table, in the JSON line, and how to read it.
type Measure = (&'static str, &'static str, fn(&Report) -> f64);

/// A markdown table (phase, measure, first way, second way, second / first) and one
/// JSON line per phase, named `<workload>-<phase>`, with `<field>_<way>` and
/// `<field>_ratio` members.
pub fn render(workload: &str, phases: &[&str], ways: [&str; 2], runs: &[Run]) -> String {
    let figure = |second: bool, phase: usize, pick: fn(&Report) -> f64| {
        median(
            runs.iter()
                .filter(|r| r.second == second)
                .map(|r| pick(&r.phases[phase]))
                .collect(),
        )
    };
    let measures: [Measure; 3] = [
        ("requests/s", "throughput_rps", Report::throughput_rps),
        ("latency p50 (ms)", "p50_ms", |r| ms(r.latency.p50)),
        ("latency p99 (ms)", "p99_ms", |r| ms(r.latency.p99)),
    ];
    let [first, second] = ways;
    let mut text = format!(
        "\n| phase | measure | {first} | {second} | {second} / {first} |\n| --- | --- | ---: | ---: | ---: |\n"
    );
    let mut lines = String::new();
    for (i, phase) in phases.iter().enumerate() {
        let mut fields = vec![("workload".to_string(), json!(format!("{workload}-{phase}")))];
        for (measure, name, pick) in measures {
            let a = figure(false, i, pick);
            let b = figure(true, i, pick);
            let ratio = if a > 0.0 { b / a } else { 0.0 };
            let _ = writeln!(text, "| {phase} | {measure} | {a:.2} | {b:.2} | {ratio:.2} |");
            fields.push((format!("{name}_{first}"), json!(a)));
            fields.push((format!("{name}_{second}"), json!(b)));
            fields.push((format!("{name}_ratio"), json!(ratio)));
        }
        lines.push_str(&json_line(fields));
        lines.push('\n');
    }
    text.push('\n');
    text.push_str(&lines);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Outcome;
    use std::time::Duration;

    #[test]
    fn the_median_of_the_rounds() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn each_phase_is_a_row_per_measure_and_a_json_line_with_the_ratio() {
        let report = |requests: usize, seconds: u64| {
            let outcome = Outcome {
                latencies: vec![Duration::from_millis(2); requests],
                elapsed: Duration::from_secs(seconds),
                ..Outcome::default()
            };
            Report::new("x", &[], 1, 1, outcome)
        };
        let runs = [
            Run {
                second: false,
                phases: vec![report(100, 1)],
            },
            Run {
                second: true,
                phases: vec![report(100, 2)],
            },
        ];
        let text = render("api", &["create"], ["plain", "secure"], &runs);
        assert!(
            text.contains("| create | requests/s | 100.00 | 50.00 | 0.50 |"),
            "{text}"
        );
        let line = text.lines().find(|l| l.starts_with('{')).unwrap();
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["workload"], "api-create");
        assert_eq!(value["throughput_rps_secure"], 50.0);
        assert_eq!(value["throughput_rps_ratio"], 0.5);
    }
}
