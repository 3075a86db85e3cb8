//! The markdown table that puts etcd and berth side by side.

use std::time::Duration;

use crate::compare::cluster::System;
use crate::compare::failover::FailoverSample;
use crate::latency::ms;
use crate::report::Report;

/// Everything measured on one cluster.
#[derive(Debug)]
pub struct SystemRun {
    pub system: System,
    pub replicas: usize,
    pub reports: Vec<(&'static str, Result<Report, String>)>,
    /// Per replica, after the load and before the failover runs.
    pub rss_kib: Vec<u64>,
    pub failovers: Vec<Result<FailoverSample, String>>,
    /// Why the cluster could not be measured at all, if it could not.
    pub failure: Option<String>,
    /// The share of the machine's CPU (0..1) that other processes used meanwhile.
    pub others_cpu_share: Option<f64>,
}

impl SystemRun {
    pub fn report(&self, id: &str) -> Option<&Report> {
        self.reports
            .iter()
            .find(|(report_id, _)| *report_id == id)
            .and_then(|(_, report)| report.as_ref().ok())
    }

    /// The median over the failover runs of `pick`; `None` if any run failed or lacks it.
    pub fn median_failover(&self, pick: fn(&FailoverSample) -> Option<Duration>) -> Option<Duration> {
        let mut values = self
            .failovers
            .iter()
            .map(|sample| sample.as_ref().ok().and_then(pick))
            .collect::<Option<Vec<Duration>>>()?;
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        Some(values[values.len() / 2])
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

enum Cell {
    Number {
        value: f64,
        decimals: usize,
    },
    /// Text, and whether it is a pass (for the "met" column).
    Text {
        text: String,
        is_pass: bool,
    },
    Missing,
}

struct Row {
    label: String,
    better: Option<Better>,
    /// The target as a berth/etcd ratio, or for text rows, a description.
    target: Option<Target>,
    cell: Box<dyn Fn(&SystemRun) -> Cell>,
}

enum Target {
    Ratio(f64),
    Pass(&'static str),
}

fn number(value: Option<f64>, decimals: usize) -> Cell {
    value.map_or(Cell::Missing, |value| Cell::Number { value, decimals })
}

fn throughput(id: &'static str) -> Box<dyn Fn(&SystemRun) -> Cell> {
    Box::new(move |run| number(run.report(id).map(Report::throughput_rps), 0))
}

fn latency(id: &'static str, pick: fn(&Report) -> Duration) -> Box<dyn Fn(&SystemRun) -> Cell> {
    Box::new(move |run| number(run.report(id).map(|report| ms(pick(report))), 2))
}

fn rows(replicas: usize) -> Vec<Row> {
    let row = |label: &str, better, target, cell| Row {
        label: label.to_owned(),
        better,
        target,
        cell,
    };
    let (higher, lower) = (Some(Better::Higher), Some(Better::Lower));
    let mut rows = vec![
        row(
            "put, 100 clients / 10 conns: throughput (req/s)",
            higher,
            Some(Target::Ratio(1.5)),
            throughput("put-100"),
        ),
        row(
            "put, 100 clients / 10 conns: p99 (ms)",
            lower,
            None,
            latency("put-100", |r| r.latency.p99),
        ),
        row(
            "put, 1 client: p50 (ms)",
            lower,
            Some(Target::Ratio(1.0)),
            latency("put-1", |r| r.latency.p50),
        ),
        row(
            "put, 1 client: p99 (ms)",
            lower,
            None,
            latency("put-1", |r| r.latency.p99),
        ),
        row(
            "linearizable range, 100 clients: throughput (req/s)",
            higher,
            Some(Target::Ratio(1.5)),
            throughput("range-l"),
        ),
        row(
            "linearizable range, 100 clients: p99 (ms)",
            lower,
            None,
            latency("range-l", |r| r.latency.p99),
        ),
        row(
            "serializable range, 100 clients: throughput (req/s)",
            higher,
            Some(Target::Ratio(1.0)),
            throughput("range-s"),
        ),
        row(
            "serializable range, 100 clients: p99 (ms)",
            lower,
            None,
            latency("range-s", |r| r.latency.p99),
        ),
        row(
            "txn CAS, 100 clients: updates/s",
            higher,
            Some(Target::Ratio(1.0)),
            throughput("txn"),
        ),
        row(
            "txn CAS, 100 clients: p99 (ms)",
            lower,
            None,
            latency("txn", |r| r.latency.p99),
        ),
        row(
            "txn CAS, 100 clients: conflicts",
            None,
            None,
            Box::new(|run| number(run.report("txn").map(|r| r.detail_u64("conflicts") as f64), 0)),
        ),
        row(
            "watch, 100 watchers: every event delivered once, in order",
            None,
            Some(Target::Pass("all")),
            Box::new(|run| match run.report("watch") {
                None => Cell::Missing,
                Some(report) => watch_delivery(report),
            }),
        ),
        row(
            "watch, 100 watchers: put-to-event p50 (ms)",
            lower,
            None,
            latency("watch", |r| r.latency.p50),
        ),
        row(
            "watch, 100 watchers: put-to-event p99 (ms)",
            lower,
            Some(Target::Ratio(1.0)),
            latency("watch", |r| r.latency.p99),
        ),
        row(
            "lease keepalive, 100 leases: round trips/s",
            higher,
            None,
            throughput("lease-keepalive"),
        ),
        row(
            "lease keepalive, 100 leases: p99 (ms)",
            lower,
            None,
            latency("lease-keepalive", |r| r.latency.p99),
        ),
        row(
            "RSS per replica after the load, max (MiB)",
            lower,
            Some(Target::Ratio(1.0)),
            Box::new(|run| number(run.rss_kib.iter().max().map(|&kib| kib as f64 / 1024.0), 1)),
        ),
    ];
    if replicas >= 3 {
        rows.push(row(
            "failover gap after kill -9 of the leader, median (ms)",
            lower,
            Some(Target::Ratio(1.0)),
            Box::new(|run| number(run.median_failover(|sample| Some(sample.gap)).map(ms), 0)),
        ));
        rows.push(row(
            "failover: a survivor's Status names a new leader, median (ms)",
            lower,
            None,
            Box::new(|run| number(run.median_failover(|sample| sample.new_leader_after).map(ms), 0)),
        ));
    }
    rows.push(row(
        "CPU used by other processes meanwhile (% of the machine)",
        None,
        None,
        Box::new(|run| number(run.others_cpu_share.map(|share| share * 100.0), 1)),
    ));
    rows.push(row(
        "request errors, all workloads",
        lower,
        None,
        Box::new(|run| {
            let errors: u64 = run
                .reports
                .iter()
                .map(|(_, report)| report.as_ref().map_or(1, |report| report.errors))
                .sum();
            Cell::Number {
                value: errors as f64,
                decimals: 0,
            }
        }),
    ));
    rows
}

fn watch_delivery(report: &Report) -> Cell {
    let missing = report.detail_u64("missing");
    let duplicates = report.detail_u64("duplicates");
    let out_of_order = report.detail_u64("out_of_order");
    let watcher_errors = report.detail_u64("watcher_errors");
    let delivered = report.detail_u64("events_delivered");
    let is_pass = missing == 0 && duplicates == 0 && out_of_order == 0 && watcher_errors == 0;
    let text = if is_pass {
        format!("yes ({delivered} events)")
    } else {
        format!(
            "no: {missing} missing, {duplicates} duplicate, {out_of_order} out of order, {watcher_errors} watcher errors"
        )
    };
    Cell::Text { text, is_pass }
}

fn format_cell(cell: &Cell) -> String {
    match cell {
        Cell::Number { value, decimals } => format!("{value:.decimals$}"),
        Cell::Text { text, .. } => text.clone(),
        Cell::Missing => "n/a".to_owned(),
    }
}

/// One table for the clusters of `replicas` members; targets are the issue's, which
/// are stated for three replicas.
pub fn markdown(replicas: usize, runs: &[&SystemRun]) -> String {
    let etcd = runs.iter().find(|run| run.system == System::Etcd);
    let berth = runs.iter().find(|run| run.system == System::Berth);
    let with_targets = replicas == 3;
    let mut text = String::from("| workload | etcd | berth | berth/etcd | better |");
    text.push_str(if with_targets { " target | met |\n" } else { "\n" });
    text.push_str("| --- | ---: | ---: | ---: | --- |");
    text.push_str(if with_targets { " --- | --- |\n" } else { "\n" });
    for row in rows(replicas) {
        let etcd_cell = etcd.map_or(Cell::Missing, |run| (row.cell)(run));
        let berth_cell = berth.map_or(Cell::Missing, |run| (row.cell)(run));
        let ratio = match (&etcd_cell, &berth_cell) {
            (Cell::Number { value: etcd, .. }, Cell::Number { value: berth, .. })
                if *etcd > 0.0 && row.better.is_some() =>
            {
                Some(berth / etcd)
            }
            _ => None,
        };
        let better = match row.better {
            Some(Better::Higher) => "higher",
            Some(Better::Lower) => "lower",
            None => "",
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} | {better} |",
            row.label,
            format_cell(&etcd_cell),
            format_cell(&berth_cell),
            ratio.map_or_else(|| "".to_owned(), |ratio| format!("{ratio:.2}")),
        ));
        if with_targets {
            let (target, met) = match (&row.target, row.better) {
                (Some(Target::Ratio(bound)), Some(Better::Higher)) => {
                    (format!("≥ {bound}×"), ratio.map(|ratio| ratio >= *bound))
                }
                (Some(Target::Ratio(bound)), _) => (format!("≤ {bound}×"), ratio.map(|ratio| ratio <= *bound)),
                (Some(Target::Pass(description)), _) => (
                    description.to_string(),
                    match &berth_cell {
                        Cell::Text { is_pass, .. } => Some(*is_pass),
                        _ => None,
                    },
                ),
                (None, _) => (String::new(), None),
            };
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None if target.is_empty() => "",
                None => "n/a",
            };
            text.push_str(&format!(" {target} | {met} |"));
        }
        text.push('\n');
    }
    text
}
