//! Container log files, shared by the runtimes so that `logs`, `logs -f` and `logs
//! --previous` read the same layout whichever runtime ran the container:
//!
//! ```text
//! state_dir/logs/<pod_uid>/<container>.log          stdout and stderr, appended across restarts
//! state_dir/logs/<pod_uid>/<container>.log.starts   the log's length at each start
//! state_dir/logs/<pod_uid>/<container>.log.times    when each chunk was written
//! ```
//!
//! The container's stdout and stderr are a pipe to the log writer, a process of its
//! own (or, without one, the file itself), so the container keeps writing when the
//! agent is gone. A container's restarts
//! append to one file (so `logs -f` follows across them); the `.starts` file beside it
//! holds one decimal offset per line, which is what `logs --previous` needs: the
//! previous instance is the bytes between the last two starts. When the output goes
//! through the log writer (`log_writer`), `<container>.log.times` beside them holds
//! when each chunk was written.

use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::RuntimeError;
use super::spec_check::path_component;

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

#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
    /// The log writer's program (the berth binary), when output goes through one.
    writer: Option<PathBuf>,
}

/// Where a new instance of a container writes: what its supervisor shell is handed.
#[derive(Debug)]
pub struct LogSink {
    /// The log, opened for appending: the supervisor's stdout and stderr, which it
    /// hands to the log writer, or to the container when there is none.
    pub file: std::fs::File,
    pub path: PathBuf,
    /// The log writer's program (`log_writer`), if any.
    pub writer: Option<PathBuf>,
}

impl LogSink {
    /// The supervisor script's `writer` and `log` arguments (an empty writer: none).
    pub fn script_args(&self) -> [&std::ffi::OsStr; 2] {
        [
            self.writer.as_deref().map_or("".as_ref(), Path::as_os_str),
            self.path.as_os_str(),
        ]
    }
}

impl LogFiles {
    /// `state_dir/logs`, created if missing.
    pub fn open(state_dir: &Path) -> Result<LogFiles, RuntimeError> {
        let dir = state_dir.join("logs");
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::StateDir {
            what: "cannot create the logs directory",
            path: dir.clone(),
            source,
        })?;
        Ok(LogFiles { dir, writer: None })
    }

    /// Writes containers' output through the log writer, `program log-writer ...`
    /// (the berth binary), which records each line's time.
    pub fn set_writer(&mut self, program: PathBuf) {
        self.writer = Some(program);
    }

    pub fn path(&self, pod_uid: &str, container: &str) -> PathBuf {
        self.dir
            .join(path_component(pod_uid))
            .join(format!("{}.log", path_component(container)))
    }

    /// The container's log file, opened for appending (created with its directory), for
    /// a new instance of the container: its start is marked first.
    pub fn open_for_start(&self, pod_uid: &str, container: &str) -> Result<LogSink, RuntimeError> {
        let path = self.path(pod_uid, container);
        let state_dir_error = |source| RuntimeError::StateDir {
            what: "cannot open the log file",
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(state_dir_error)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(state_dir_error)?;
        mark_instance_start(&path).map_err(|source| RuntimeError::StateDir {
            what: "cannot mark the container's start in its log",
            path: path.clone(),
            source,
        })?;
        Ok(LogSink {
            file,
            path,
            writer: self.writer.clone(),
        })
    }

    pub fn remove_pod(&self, pod_uid: &str) {
        let dir = self.dir.join(path_component(pod_uid));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(dir = %dir.display(), %error, "cannot remove a pod's logs"),
        }
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
