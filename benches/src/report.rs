//! The result of one workload: a human summary and one JSON line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::driver::Outcome;
use crate::latency::{LatencySummary, ms};

#[derive(Clone, Debug)]
pub struct Report {
    /// `put`, `range`, `txn`, `watch`, `lease-keepalive`.
    pub workload: String,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub conns: usize,
    /// Successful requests (for txn: completed updates; for watch: acknowledged puts).
    pub requests: u64,
    pub errors: u64,
    pub error_counts: BTreeMap<String, u64>,
    pub elapsed: Duration,
    pub latency: LatencySummary,
    /// Workload-specific fields (consistency, conflicts, missing events, ...), added to
    /// the top level of the JSON line in this order.
    pub details: Vec<(String, Value)>,
}

impl Report {
    pub fn new(workload: &str, endpoints: &[String], clients: usize, conns: usize, outcome: Outcome) -> Self {
        Self {
            workload: workload.to_owned(),
            endpoints: endpoints.to_vec(),
            clients,
            conns,
            requests: outcome.latencies.len() as u64,
            errors: outcome.errors,
            error_counts: outcome.error_counts,
            elapsed: outcome.elapsed,
            latency: LatencySummary::from_samples(outcome.latencies),
            details: Vec::new(),
        }
    }

    pub fn with_detail(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.details.push((name.to_owned(), value.into()));
        self
    }

    pub fn throughput_rps(&self) -> f64 {
        let elapsed_s = self.elapsed.as_secs_f64();
        if elapsed_s > 0.0 {
            self.requests as f64 / elapsed_s
        } else {
            0.0
        }
    }

    pub fn detail_u64(&self, name: &str) -> u64 {
        self.details
            .iter()
            .find(|(detail, _)| detail == name)
            .and_then(|(_, value)| value.as_u64())
            .unwrap_or(0)
    }

    /// The fields of the JSON line, in the order they are printed.
    pub fn fields(&self) -> Vec<(String, Value)> {
        let mut fields = vec![
            ("workload".to_owned(), json!(self.workload)),
            ("endpoints".to_owned(), json!(self.endpoints)),
            ("clients".to_owned(), json!(self.clients)),
            ("conns".to_owned(), json!(self.conns)),
            ("total".to_owned(), json!(self.requests)),
            ("duration_s".to_owned(), json!(round3(self.elapsed.as_secs_f64()))),
            ("throughput_rps".to_owned(), json!(round3(self.throughput_rps()))),
            ("latency_ms".to_owned(), self.latency.to_json()),
            ("errors".to_owned(), json!(self.errors)),
        ];
        if !self.error_counts.is_empty() {
            fields.push(("error_samples".to_owned(), json!(self.error_counts)));
        }
        fields.extend(self.details.iter().map(|(name, value)| (name.clone(), value.clone())));
        fields
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.fields().into_iter().collect())
    }

    /// One line of JSON with the fields in their documented order, after `leading`.
    pub fn to_json_line(&self, leading: &[(&str, Value)]) -> String {
        let leading = leading.iter().map(|(name, value)| ((*name).to_owned(), value.clone()));
        json_line(leading.chain(self.fields()))
    }

    /// A few aligned lines for a person reading the terminal.
    pub fn human(&self) -> String {
        let latency = &self.latency;
        let mut text = format!(
            "{} — {} clients over {} conns to {}\n",
            self.workload,
            self.clients,
            self.conns,
            self.endpoints.join(",")
        );
        let mut line = |name: &str, value: String| {
            text.push_str(&format!("  {name:<18} {value}\n"));
        };
        line("requests", format!("{} ok, {} errors", self.requests, self.errors));
        line("duration", format!("{:.2} s", self.elapsed.as_secs_f64()));
        line("throughput", format!("{:.1} req/s", self.throughput_rps()));
        line(
            "latency (ms)",
            format!(
                "avg {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
                ms(latency.avg),
                ms(latency.p50),
                ms(latency.p90),
                ms(latency.p99),
                ms(latency.max)
            ),
        );
        for (name, value) in &self.details {
            line(name, value.to_string());
        }
        for (message, count) in &self.error_counts {
            line("error", format!("{count}× {message}"));
        }
        text
    }
}

/// A JSON object on one line with its fields in the given order (serde_json's own map
/// sorts them).
pub fn json_line(fields: impl IntoIterator<Item = (String, Value)>) -> String {
    let members: Vec<String> = fields
        .into_iter()
        .map(|(name, value)| format!("{}:{value}", Value::String(name)))
        .collect();
    format!("{{{}}}", members.join(","))
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_fields() {
        let outcome = Outcome {
            latencies: vec![Duration::from_millis(2), Duration::from_millis(4)],
            errors: 1,
            error_counts: BTreeMap::from([("boom".to_owned(), 1)]),
            elapsed: Duration::from_secs(1),
        };
        let report =
            Report::new("put", &["http://127.0.0.1:2379".to_owned()], 2, 1, outcome).with_detail("conflicts", 3u64);
        let json = report.to_json();
        assert_eq!(json["workload"], "put");
        assert_eq!(json["total"], 2);
        assert_eq!(json["errors"], 1);
        assert_eq!(json["throughput_rps"], 2.0);
        assert_eq!(json["latency_ms"]["p50"], 2.0);
        assert_eq!(json["latency_ms"]["max"], 4.0);
        assert_eq!(json["conflicts"], 3);
        assert_eq!(report.detail_u64("conflicts"), 3);
        assert!(report.human().contains("2 ok, 1 errors"));
        let line = report.to_json_line(&[("system", json!("etcd"))]);
        assert!(
            line.starts_with(r#"{"system":"etcd","workload":"put","endpoints":["#),
            "{line}"
        );
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, {
            let mut expected = json;
            expected["system"] = json!("etcd");
            expected
        });
    }
}
