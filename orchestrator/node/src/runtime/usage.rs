//! What a container's cgroups, and the node, have used so far: the counters the
//! agent's metrics sample (`agent::metrics`), read as the kubelet's cAdvisor reads
//! them.
//!
//! ```text
//! container, v1: cpuacct/.../cpuacct.usage                      CPU time, ns
//!                memory/.../memory.usage_in_bytes
//!                  - memory.stat total_inactive_file            working set, bytes
//! container, v2: cpu.stat usage_usec * 1000
//!                memory.current - memory.stat inactive_file
//! node:          /proc/stat "cpu" line: every field but idle and iowait (and the
//!                guest fields, already counted in user), in clock ticks
//!                /proc/meminfo MemTotal - MemFree - Inactive(file)
//! ```
//!
//! Each counter is read from whichever of the container's directories has its file;
//! a counter no directory has is unknown (`None`), not zero.

use std::path::{Path, PathBuf};

/// Cumulative CPU time and the memory working set at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounters {
    pub cpu_usage_ns: Option<u64>,
    pub working_set_bytes: Option<u64>,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of a `name N` line of a cgroup's key-value file.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        if key == name { number(value) } else { None }
    })
}

/// A container's counters from its cgroup directories (v1 or v2).
pub fn read_cgroup(dirs: &[PathBuf]) -> UsageCounters {
    let mut counters = UsageCounters::default();
    for dir in dirs {
        if counters.cpu_usage_ns.is_none() {
            counters.cpu_usage_ns = read(&dir.join("cpuacct.usage"))
                .and_then(|t| number(&t))
                .or_else(|| Some(field(&read(&dir.join("cpu.stat"))?, "usage_usec")?.saturating_mul(1000)));
        }
        if counters.working_set_bytes.is_none() {
            counters.working_set_bytes = working_set_v1(dir).or_else(|| working_set_v2(dir));
        }
    }
    counters
}

fn working_set_v1(dir: &Path) -> Option<u64> {
    let usage = number(&read(&dir.join("memory.usage_in_bytes"))?)?;
    let inactive = read(&dir.join("memory.stat"))
        .and_then(|stat| field(&stat, "total_inactive_file"))
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

fn working_set_v2(dir: &Path) -> Option<u64> {
    let usage = number(&read(&dir.join("memory.current"))?)?;
    let inactive = read(&dir.join("memory.stat"))
        .and_then(|stat| field(&stat, "inactive_file"))
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// The node's counters from `/proc/stat` and `/proc/meminfo` texts; `ticks_per_second`
/// is the kernel's USER_HZ.
pub fn read_node(proc_stat: &str, meminfo: &str, ticks_per_second: u64) -> UsageCounters {
    let cpu_usage_ns = proc_stat.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.next() != Some("cpu") {
            return None;
        }
        let values: Vec<u64> = fields.filter_map(number).collect();
        // user nice system idle iowait irq softirq steal (guest guest_nice)
        let busy: u64 = values
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, v)| *v)
            .sum();
        Some(busy.saturating_mul(1_000_000_000) / ticks_per_second.max(1))
    });
    let kib = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            number(rest.trim().trim_end_matches("kB"))
        })
    };
    let working_set_bytes = (|| {
        let used = kib("MemTotal")?.saturating_sub(kib("MemFree")?);
        Some(
            used.saturating_sub(kib("Inactive(file)").unwrap_or(0))
                .saturating_mul(1024),
        )
    })();
    UsageCounters {
        cpu_usage_ns,
        working_set_bytes,
    }
}

/// USER_HZ, the unit of /proc/stat: 100 on every architecture Linux exports it
/// for (it is part of the kernel's ABI, whatever the kernel's own HZ).
const USER_HZ: u64 = 100;

/// This host's node counters now.
pub fn read_this_node() -> UsageCounters {
    let ticks = USER_HZ;
    read_node(
        &read(Path::new("/proc/stat")).unwrap_or_default(),
        &read(Path::new("/proc/meminfo")).unwrap_or_default(),
        ticks,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn v1_counters_come_from_cpuacct_and_memory_directories() {
        let root = tempfile::tempdir().unwrap();
        let memory = root.path().join("memory/berth/c1");
        let cpuacct = root.path().join("cpuacct/berth/c1");
        write(&cpuacct, "cpuacct.usage", "123456789\n");
        write(&memory, "memory.usage_in_bytes", "10485760\n");
        write(
            &memory,
            "memory.stat",
            "cache 4096\ninactive_file 4096\ntotal_inactive_file 2097152\ntotal_active_file 0\n",
        );
        let counters = read_cgroup(&[memory.clone(), cpuacct.clone()]);
        assert_eq!(
            counters,
            UsageCounters {
                cpu_usage_ns: Some(123_456_789),
                working_set_bytes: Some(10_485_760 - 2_097_152),
            }
        );
        // Whichever order the directories come in.
        assert_eq!(read_cgroup(&[cpuacct.clone(), memory]), counters);
        assert_eq!(
            read_cgroup(&[cpuacct]),
            UsageCounters {
                cpu_usage_ns: Some(123_456_789),
                working_set_bytes: None,
            },
            "no memory directory: the working set is unknown, not zero"
        );
    }

    #[test]
    fn inactive_file_pages_beyond_the_usage_leave_zero() {
        let root = tempfile::tempdir().unwrap();
        let memory = root.path().join("m");
        write(&memory, "memory.usage_in_bytes", "100\n");
        write(&memory, "memory.stat", "total_inactive_file 4096\n");
        assert_eq!(read_cgroup(&[memory]).working_set_bytes, Some(0));
    }

    #[test]
    fn v2_counters_come_from_one_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("berth/c1");
        write(&dir, "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n");
        write(&dir, "memory.current", "8192\n");
        write(&dir, "memory.stat", "anon 4096\nfile 4096\ninactive_file 1024\n");
        assert_eq!(
            read_cgroup(&[dir]),
            UsageCounters {
                cpu_usage_ns: Some(2_500_000),
                working_set_bytes: Some(7168),
            }
        );
    }

    #[test]
    fn the_node_counts_busy_ticks_and_memory_in_use() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 7 0\ncpu0 50 10 15 500 25 2 2 5 0 0\nintr 1\n";
        let meminfo = "MemTotal:       16000 kB\nMemFree:         4000 kB\nMemAvailable:    9000 kB\n\
                       Inactive(file):  3000 kB\n";
        let counters = read_node(stat, meminfo, 100);
        // user + nice + system + irq + softirq + steal = 170 ticks of 10 ms.
        assert_eq!(counters.cpu_usage_ns, Some(1_700_000_000));
        assert_eq!(counters.working_set_bytes, Some((16000 - 4000 - 3000) * 1024));
        assert_eq!(read_node("", "", 100), UsageCounters::default());
    }
}
