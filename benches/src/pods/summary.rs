//! The pods benchmark's report: the setting, a markdown table of the two halves side
//! by side with the ratio and the SLO, and one JSON line per half.

use std::fmt::Write;
use std::time::Duration;

use serde_json::json;

use super::PodsOptions;
use crate::latency::ms;
use crate::report::{Report, json_line};

/// Picks one latency of a report, for one row of the table.
type Pick = fn(&Report) -> Duration;

/// The Kubernetes pod startup SLO: p99 of pod start, image pull excluded, ≤ 5 s.
pub const STARTUP_SLO: Duration = Duration::from_secs(5);

pub struct PodsRun {
    pub machine: Vec<(String, String)>,
    pub command: String,
    pub pods: u64,
    pub agent_args: Vec<String>,
    pub runtime_class: Option<String>,
    pub runc_version: String,
    pub berth_version: String,
    pub runc: Option<Report>,
    pub berth: Option<Report>,
    /// The agent's RSS at each point: idle, with the timed pods, with --rss-pods.
    pub agent_rss_kib: Vec<(String, u64)>,
}

impl PodsRun {
    pub fn new(options: &PodsOptions, machine: Vec<(String, String)>) -> PodsRun {
        PodsRun {
            machine,
            command: crate::compare::command_line(),
            pods: options.pods,
            agent_args: options.agent_args.clone(),
            runtime_class: options.runtime_class.clone(),
            runc_version: String::new(),
            berth_version: String::new(),
            runc: None,
            berth: None,
            agent_rss_kib: Vec::new(),
        }
    }
}

pub fn render(run: &PodsRun) -> String {
    let mut text = String::from("## Pod start latency, image cached: berth against bare runc\n\n");
    for (name, value) in &run.machine {
        let _ = writeln!(text, "- {name}: {value}");
    }
    if run.runc.is_some() {
        let _ = writeln!(text, "- runc: {}", run.runc_version);
    }
    if run.berth.is_some() {
        let _ = writeln!(text, "- berth: {}", run.berth_version);
        let _ = writeln!(
            text,
            "- the agent's extra flags: {}; the pods' runtimeClassName: {}",
            if run.agent_args.is_empty() {
                "none".to_owned()
            } else {
                format!("`{}`", run.agent_args.join(" "))
            },
            run.runtime_class.as_deref().unwrap_or("none (the agent's default)")
        );
    }
    let _ = writeln!(text, "- command: `{}`", run.command);
    let _ = writeln!(
        text,
        "- {} starts one after another: bare `runc run -d` of busybox `sleep 3600` (each its own \
         cgroup, the rootfs shared read-only), and berth pods of the same image from a loopback \
         registry, pulled once before, from POST to Running on a watch",
        run.pods
    );

    text.push_str("\n| measure | runc (floor) | berth | berth/runc | target | met |\n");
    text.push_str("| --- | ---: | ---: | ---: | --- | --- |\n");
    let latency = |report: &Option<Report>, pick: Pick| report.as_ref().map(pick);
    let cell = |value: Option<Duration>| value.map_or("—".to_owned(), |value| format!("{:.1}", ms(value)));
    let ratio = |runc: Option<Duration>, berth: Option<Duration>| match (runc, berth) {
        (Some(runc), Some(berth)) if !runc.is_zero() => format!("{:.2}", berth.as_secs_f64() / runc.as_secs_f64()),
        _ => "—".to_owned(),
    };
    let rows: [(&str, Pick); 3] = [
        ("start p50 (ms)", |r| r.latency.p50),
        ("start p99 (ms)", |r| r.latency.p99),
        ("start max (ms)", |r| r.latency.max),
    ];
    for (name, pick) in rows {
        let (runc, berth) = (latency(&run.runc, pick), latency(&run.berth, pick));
        let (target, met) = if name.starts_with("start p99") {
            let met = berth.map_or("—", |p99| if p99 <= STARTUP_SLO { "yes" } else { "no" });
            ("≤ 5000 (the Kubernetes SLO)", met)
        } else {
            ("", "")
        };
        let _ = writeln!(
            text,
            "| {name} | {} | {} | {} | {target} | {met} |",
            cell(runc),
            cell(berth),
            ratio(runc, berth)
        );
    }
    for (at, rss_kib) in &run.agent_rss_kib {
        let _ = writeln!(
            text,
            "| agent RSS, {at} (MiB) |  | {:.1} |  |  |  |",
            *rss_kib as f64 / 1024.0
        );
    }
    text.push('\n');
    for report in [&run.runc, &run.berth].into_iter().flatten() {
        text.push_str(&report.to_json_line(&[]));
        text.push('\n');
    }
    if !run.agent_rss_kib.is_empty() {
        let points: Vec<_> = run
            .agent_rss_kib
            .iter()
            .map(|(at, rss_kib)| json!({"at": at, "rss_kib": rss_kib}))
            .collect();
        text.push_str(&json_line([
            ("workload".to_owned(), json!("pods-agent")),
            ("rss".to_owned(), json!(points)),
        ]));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Outcome;

    fn report(workload: &str, millis: &[u64]) -> Report {
        let outcome = Outcome {
            latencies: millis.iter().map(|&m| Duration::from_millis(m)).collect(),
            elapsed: Duration::from_secs(1),
            ..Outcome::default()
        };
        Report::new(workload, &[], 1, 1, outcome)
    }

    #[test]
    fn the_table_sets_berth_against_the_floor_and_the_slo() {
        let run = PodsRun {
            machine: vec![("cpu".into(), "2".into())],
            command: "berth-bench pods".into(),
            pods: 3,
            agent_args: Vec::new(),
            runtime_class: None,
            runc_version: "runc version 1.1.5".into(),
            berth_version: "berth 0.1.0".into(),
            runc: Some(report("pods-runc", &[100, 100, 200])),
            berth: Some(report("pods-berth", &[300, 400, 6000])),
            agent_rss_kib: vec![("idle".into(), 10_240), ("100 pods".into(), 20_480)],
        };
        let text = render(&run);
        assert!(
            text.contains("| start p50 (ms) | 100.0 | 400.0 | 4.00 |  |  |"),
            "{text}"
        );
        assert!(
            text.contains("| start p99 (ms) | 200.0 | 6000.0 | 30.00 | ≤ 5000 (the Kubernetes SLO) | no |"),
            "{text}"
        );
        assert!(text.contains("| agent RSS, 100 pods (MiB) |  | 20.0 |"), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter(|line| line.starts_with('{'))
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let workloads: Vec<&str> = lines.iter().map(|line| line["workload"].as_str().unwrap()).collect();
        assert_eq!(workloads, ["pods-runc", "pods-berth", "pods-agent"]);
        assert_eq!(lines[2]["rss"][1]["rss_kib"], 20_480);
    }
}
