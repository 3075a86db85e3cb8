//! What one `berth-bench api` run measured, and its report: the machine, the command,
//! a markdown table and one JSON line per phase.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use super::ApiOptions;
use super::list::ListOutcome;
use super::pods::{NODE, WriteTimes};
use super::server::{Memory, server_flags};
use super::watch::{self, Arrivals, Delays};
use crate::latency::{LatencySummary, ms};
use crate::report::{Report, json_line};

/// The server's memory and CPU time at the end of a phase.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint {
    /// started, created, listed, watched, replayed.
    pub name: &'static str,
    pub memory: Memory,
    pub cpu_time: Duration,
}

/// The paged lists, beyond the per-page report.
#[derive(Debug)]
pub struct ListFigures {
    pub lists_completed: usize,
    pub list_time: LatencySummary,
    pub objects: u64,
    pub body_bytes: u64,
    pub objects_per_s: f64,
}

impl ListFigures {
    pub fn new(outcome: &ListOutcome) -> ListFigures {
        let elapsed_s = outcome.pages.elapsed.as_secs_f64();
        ListFigures {
            lists_completed: outcome.list_times.len(),
            list_time: outcome.list_summary(),
            objects: outcome.objects,
            body_bytes: outcome.body_bytes,
            objects_per_s: if elapsed_s > 0.0 {
                outcome.objects as f64 / elapsed_s
            } else {
                0.0
            },
        }
    }

    pub fn bytes_per_object(&self) -> f64 {
        self.body_bytes as f64 / self.objects.max(1) as f64
    }

    /// The list's own fields of its JSON line.
    pub fn add_details(&self, report: Report, page_limit: usize) -> Report {
        report
            .with_detail("page_limit", page_limit)
            .with_detail("lists_completed", self.lists_completed)
            .with_detail("objects_per_s", round1(self.objects_per_s))
            .with_detail("list_ms", self.list_time.to_json())
            .with_detail("bytes_per_object", round1(self.bytes_per_object()))
    }
}

/// The watch, beyond the ack-to-event report.
#[derive(Debug)]
pub struct WatchFigures {
    pub delays: Delays,
    /// The patches that made the events.
    pub writes: Report,
    pub replay_events_per_s: f64,
    pub replay_delivered: u64,
    pub bytes_per_event: f64,
}

impl WatchFigures {
    pub fn new(
        arrivals: &Arrivals,
        times: &WriteTimes,
        replayed: &Arrivals,
        replay_started_at: Instant,
        writes: Report,
    ) -> WatchFigures {
        WatchFigures {
            delays: watch::delays(arrivals, times),
            writes,
            replay_events_per_s: watch::events_per_s(replayed, replay_started_at),
            replay_delivered: replayed.delivered,
            bytes_per_event: arrivals.bytes as f64 / arrivals.delivered.max(1) as f64,
        }
    }
}

/// Everything one run measured.
pub struct ApiRun {
    pub pods: u64,
    pub page: usize,
    pub lists: u64,
    pub conns: usize,
    pub command: String,
    pub machine: Vec<(String, String)>,
    pub berth_version: String,
    pub checkpoints: Vec<Checkpoint>,
    pub create: Option<Report>,
    pub list: Option<(Report, ListFigures)>,
    pub watch: Option<(Report, WatchFigures)>,
    pub data_dir_bytes: u64,
    /// The share of the machine's CPU that other processes took during the run.
    pub others_cpu_share: Option<f64>,
}

impl ApiRun {
    pub fn new(options: &ApiOptions) -> ApiRun {
        ApiRun {
            pods: options.pods,
            page: options.page,
            lists: options.lists,
            conns: options.conns,
            command: crate::compare::command_line(),
            machine: Vec::new(),
            berth_version: String::new(),
            checkpoints: Vec::new(),
            create: None,
            list: None,
            watch: None,
            data_dir_bytes: 0,
            others_cpu_share: None,
        }
    }

    /// The server CPU time between the checkpoints `from` and `to`.
    fn cpu_between(&self, from: &str, to: &str) -> Option<Duration> {
        let at = |name: &str| self.checkpoints.iter().find(|c| c.name == name).map(|c| c.cpu_time);
        Some(at(to)?.saturating_sub(at(from)?))
    }
}

/// The report: the setting, a markdown table, the JSON lines.
pub fn render(run: &ApiRun) -> String {
    let mut text = String::from("## berth API server at scale\n\n");
    for (name, value) in &run.machine {
        let _ = writeln!(text, "- {name}: {value}");
    }
    let _ = writeln!(text, "- berth: {}", run.berth_version);
    let _ = writeln!(text, "- command: `{}`", run.command);
    let _ = writeln!(
        text,
        "- server: one `berth server` replica on 127.0.0.1 (`{} --api-listen 127.0.0.1:PORT`); \
         the load generator runs on the same machine",
        server_flags().join(" ")
    );
    let _ = writeln!(
        text,
        "- {} pods bound to `{NODE}` (a node with no agent), created by {} writers on keep-alive \
         connections; {} whole lists in pages of {} on one connection; a watch of {} label patches \
         by the same writers, then a second watch replaying them from the store's history",
        run.pods, run.conns, run.lists, run.page, run.pods
    );
    text.push_str("\n| phase | measure | value |\n| --- | --- | ---: |\n");
    let mut row = |phase: &str, measure: String, value: String| {
        let _ = writeln!(text, "| {phase} | {measure} | {value} |");
    };
    if let Some(create) = &run.create {
        row("create", "pods/s".into(), format!("{:.0}", create.throughput_rps()));
        row("create", "latency p50 / p99 (ms)".into(), p50_p99(&create.latency));
    }
    if let Some((list, figures)) = &run.list {
        row("paged list", "pages/s".into(), format!("{:.1}", list.throughput_rps()));
        row("paged list", "pods/s".into(), format!("{:.0}", figures.objects_per_s));
        row(
            "paged list",
            "page latency p50 / p99 (ms)".into(),
            p50_p99(&list.latency),
        );
        row(
            "paged list",
            format!("a whole list of {} pods, median / max (ms)", run.pods),
            format!("{:.0} / {:.0}", ms(figures.list_time.p50), ms(figures.list_time.max)),
        );
        row(
            "paged list",
            "whole lists completed".into(),
            format!("{} of {}", figures.lists_completed, run.lists),
        );
        row(
            "paged list",
            "JSON bytes per pod".into(),
            format!("{:.0}", figures.bytes_per_object()),
        );
    }
    if let Some((watch, figures)) = &run.watch {
        let writes = &figures.writes;
        row(
            "watch",
            "label patches/s (the writers)".into(),
            format!("{:.0}", writes.throughput_rps()),
        );
        row("watch", "patch latency p50 / p99 (ms)".into(), p50_p99(&writes.latency));
        row(
            "watch",
            "events/s delivered".into(),
            format!("{:.0}", watch.throughput_rps()),
        );
        row(
            "watch",
            "patch acknowledged to event p50 / p99 / max (ms)".into(),
            format!(
                "{:.2} / {:.2} / {:.2}",
                ms(watch.latency.p50),
                ms(watch.latency.p99),
                ms(watch.latency.max)
            ),
        );
        let from_send = LatencySummary::from_samples(figures.delays.from_send.clone());
        row(
            "watch",
            "patch sent to event p50 / p99 / max (ms)".into(),
            format!(
                "{:.2} / {:.2} / {:.2}",
                ms(from_send.p50),
                ms(from_send.p99),
                ms(from_send.max)
            ),
        );
        row(
            "watch",
            "every event delivered once".into(),
            if watch.errors == 0 && watch.requests == run.pods {
                format!("yes ({} events)", watch.requests)
            } else {
                format!(
                    "**no**: {} delivered, {} missing, {} duplicates",
                    watch.detail_u64("events_delivered"),
                    figures.delays.missing,
                    watch.detail_u64("duplicates")
                )
            },
        );
        row(
            "watch",
            "events that arrived before their patch's answer (counted as 0 ms)".into(),
            figures.delays.before_ack.to_string(),
        );
        row(
            "watch",
            "events/s replayed from history (a second watch from the same revision)".into(),
            format!(
                "{:.0} ({} events)",
                figures.replay_events_per_s, figures.replay_delivered
            ),
        );
        row(
            "watch",
            "JSON bytes per event".into(),
            format!("{:.0}", figures.bytes_per_event),
        );
    }
    for checkpoint in &run.checkpoints {
        row(
            "server",
            format!(
                "RSS {} (MiB), peak so far in brackets",
                describe_checkpoint(checkpoint.name)
            ),
            format!(
                "{:.1} ({:.1})",
                mib(checkpoint.memory.rss_kib),
                mib(checkpoint.memory.peak_rss_kib)
            ),
        );
    }
    let per = |from: &str, to: &str, count: u64| {
        run.cpu_between(from, to).map_or("?".to_owned(), |cpu| {
            format!("{:.0}", cpu.as_secs_f64() * 1e6 / count.max(1) as f64)
        })
    };
    let listed = run.list.as_ref().map_or(0, |(_, figures)| figures.objects);
    row(
        "server",
        "CPU per pod created (µs)".into(),
        per("started", "created", run.pods),
    );
    row(
        "server",
        "CPU per pod listed (µs)".into(),
        per("created", "listed", listed),
    );
    row(
        "server",
        "CPU per patch and its event (µs)".into(),
        per("listed", "watched", run.pods),
    );
    row(
        "server",
        "CPU per replayed event (µs)".into(),
        per("watched", "replayed", run.pods),
    );
    row(
        "server",
        "data dir at the end (MiB)".into(),
        format!("{:.1}", mib(run.data_dir_bytes / 1024)),
    );
    row(
        "machine",
        "CPU used by other processes meanwhile (% of the machine)".into(),
        run.others_cpu_share
            .map_or("?".to_owned(), |share| format!("{:.1}", share * 100.0)),
    );

    text.push_str("\n```json\n");
    for report in [
        run.create.as_ref(),
        run.list.as_ref().map(|(report, _)| report),
        run.watch.as_ref().map(|(_, figures)| &figures.writes),
        run.watch.as_ref().map(|(report, _)| report),
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(text, "{}", report.to_json_line(&[("pods", json!(run.pods))]));
    }
    let checkpoints: Vec<serde_json::Value> = run
        .checkpoints
        .iter()
        .map(|c| {
            json!({
                "at": c.name,
                "rss_kib": c.memory.rss_kib,
                "peak_rss_kib": c.memory.peak_rss_kib,
                "cpu_s": (c.cpu_time.as_secs_f64() * 100.0).round() / 100.0,
            })
        })
        .collect();
    let fields = [
        ("workload", json!("api-server")),
        ("pods", json!(run.pods)),
        ("checkpoints", json!(checkpoints)),
        ("data_dir_bytes", json!(run.data_dir_bytes)),
        (
            "others_cpu_share",
            run.others_cpu_share
                .map_or(json!(null), |share| json!((share * 1000.0).round() / 1000.0)),
        ),
    ];
    let _ = writeln!(
        text,
        "{}",
        json_line(fields.map(|(name, value)| (name.to_owned(), value)))
    );
    text.push_str("```\n");
    text
}

fn describe_checkpoint(name: &str) -> &'static str {
    match name {
        "started" => "after start",
        "created" => "after the creates",
        "listed" => "after the lists",
        "watched" => "after the patches and their watch",
        "replayed" => "after the replaying watch",
        _ => "at a checkpoint",
    }
}

fn p50_p99(latency: &LatencySummary) -> String {
    format!("{:.2} / {:.2}", ms(latency.p50), ms(latency.p99))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
