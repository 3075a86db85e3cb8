//! Where each instance of a container begins in its log file. A container's restarts
//! append to one file (so `logs -f` follows across them); beside it, `<log>.starts`
//! holds the file's length at each start, one decimal offset per line. That is what
//! `logs --previous` needs: the previous instance is the bytes between the last two
//! starts. Every runtime that writes logs marks its starts here, before the container
//! writes anything.

use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Which instance of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    /// The one started last (running, or the last to end).
    Current,
    /// The one before it.
    Previous,
}

fn starts_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".starts");
    log.with_file_name(name)
}

/// Records that a new instance starts at the log's current end. Call it after the
/// log file is opened (created) and before the container runs.
pub fn mark_instance_start(log: &Path) -> std::io::Result<()> {
    let offset = std::fs::metadata(log).map_or(0, |m| m.len());
    let mut starts = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(starts_path(log))?;
    writeln!(starts, "{offset}")
}

/// The byte range of `instance` in the log; None when there is no such instance
/// (no previous one before a first restart). The current one runs to the end of the
/// file (`u64::MAX`: it may still grow). A log without marks is one instance.
pub fn instance_range(log: &Path, instance: Instance) -> Option<Range<u64>> {
    let starts: Vec<u64> = std::fs::read_to_string(starts_path(log))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    match (instance, &starts[..]) {
        (Instance::Current, []) => Some(0..u64::MAX),
        (Instance::Current, [.., last]) => Some(*last..u64::MAX),
        (Instance::Previous, [.., before, last]) => Some(*before..*last),
        (Instance::Previous, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_the_spans_between_starts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("main.log");
        assert_eq!(instance_range(&log, Instance::Current), Some(0..u64::MAX));
        assert_eq!(instance_range(&log, Instance::Previous), None);

        std::fs::write(&log, "").unwrap();
        mark_instance_start(&log).unwrap();
        std::fs::write(&log, "first\n").unwrap();
        assert_eq!(instance_range(&log, Instance::Current), Some(0..u64::MAX));
        assert_eq!(instance_range(&log, Instance::Previous), None);

        mark_instance_start(&log).unwrap();
        assert_eq!(instance_range(&log, Instance::Current), Some(6..u64::MAX));
        assert_eq!(instance_range(&log, Instance::Previous), Some(0..6));
    }
}
