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

/// CPU time counters, in the kernel's clock ticks, to tell how much of the machine
/// other processes used while a cluster was measured.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    /// All CPUs' busy and total time (/proc/stat).
    machine_busy: u64,
    machine_total: u64,
    /// This process and its reaped children (the servers it ran): /proc/self/stat.
    own: u64,
}

impl CpuSample {
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let times: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        let machine_total: u64 = times.iter().take(8).sum();
        // idle and iowait are the 4th and 5th fields.
        let machine_idle = times.get(3)? + times.get(4)?;
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which is in parentheses and may hold spaces):
        // utime, stime, cutime and cstime are the 12th to 15th.
        let after_name = own_stat.rsplit_once(')')?.1;
        let own: u64 = after_name
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|field| field.parse::<u64>().ok())
            .sum();
        Some(Self {
            machine_busy: machine_total - machine_idle,
            machine_total,
            own,
        })
    }

    /// The share of the machine's CPU time (0..1) that went to processes other than this
    /// one and its reaped children between `self` and `later`.
    pub fn others_share(&self, later: &CpuSample) -> f64 {
        let total = later.machine_total.saturating_sub(self.machine_total);
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let own = later.own.saturating_sub(self.own);
        if total == 0 {
            return 0.0;
        }
        busy.saturating_sub(own) as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cpu_time() {
        let before = CpuSample::now().expect("/proc is readable");
        let mut spin = 0u64;
        for value in 0..5_000_000u64 {
            spin = spin.wrapping_add(value * value);
        }
        std::hint::black_box(spin);
        let after = CpuSample::now().expect("/proc is readable");
        let share = before.others_share(&after);
        assert!((0.0..=1.0).contains(&share), "share {share}");
    }
}
