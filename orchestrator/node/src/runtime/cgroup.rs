//! Cgroup limits for the process runtime, where the host has cgroups and lets us write
//! them: v1 (this project's hosts: a hybrid layout) and, best effort, v2.
//!
//! ```text
//! v1: <memory mount>/berth/<id>/memory.limit_in_bytes (+ memory.memsw.limit_in_bytes)
//!     <cpu mount>/berth/<id>/cpu.cfs_quota_us, cpu.cfs_period_us
//!     (the cpu mount is /sys/fs/cgroup/cpu,cpuacct or /sys/fs/cgroup/cpu: read from
//!     /proc/self/mounts)
//! v2: /sys/fs/cgroup/berth/<id>/memory.max, memory.swap.max, cpu.max
//! ```
//!
//! A directory is made for a controller the spec limits, and, for usage accounting
//! (the agent's metrics, `runtime::usage`), in the memory and cpuacct hierarchies
//! for every container, limited or not (best effort: a host that refuses them runs
//! the container unaccounted). The runtime writes the limits before the container
//! starts; the wrapper moves itself into the directories (`cgroup.procs`) before it
//! runs the command, so the command never runs unlimited.
//!
//! When a container ends, its memory cgroup (still there: it goes with `remove`) says
//! whether the kernel's OOM killer ended it:
//!
//! ```text
//! v1: memory.oom_control  "oom_kill N"  (kernels from 4.13)    memory.failcnt  N
//! v2: memory.events       "oom_kill N"                         "max N"
//!     OOM kills ──────────────────────┘        limit hits ───────────┘
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PARENT: &str = "berth";
const CPU_PERIOD_US: u64 = 100_000;
/// The kernel refuses a CFS quota below 1 ms.
const CPU_QUOTA_MIN_US: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
        /// The cpuacct hierarchy (the cpu one's mount when they are mounted together).
        cpuacct: Option<PathBuf>,
    },
    V2 {
        root: PathBuf,
    },
    Unavailable,
}

/// A container's cgroups: the directories to remove with it and the `cgroup.procs`
/// files its wrapper joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerCgroup {
    pub dirs: Vec<PathBuf>,
    pub procs_files: Vec<PathBuf>,
}

impl CgroupLayout {
    pub fn detect() -> CgroupLayout {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            return CgroupLayout::V2 {
                root: root.to_path_buf(),
            };
        }
        match std::fs::read_to_string("/proc/self/mounts") {
            Ok(mounts) => v1_layout(&mounts),
            Err(_) => CgroupLayout::Unavailable,
        }
    }

    /// Makes the container's cgroups with its limits, and those that account its
    /// usage. Without limits, only the accounting ones, where the host lets us (none
    /// is no error). On error, whatever was made is removed again, and the error says
    /// why.
    pub fn create(
        &self,
        id: &str,
        memory_limit_bytes: Option<u64>,
        cpu_limit_millis: Option<u64>,
    ) -> Result<ContainerCgroup, String> {
        let mut made = ContainerCgroup::default();
        if memory_limit_bytes.is_some() || cpu_limit_millis.is_some() {
            let result = self.create_into(&mut made, id, memory_limit_bytes, cpu_limit_millis);
            if let Err(error) = result {
                remove_dirs(&made.dirs);
                return Err(error);
            }
        }
        self.create_accounting(&mut made, id);
        Ok(made)
    }

    /// The memory and cpuacct directories (v1) or the one directory (v2) the usage is
    /// read from, where not made already; one the host refuses is left out.
    fn create_accounting(&self, made: &mut ContainerCgroup, id: &str) {
        let wanted: Vec<PathBuf> = match self {
            CgroupLayout::Unavailable => Vec::new(),
            CgroupLayout::V1 { memory, cpuacct, .. } => [memory, cpuacct]
                .into_iter()
                .flatten()
                .map(|m| m.join(PARENT).join(id))
                .collect(),
            CgroupLayout::V2 { root } => {
                enable_controllers(root);
                let parent = root.join(PARENT);
                if std::fs::create_dir_all(&parent).is_ok() {
                    enable_controllers(&parent);
                }
                vec![parent.join(id)]
            }
        };
        for dir in wanted {
            if made.dirs.contains(&dir) {
                continue;
            }
            if let Err(reason) = make_dir(made, &dir) {
                tracing::debug!(container = id, %reason, "a container without usage accounting");
            }
        }
    }

    fn create_into(
        &self,
        made: &mut ContainerCgroup,
        id: &str,
        memory_limit_bytes: Option<u64>,
        cpu_limit_millis: Option<u64>,
    ) -> Result<(), String> {
        match self {
            CgroupLayout::Unavailable => Err("no cgroup hierarchy is mounted".to_owned()),
            CgroupLayout::V1 { memory, cpu, .. } => {
                if let Some(bytes) = memory_limit_bytes {
                    let mount = memory.as_ref().ok_or("no cgroup v1 memory controller is mounted")?;
                    let dir = make_dir(made, &mount.join(PARENT).join(id))?;
                    write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    // With swap accounting, also cap memory+swap, so the limit kills
                    // rather than swaps (absent without swap accounting: best effort).
                    let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), bytes.to_string());
                }
                if let Some(millis) = cpu_limit_millis {
                    let mount = cpu.as_ref().ok_or("no cgroup v1 cpu controller is mounted")?;
                    let dir = make_dir(made, &mount.join(PARENT).join(id))?;
                    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &cpu_quota_us(millis).to_string())?;
                }
                Ok(())
            }
            CgroupLayout::V2 { root } => {
                let parent = root.join(PARENT);
                enable_controllers(root);
                std::fs::create_dir_all(&parent).map_err(|e| describe(&parent, &e))?;
                enable_controllers(&parent);
                let dir = make_dir(made, &parent.join(id))?;
                if let Some(bytes) = memory_limit_bytes {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                if let Some(millis) = cpu_limit_millis {
                    write(
                        &dir.join("cpu.max"),
                        &format!("{} {CPU_PERIOD_US}", cpu_quota_us(millis)),
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Best effort: the controllers may be enabled already, or not ours to enable.
fn enable_controllers(dir: &Path) {
    for controller in ["+memory", "+cpu"] {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), controller);
    }
}

fn make_dir(made: &mut ContainerCgroup, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| describe(dir, &e))?;
    made.dirs.push(dir.to_path_buf());
    made.procs_files.push(dir.join("cgroup.procs"));
    Ok(dir.to_path_buf())
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| describe(path, &e))
}

fn describe(path: &Path, error: &io::Error) -> String {
    format!("{}: {error}", path.display())
}

/// What a container's memory cgroup counted, read once the container has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    /// Processes the OOM killer killed in the cgroup; `None` where the kernel does not
    /// count them (v1 before 4.13) or there is no memory cgroup.
    pub oom_kills: Option<u64>,
    /// How often the usage reached the limit (which reclaim may have resolved).
    pub limit_hits: Option<u64>,
}

impl MemoryEvents {
    /// From the container's cgroup directories: the one with a memory controller's
    /// files, v1 or v2; nothing is known when there is none.
    pub fn read(dirs: &[PathBuf]) -> MemoryEvents {
        let read = |path: PathBuf| std::fs::read_to_string(path).ok();
        for dir in dirs {
            if let Some(oom_control) = read(dir.join("memory.oom_control")) {
                return MemoryEvents {
                    oom_kills: counter(&oom_control, "oom_kill"),
                    limit_hits: read(dir.join("memory.failcnt")).and_then(|n| n.trim().parse().ok()),
                };
            }
            if let Some(events) = read(dir.join("memory.events")) {
                return MemoryEvents {
                    oom_kills: counter(&events, "oom_kill"),
                    limit_hits: counter(&events, "max"),
                };
            }
        }
        MemoryEvents::default()
    }
}

/// Whether an exit was the OOM killer's: death by SIGKILL (137) in a cgroup where the
/// OOM killer has killed. A kernel that does not count OOM kills leaves the limit hits
/// as the sign; SIGKILL without either is someone else's (a stop's grace running out).
pub fn is_oom_kill(exit_code: i32, events: MemoryEvents) -> bool {
    const SIGKILL_EXIT: i32 = 128 + 9;
    exit_code == SIGKILL_EXIT
        && match events.oom_kills {
            Some(kills) => kills > 0,
            None => events.limit_hits.is_some_and(|hits| hits > 0),
        }
}

/// The value of a `name N` line of a cgroup's key-value file.
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        if key == name { value.trim().parse().ok() } else { None }
    })
}

/// CFS quota per 100 ms period for a limit in millicores (1000 = one CPU).
pub fn cpu_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(CPU_QUOTA_MIN_US)
}

/// The v1 memory and cpu mount points in a `/proc/self/mounts` text.
pub fn v1_layout(mounts: &str) -> CgroupLayout {
    let mut memory = None;
    let mut cpu = None;
    let mut cpuacct = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_device, mount_point, "cgroup", options, ..] = fields[..] else {
            continue;
        };
        let has = |name: &str| options.split(',').any(|o| o == name);
        for (name, found) in [("memory", &mut memory), ("cpu", &mut cpu), ("cpuacct", &mut cpuacct)] {
            if has(name) && found.is_none() {
                *found = Some(PathBuf::from(mount_point));
            }
        }
    }
    if memory.is_none() && cpu.is_none() && cpuacct.is_none() {
        CgroupLayout::Unavailable
    } else {
        CgroupLayout::V1 { memory, cpu, cpuacct }
    }
}

/// Every cgroup hierarchy's mount point (v1 `cgroup` and v2 `cgroup2`) in a
/// `/proc/self/mounts` text: runc makes a container's cgroup in each.
pub fn all_mount_points(mounts: &str) -> Vec<PathBuf> {
    mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [_device, mount_point, "cgroup" | "cgroup2", ..] => Some(PathBuf::from(mount_point)),
                _ => None,
            }
        })
        .collect()
}

/// Removes a stopped container's cgroup directories. The kernel may still count a
/// process that has just died for a moment, so a busy directory is retried briefly;
/// one that stays busy is left behind and named in a warning.
pub fn remove_dirs(dirs: &[PathBuf]) {
    for dir in dirs {
        let mut attempts = 0;
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if attempts < 10 && e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot remove a container's cgroup");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    #[test]
    fn finds_separate_v1_mounts() {
        assert_eq!(
            v1_layout(HYBRID_MOUNTS),
            CgroupLayout::V1 {
                memory: Some("/sys/fs/cgroup/memory".into()),
                cpu: Some("/sys/fs/cgroup/cpu".into()),
                cpuacct: Some("/sys/fs/cgroup/cpuacct".into()),
            }
        );
    }

    #[test]
    fn finds_the_joint_cpu_cpuacct_mount_and_not_cpuset() {
        let mounts = "\
cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,cpuset 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
";
        assert_eq!(
            v1_layout(mounts),
            CgroupLayout::V1 {
                memory: None,
                cpu: Some("/sys/fs/cgroup/cpu,cpuacct".into()),
                cpuacct: Some("/sys/fs/cgroup/cpu,cpuacct".into()),
            }
        );
    }

    #[test]
    fn every_hierarchy_is_found() {
        assert_eq!(
            all_mount_points(HYBRID_MOUNTS),
            ["cpu", "cpuacct", "memory", "unified"]
                .map(|name| PathBuf::from("/sys/fs/cgroup").join(name))
                .to_vec()
        );
    }

    #[test]
    fn no_v1_mounts_is_unavailable() {
        assert_eq!(
            v1_layout("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"),
            CgroupLayout::Unavailable
        );
    }

    #[test]
    fn cpu_quota_is_per_100ms_and_at_least_1ms() {
        assert_eq!(cpu_quota_us(1000), 100_000);
        assert_eq!(cpu_quota_us(250), 25_000);
        assert_eq!(cpu_quota_us(2500), 250_000);
        assert_eq!(cpu_quota_us(1), 1_000);
    }

    #[test]
    fn an_oom_kill_is_a_sigkill_the_memory_cgroup_counted() {
        let events = |oom_kills, limit_hits| MemoryEvents { oom_kills, limit_hits };
        // (case, exit code, what the cgroup counted, OOMKilled)
        let table = [
            ("the OOM killer killed", 137, events(Some(1), Some(40)), true),
            (
                "killed by a stop: limit reached, no OOM kill",
                137,
                events(Some(0), Some(3)),
                false,
            ),
            ("an old kernel: the limit was reached", 137, events(None, Some(3)), true),
            (
                "an old kernel: the limit was never reached",
                137,
                events(None, Some(0)),
                false,
            ),
            ("no memory cgroup", 137, events(None, None), false),
            (
                "another exit in a cgroup that OOM-killed",
                1,
                events(Some(1), Some(1)),
                false,
            ),
            ("SIGTERM", 143, events(Some(1), Some(1)), false),
        ];
        for (case, exit_code, counted, expected) in table {
            assert_eq!(is_oom_kill(exit_code, counted), expected, "{case}");
        }
    }

    #[test]
    fn memory_events_are_read_from_v1_and_v2_files() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2, cpu) = (dir.path().join("v1"), dir.path().join("v2"), dir.path().join("cpu"));
        for d in [&v1, &v2, &cpu] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(v1.join("memory.failcnt"), "17\n").unwrap();
        std::fs::write(
            v2.join("memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(
            MemoryEvents::read(&[cpu.clone(), v1]),
            MemoryEvents {
                oom_kills: Some(2),
                limit_hits: Some(17)
            }
        );
        assert_eq!(
            MemoryEvents::read(&[v2]),
            MemoryEvents {
                oom_kills: Some(1),
                limit_hits: Some(5)
            }
        );
        assert_eq!(MemoryEvents::read(&[cpu]), MemoryEvents::default());
        let old_kernel = "oom_kill_disable 0\nunder_oom 0\n";
        assert_eq!(counter(old_kernel, "oom_kill"), None);
        assert_eq!(
            counter("oom_kill_disable 1\n", "oom_kill"),
            None,
            "a longer key is another key"
        );
    }

    #[test]
    fn accounting_directories_are_made_for_unlimited_containers_too() {
        let dir = tempfile::tempdir().unwrap();
        let (memory, cpu, cpuacct) = (
            dir.path().join("memory"),
            dir.path().join("cpu"),
            dir.path().join("cpuacct"),
        );
        let layout = CgroupLayout::V1 {
            memory: Some(memory.clone()),
            cpu: Some(cpu.clone()),
            cpuacct: Some(cpuacct.clone()),
        };
        let made = layout.create("c1", None, None).unwrap();
        assert_eq!(made.dirs, [memory.join("berth/c1"), cpuacct.join("berth/c1")]);
        assert!(made.dirs.iter().all(|d| d.is_dir()));
        // With a memory limit, the memory directory is made once.
        let made = layout.create("c2", Some(1 << 20), None).unwrap();
        assert_eq!(made.dirs, [memory.join("berth/c2"), cpuacct.join("berth/c2")]);
        assert_eq!(
            std::fs::read_to_string(memory.join("berth/c2/memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
    }

    #[test]
    fn unavailable_needs_nothing_without_limits_and_says_why_with_them() {
        let layout = CgroupLayout::Unavailable;
        assert_eq!(layout.create("x", None, None), Ok(ContainerCgroup::default()));
        assert!(
            layout
                .create("x", Some(1 << 20), None)
                .unwrap_err()
                .contains("no cgroup")
        );
    }
}
