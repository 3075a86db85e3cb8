//! What a run prints: a summary for people, the same as one JSON line for tools,
//! and a timeline (HTML with inline SVG) of the operations with the faults drawn
//! across them, so a failure can be looked at rather than read.

use std::fmt::Write;

use crate::check::Verdict;
use crate::history::{Completed, Kind};
use crate::runner::RunReport;

pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "berth-jepsen: seed {}, {} nodes{}, {:.1} s",
        report.seed,
        report.nodes,
        if report.tls {
            " over TLS with client certificates"
        } else {
            ""
        },
        report.duration_s
    );
    let workloads: Vec<String> = report
        .workloads
        .iter()
        .map(|w| format!("{w:?}").to_lowercase())
        .collect();
    let _ = writeln!(out, "workloads: {}", workloads.join(", "));
    let faults: Vec<String> = report.faults_by_kind.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    let _ = writeln!(
        out,
        "faults: {}",
        if faults.is_empty() {
            "none".into()
        } else {
            faults.join(", ")
        }
    );
    for f in &report.faults {
        let _ = writeln!(
            out,
            "  {:>7.2}s–{:>7.2}s  {}",
            f.start_ns as f64 / 1e9,
            f.end_ns as f64 / 1e9,
            f.description
        );
    }
    let _ = writeln!(
        out,
        "operations: {} ok, {} fail, {} unknown",
        report.ops.ok, report.ops.fail, report.ops.info
    );
    let t = &report.throughput;
    let _ = writeln!(
        out,
        "throughput (ok ops/s): {:.0} quiet, {:.0} during faults, {:.0} after healing",
        t.quiet_ops_per_s, t.faulty_ops_per_s, t.after_ops_per_s
    );
    match report.recovery_s {
        Some(s) => {
            let _ = writeln!(out, "recovery: first write {s:.2} s after the final heal");
        }
        None => {
            let _ = writeln!(out, "recovery: NO write succeeded within 30 s of the final heal");
        }
    }
    let _ = writeln!(out, "checks:");
    for c in &report.checks {
        let _ = writeln!(
            out,
            "  {:<14} {:<8} {} ops checked in {:.2} s{}",
            c.name,
            format!("{:?}", c.verdict).to_lowercase(),
            c.ops_checked,
            c.elapsed.as_secs_f64(),
            if c.anomalies.is_empty() {
                String::new()
            } else {
                format!(", {} anomalies", c.anomalies.len())
            }
        );
    }
    if report.anomalies == 0 && report.valid {
        let _ = writeln!(out, "0 anomalies");
    } else {
        let _ = writeln!(out, "{} anomalies:", report.anomalies);
        for c in &report.checks {
            for a in c.anomalies.iter().take(10) {
                let _ = writeln!(
                    out,
                    "  [{}] {}: {} (operations {:?})",
                    c.name, a.kind, a.description, a.ops
                );
            }
            if c.anomalies.len() > 10 {
                let _ = writeln!(out, "  [{}] … and {} more", c.name, c.anomalies.len() - 10);
            }
            if c.verdict == Verdict::Unknown {
                let _ = writeln!(out, "  [{}] undecided (see above): not a pass", c.name);
            }
        }
    }
    let _ = writeln!(out, "run folder: {}", report.run_dir);
    let _ = writeln!(out, "reproduce: {}", report.reproduce);
    let _ = writeln!(out, "verdict: {}", if report.valid { "VALID" } else { "INVALID" });
    out
}

/// One line per client process, a bar per operation (green ok, red fail, grey
/// unknown), and the faults as shaded bands with their descriptions.
pub fn timeline_html(report: &RunReport, completed: &[Completed]) -> String {
    let end_ns = completed
        .iter()
        .map(|c| c.complete_ns.unwrap_or(c.invoke_ns))
        .chain(report.faults.iter().map(|f| f.end_ns))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut processes: Vec<u64> = completed.iter().map(|c| c.process).collect();
    processes.sort_unstable();
    processes.dedup();
    let row = 14.0;
    let width = 1400.0;
    let left = 80.0;
    let x = |ns: u64| left + (ns as f64 / end_ns as f64) * (width - left - 10.0);
    let height = 40.0 + row * processes.len() as f64;
    let flagged: std::collections::HashSet<usize> = report
        .checks
        .iter()
        .flat_map(|c| c.anomalies.iter().flat_map(|a| a.ops.iter().copied()))
        .collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="10">"#
    );
    for f in &report.faults {
        let (x0, x1) = (x(f.start_ns), x(f.end_ns));
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="0" width="{:.1}" height="{height}" fill="#f4c542" opacity="0.25"><title>{}</title></rect><text x="{x0:.1}" y="10">{}</text>"##,
            (x1 - x0).max(1.0),
            escape(&f.description),
            escape(&format!("{:?}", f.kind).to_lowercase())
        );
    }
    for (i, p) in processes.iter().enumerate() {
        let y = 20.0 + row * i as f64;
        let _ = write!(svg, r#"<text x="2" y="{:.1}">p{p}</text>"#, y + 10.0);
        for c in completed.iter().filter(|c| c.process == *p) {
            // Details only where a person will look: failures, unknowns, anomalies
            // (a tooltip on every operation makes the page too big to open).
            let detailed = c.kind != Kind::Ok || flagged.contains(&c.index);
            let x0 = x(c.invoke_ns);
            let x1 = c.complete_ns.map_or(width - 10.0, x);
            let colour = match c.kind {
                Kind::Ok => "#2e9e44",
                Kind::Fail => "#d23c3c",
                _ => "#999999",
            };
            let (y, w, h) = (y + 2.0, (x1 - x0).max(1.0), row - 4.0);
            if detailed {
                let title = escape(&format!("#{} {:?} {:?} rev {:?}", c.index, c.kind, c.op, c.revision));
                let stroke = if flagged.contains(&c.index) {
                    r#" stroke="black" stroke-width="2""#
                } else {
                    ""
                };
                let _ = write!(
                    svg,
                    r#"<rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{colour}"{stroke}><title>{title}</title></rect>"#
                );
            } else {
                let _ = write!(
                    svg,
                    r#"<rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{colour}"/>"#
                );
            }
        }
    }
    svg.push_str("</svg>");
    let mut anomalies = String::new();
    for c in &report.checks {
        for a in &c.anomalies {
            let _ = write!(
                anomalies,
                "<li><b>{}</b> {}: {} (operations {:?})</li>",
                c.name,
                escape(&a.kind),
                escape(&a.description),
                a.ops
            );
        }
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>berth-jepsen seed {seed}</title></head><body>\
         <h1>berth-jepsen: {verdict}</h1><p>seed {seed}, {nodes} nodes, {ops} operations. Bars: green ok, red fail, grey unknown; \
         yellow bands are faults; operations named in an anomaly are outlined in black (hover for details).</p>{svg}<h2>Anomalies</h2><ul>{anomalies}</ul>\
         <p>Reproduce: <code>{repro}</code></p></body></html>",
        seed = report.seed,
        verdict = if report.valid { "valid" } else { "INVALID" },
        nodes = report.nodes,
        ops = completed.len(),
        repro = escape(&report.reproduce),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
