//! A description of the machine and the software under test, for the report.

use std::path::Path;
use std::process::Command;

/// Lines such as `cpu: 2 × Intel Xeon ...`, `memory: 23.4 GiB`.
pub fn describe(data_root: &Path) -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism().map_or(0, |count| count.get());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown model".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |release| release.trim().to_owned());
    vec![
        ("cpu".to_owned(), format!("{cpus} × {cpu_model} (nproc {cpus})")),
        ("memory".to_owned(), memory),
        ("kernel".to_owned(), format!("Linux {kernel}")),
        ("data disk".to_owned(), disk_of(data_root)),
    ]
}

/// Device, file system, size and whether it spins, of the disk holding `path`.
fn disk_of(path: &Path) -> String {
    let Some(df) = command_output(
        "df",
        &["--output=source,fstype,size", "-h", &path.display().to_string()],
    ) else {
        return "unknown".to_owned();
    };
    let Some(line) = df.lines().nth(1) else {
        return "unknown".to_owned();
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let device = fields.first().copied().unwrap_or("?");
    let rotational = device
        .strip_prefix("/dev/")
        .and_then(|name| std::fs::read_to_string(format!("/sys/block/{name}/queue/rotational")).ok())
        .map(|flag| {
            if flag.trim() == "1" {
                ", rotational"
            } else {
                ", non-rotational"
            }
        })
        .unwrap_or("");
    format!(
        "{device} ({}, {}{rotational})",
        fields.get(1).unwrap_or(&"?"),
        fields.get(2).unwrap_or(&"?")
    )
}

/// The first line of `program args...`' standard output, if it ran.
pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub fn first_line(text: Option<String>) -> String {
    text.and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
