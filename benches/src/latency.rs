//! Latency percentiles from the raw per-request durations.
//!
//! Each client keeps every duration in a `Vec`; the workload merges and sorts them once
//! at the end. Simple and exact; a million samples take 16 MB.

use std::time::Duration;

/// Percentiles of a set of request durations. All zero when there were none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    pub count: usize,
    pub avg: Duration,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LatencySummary {
    pub fn from_samples(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let sum: Duration = samples.iter().sum();
        Self {
            count: samples.len(),
            avg: sum / samples.len() as u32,
            min: samples[0],
            p50: percentile(&samples, 50.0),
            p90: percentile(&samples, 90.0),
            p99: percentile(&samples, 99.0),
            max: samples[samples.len() - 1],
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "avg": ms(self.avg),
            "min": ms(self.min),
            "p50": ms(self.p50),
            "p90": ms(self.p90),
            "p99": ms(self.p99),
            "max": ms(self.max),
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[Duration], percent: f64) -> Duration {
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with microsecond precision, for reports.
pub fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        let summary = LatencySummary::from_samples(samples);
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p90, Duration::from_millis(90));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert_eq!(summary.min, Duration::from_millis(1));
        assert_eq!(summary.avg, Duration::from_micros(50_500));
    }

    #[test]
    fn one_sample() {
        let summary = LatencySummary::from_samples(vec![Duration::from_millis(7)]);
        assert_eq!(summary.p50, Duration::from_millis(7));
        assert_eq!(summary.p99, Duration::from_millis(7));
    }

    #[test]
    fn empty() {
        assert_eq!(LatencySummary::from_samples(Vec::new()), LatencySummary::default());
    }
}
