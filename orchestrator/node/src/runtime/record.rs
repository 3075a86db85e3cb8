//! What the process runtime keeps on disk per container, so that a restarted agent
//! adopts the containers still running and learns how the others ended.
//!
//! ```text
//! state_dir/containers/<id>.json   the record: written before start() returns, and
//!                                  again once the exit has been observed
//! state_dir/containers/<id>.exit   the command's exit status, written by the wrapper
//!                                  shell (so it is known even with no agent running)
//! state_dir/containers/sequence    the last sequence number given to an id
//! ```
//!
//! Records are replaced by rename, so a reader sees the old or the new one, never half.
//! They are not fsynced: a host crash ends the containers too.
//!
//! A record's pid is only trusted together with the process start time (field 22 of
//! `/proc/<pid>/stat`): a pid reused by another process has another start time.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::cgroup::{self, MemoryEvents};
use super::{ContainerInfo, ContainerState, RuntimeError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub pod_uid: String,
    pub pod: String,
    pub name: String,
    pub sequence: u64,
    /// The wrapper shell's pid, which is also the container's process group id.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`, in clock ticks since boot.
    pub process_start_ticks: u64,
    pub started_at: SystemTime,
    /// Cgroup directories made for this container, removed with it.
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    /// Set once the runtime has seen the container end.
    #[serde(default)]
    pub exit: Option<ExitRecord>,
}

impl ContainerRecord {
    /// Takes in an exit just learnt: no earlier than the start (an exit file's mtime
    /// comes from the kernel's coarse clock, which may lag the clock that stamped the
    /// start by a tick), whether the OOM killer ended it (asked now, while the cgroup
    /// is still there: it goes with `remove`), and saved, so the exit stays the same
    /// across agent restarts. A record that cannot be saved is still right in memory;
    /// after a restart the exit file (or 137) would answer instead.
    pub fn settle_exit(&mut self, mut exit: ExitRecord, records: &RecordStore) {
        exit.finished_at = exit.finished_at.max(self.started_at);
        exit.oom_killed = cgroup::is_oom_kill(exit.exit_code, MemoryEvents::read(&self.cgroup_dirs));
        self.exit = Some(exit);
        tracing::info!(
            container = %self.id, exit_code = exit.exit_code, signal = ?exit.signal,
            oom_killed = exit.oom_killed, "container exited"
        );
        if let Err(error) = records.save(self) {
            tracing::warn!(%error, "cannot record a container's exit");
        }
    }

    /// What `Runtime::list` says of the container in `state`.
    pub fn info(&self, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: self.id.clone(),
            pod_uid: self.pod_uid.clone(),
            pod: self.pod.clone(),
            name: self.name.clone(),
            state,
            cgroup_dirs: self.cgroup_dirs.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub finished_at: SystemTime,
    /// The kernel's OOM killer ended it (absent in records of older agents: false).
    #[serde(default)]
    pub oom_killed: bool,
}

impl ExitRecord {
    /// From a shell-style status: above 128 means death by signal `status - 128`.
    pub fn from_status(status: i32, finished_at: SystemTime) -> ExitRecord {
        let signal = (129..=128 + 64).contains(&status).then(|| status - 128);
        ExitRecord {
            exit_code: status,
            signal,
            finished_at,
            oom_killed: false,
        }
    }

    /// Neither the wrapper nor the agent saw the end: the whole group was SIGKILLed.
    pub fn killed(finished_at: SystemTime) -> ExitRecord {
        ExitRecord::from_status(128 + 9, finished_at)
    }
}

/// The records directory, and the sequence that numbers container ids.
#[derive(Debug)]
pub struct RecordStore {
    dir: PathBuf,
    /// The last sequence number given (or found in a record).
    last_sequence: std::sync::Mutex<u64>,
}

impl RecordStore {
    pub fn open(dir: PathBuf) -> Result<RecordStore, RuntimeError> {
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::StateDir {
            what: "cannot create the records directory",
            path: dir.clone(),
            source,
        })?;
        let store = RecordStore {
            dir,
            last_sequence: std::sync::Mutex::new(0),
        };
        *store.sequence() = store.load_sequence();
        Ok(store)
    }

    fn sequence(&self) -> std::sync::MutexGuard<'_, u64> {
        // A number: consistent after a panic elsewhere.
        self.last_sequence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next number for a container id, never given before by this directory
    /// (saved before it is handed out).
    pub fn next_sequence(&self) -> Result<u64, RuntimeError> {
        let mut last = self.sequence();
        let sequence = *last + 1;
        self.save_sequence(sequence)?;
        *last = sequence;
        Ok(sequence)
    }

    pub fn exit_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.exit"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn sequence_path(&self) -> PathBuf {
        self.dir.join("sequence")
    }

    pub fn save(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        let bytes = serde_json::to_vec_pretty(record).expect("a record serializes");
        let path = self.record_path(&record.id);
        write_replacing(&path, &bytes).map_err(|source| RuntimeError::StateDir {
            what: "cannot write the container record",
            path,
            source,
        })
    }

    /// Every readable record; unreadable ones are logged and skipped (left on disk for
    /// a human to look at).
    pub fn load_all(&self) -> Result<Vec<ContainerRecord>, RuntimeError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| RuntimeError::StateDir {
            what: "cannot read the records directory",
            path: self.dir.clone(),
            source,
        })?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice::<ContainerRecord>(&bytes).map_err(|e| e.to_string()));
            match parsed {
                Ok(record) => records.push(record),
                Err(error) => tracing::warn!(
                    path = %path.display(), %error,
                    "skipping an unreadable container record"
                ),
            }
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let mut last = self.sequence();
        *last = records.iter().map(|r| r.sequence).fold(*last, u64::max);
        Ok(records)
    }

    /// Deletes the record and the exit file; a missing file is not an error.
    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        for path in [self.exit_path(id), self.record_path(id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(RuntimeError::StateDir {
                        what: "cannot delete",
                        path,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The status the wrapper wrote and when (the file's mtime), if it did.
    pub fn read_exit(&self, id: &str) -> Option<(i32, SystemTime)> {
        let path = self.exit_path(id);
        let text = std::fs::read_to_string(&path).ok()?;
        let status = parse_exit_file(&text)?;
        let finished_at = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        Some((status, finished_at))
    }

    fn load_sequence(&self) -> u64 {
        std::fs::read_to_string(self.sequence_path())
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }

    fn save_sequence(&self, sequence: u64) -> Result<(), RuntimeError> {
        let path = self.sequence_path();
        write_replacing(&path, format!("{sequence}\n").as_bytes()).map_err(|source| RuntimeError::StateDir {
            what: "cannot write the container sequence",
            path,
            source,
        })
    }
}

fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The wrapper writes the status and a newline in one write; anything else is a file
/// still being written or damaged, and reads as "not there".
pub fn parse_exit_file(text: &str) -> Option<i32> {
    text.strip_suffix('\n')?.parse().ok()
}

/// The two fields of `/proc/<pid>/stat` the runtime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    pub fn read(pid: u32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_proc_stat(&text)
    }
}

/// Field 2 (the command name, in parentheses) may itself hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the first after the name; field 22 is 19 further on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

/// Whether the process a record names is still running: the pid exists, is the same
/// process (same start time), and has not exited (a zombie whose parent has not
/// reaped it yet has).
pub fn is_alive(pid: u32, start_ticks: u64) -> bool {
    match ProcStat::read(pid) {
        Some(stat) => stat.start_ticks == start_ticks && !matches!(stat.state, 'Z' | 'X' | 'x'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line (`sleep`), with 52 fields.
    const SLEEP_STAT: &str = "4242 (sleep) S 4241 4241 4100 34816 4241 4194304 99 0 0 0 \
        0 0 0 0 20 0 1 0 987654 5754880 230 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 \
        17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn proc_stat_fields_three_and_twenty_two() {
        assert_eq!(
            parse_proc_stat(SLEEP_STAT),
            Some(ProcStat {
                state: 'S',
                start_ticks: 987654
            })
        );
    }

    #[test]
    fn proc_stat_command_name_with_spaces_and_parentheses() {
        let text = SLEEP_STAT.replace("(sleep)", "(a) Z (b c))");
        assert_eq!(
            parse_proc_stat(&text).map(|s| (s.state, s.start_ticks)),
            Some(('S', 987654))
        );
    }

    #[test]
    fn proc_stat_truncated_is_none() {
        assert_eq!(parse_proc_stat("4242 (sleep) S 1 2 3"), None);
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let stat = ProcStat::read(pid).expect("our own /proc/<pid>/stat");
        assert!(is_alive(pid, stat.start_ticks));
        assert!(!is_alive(pid, stat.start_ticks + 1));
    }

    #[test]
    fn exit_file_needs_its_newline() {
        assert_eq!(parse_exit_file("7\n"), Some(7));
        assert_eq!(parse_exit_file("7"), None);
        assert_eq!(parse_exit_file(""), None);
        assert_eq!(parse_exit_file("x\n"), None);
    }

    #[test]
    fn status_above_128_names_the_signal() {
        let at = SystemTime::UNIX_EPOCH;
        assert_eq!(ExitRecord::from_status(0, at).signal, None);
        assert_eq!(ExitRecord::from_status(128, at).signal, None);
        assert_eq!(ExitRecord::from_status(143, at).signal, Some(15));
        assert_eq!(ExitRecord::killed(at).exit_code, 137);
        assert_eq!(ExitRecord::killed(at).signal, Some(9));
        assert_eq!(ExitRecord::from_status(255, at).signal, None);
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path().join("containers")).unwrap();
        let record = ContainerRecord {
            id: "u1-web-1".into(),
            pod_uid: "u1".into(),
            pod: "default/p".into(),
            name: "web".into(),
            sequence: 1,
            pid: 12,
            process_start_ticks: 34,
            started_at: SystemTime::UNIX_EPOCH,
            cgroup_dirs: vec![],
            exit: None,
        };
        store.save(&record).unwrap();
        std::fs::write(dir.path().join("containers/broken.json"), b"{").unwrap();
        assert_eq!(store.load_all().unwrap(), vec![record]);
        store.remove("u1-web-1").unwrap();
        store.remove("u1-web-1").unwrap();
        assert_eq!(store.load_all().unwrap(), vec![]);
    }

    #[test]
    fn sequence_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(store.next_sequence().unwrap(), 1);
        assert_eq!(store.next_sequence().unwrap(), 2);
        let reopened = RecordStore::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(reopened.next_sequence().unwrap(), 3);
    }
}
