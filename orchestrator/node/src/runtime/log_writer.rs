//! The log writer: the process that stands between a container's stdout and stderr
//! and its log file, so that each line's time is known (`logs --timestamps`,
//! `--since`). It is the berth binary run as `berth log-writer LOG DONE_FILE`, started
//! by the container's supervisor shell, as conmon is by CRI runtimes:
//!
//! ```text
//! supervisor ─mkfifo PIPE─► berth log-writer LOG DONE < PIPE &   (own session)
//!            ─exec >PIPE 2>&1─► the container's stdout and stderr are the pipe
//!   ...the container runs and ends...
//!            ─exec >/dev/null; touch DONE; wait─► the writer ends at the pipe's EOF,
//!             or, once DONE exists, when the pipe has nothing more to read (a process
//!             the container left behind may hold the pipe open)
//! ```
//!
//! The writer appends what it reads to `LOG` unchanged (the bytes `logs` serves) and,
//! before each chunk, a record to `LOG.times`: the log's length before the chunk and
//! the time it was read, 16 bytes (both little-endian u64: the offset, then nanoseconds
//! since the Unix epoch). A line's time is the time of the chunk its first byte came
//! in. The records come first so that every byte in the log has one at or before it.
//!
//! The writer runs in its own session, so a signal to the container's process group
//! (the process runtime's `stop`) does not cut its output short; it outlives the agent
//! as the supervisor does.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::event::{PollFd, PollFlags, poll};

/// The supervisor shell's start of the writer, before the container runs: with
/// `$writer` (the berth binary, or empty for none), `$log` and `$exit_file` set, its
/// stdout and stderr become the pipe to the writer. Without a writer (or when the pipe
/// cannot be made) they stay the log file itself, and the log has no times.
macro_rules! start_writer_sh {
    () => {
        r#"writer_pid=
if [ -n "$writer" ] && [ -x "$writer" ]; then
  pipe=$exit_file.pipe
  done_file=$exit_file.done
  rm -f "$pipe" "$done_file"
  if mkfifo -m 600 "$pipe"; then
    "$writer" log-writer "$log" "$done_file" < "$pipe" &
    writer_pid=$!
    exec > "$pipe" 2>&1
    rm -f "$pipe"
  fi
fi
"#
    };
}
pub(crate) use start_writer_sh;

/// The supervisor shell's end of the writer, after the container has ended and before
/// its exit file is written: everything the container wrote is in the log by then.
macro_rules! finish_writer_sh {
    () => {
        r#"if [ -n "$writer_pid" ]; then
  exec > /dev/null 2>&1
  : > "$done_file"
  while kill -0 "$writer_pid" 2> /dev/null; do wait "$writer_pid"; done
  rm -f "$done_file"
fi
"#
    };
}
pub(crate) use finish_writer_sh;

/// The subcommand of the berth binary that runs the writer.
pub const SUBCOMMAND: &str = "log-writer";

const RECORD: usize = 16;

/// How often a writer whose pipe is quiet looks for the done file.
const DONE_POLL: Duration = Duration::from_millis(100);

/// The times file of the log at `log`.
pub fn times_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".times");
    log.with_file_name(name)
}

/// `berth log-writer LOG DONE_FILE`, reading stdin until its end (or until it is quiet
/// once DONE_FILE exists).
pub fn main(args: &[String]) -> std::process::ExitCode {
    let [log, done] = args else {
        eprintln!("usage: berth {SUBCOMMAND} LOG DONE_FILE (run by a container's supervisor)");
        return std::process::ExitCode::from(2);
    };
    // Away from the container's process group, and from any terminal.
    let _ = rustix::process::setsid();
    let stdin = std::io::stdin();
    match write_log(stdin.as_fd(), Path::new(log), Path::new(done)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // stderr is the agent's own (or /dev/null): the pipe is stdin only.
            eprintln!("berth {SUBCOMMAND}: {log}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Copies `input` to the log at `log`, recording each chunk's time, until `input`
/// ends, or until it has nothing to read once `done` exists.
pub fn write_log(input: impl AsFd, log: &Path, done: &Path) -> std::io::Result<()> {
    let open = |path: &Path| std::fs::OpenOptions::new().create(true).append(true).open(path);
    let mut out = open(log)?;
    let mut times = open(&times_path(log))?;
    let mut offset = out.metadata()?.len();
    let mut input = File::from(input.as_fd().try_clone_to_owned()?);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [PollFd::new(&input, PollFlags::IN)];
        let timeout = rustix::event::Timespec::try_from(DONE_POLL).expect("a small timeout");
        let ready = match poll(&mut fds, Some(&timeout)) {
            Ok(n) => n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if !ready {
            // Quiet for a while: once the container has ended, what it wrote has been
            // read.
            if done.exists() {
                return Ok(());
            }
            continue;
        }
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        times.write_all(&record(offset, SystemTime::now()))?;
        out.write_all(&buf[..n])?;
        offset += n as u64;
    }
}

fn record(offset: u64, at: SystemTime) -> [u8; RECORD] {
    let nanos = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut record = [0u8; RECORD];
    record[..8].copy_from_slice(&offset.to_le_bytes());
    record[8..].copy_from_slice(&nanos.to_le_bytes());
    record
}

/// A log's times: when the chunk at each offset was written.
#[derive(Debug, Default, Clone)]
pub struct Times {
    /// (offset, nanoseconds since the epoch), offsets ascending.
    records: Vec<(u64, u64)>,
    /// How many bytes of the times file have been read.
    read: u64,
}

impl Times {
    /// The times of the log at `log`; None when it has no times file (its container's
    /// output went to the file directly).
    pub fn load(log: &Path) -> Option<Times> {
        let mut times = Times::default();
        times.refresh(log).ok()?;
        Some(times)
    }

    /// Reads the records written since the last read.
    pub fn refresh(&mut self, log: &Path) -> std::io::Result<()> {
        use std::io::{Seek as _, SeekFrom};

        let mut file = File::open(times_path(log))?;
        file.seek(SeekFrom::Start(self.read))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // A record being written is taken whole the next time.
        let whole = bytes.len() - bytes.len() % RECORD;
        for chunk in bytes[..whole].chunks_exact(RECORD) {
            let offset = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
            let nanos = u64::from_le_bytes(chunk[8..].try_into().expect("8 bytes"));
            // A later writer (a restart) starts past the earlier one's end.
            if self.records.last().is_none_or(|&(last, _)| offset >= last) {
                self.records.push((offset, nanos));
            }
        }
        self.read += whole as u64;
        Ok(())
    }

    /// When the byte at `offset` was written: the time of the last chunk that starts at
    /// or before it (bytes before the first record, written without the writer, take
    /// the first record's time). None when there are no records yet.
    pub fn at(&self, offset: u64) -> Option<SystemTime> {
        let first = self.records.first()?;
        let (_, nanos) = match self.records.partition_point(|&(start, _)| start <= offset) {
            0 => first,
            i => &self.records[i - 1],
        };
        Some(UNIX_EPOCH + Duration::from_nanos(*nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_appended_with_its_time_and_a_line_takes_the_time_of_its_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("main.log");
        std::fs::write(&log, "earlier\n").unwrap();
        let (reader, mut writer) = std::io::pipe().unwrap();
        let done = dir.path().join("done");
        let copier = {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || write_log(reader, &log, &done))
        };
        let before = SystemTime::now();
        writer.write_all(b"one\ntw").unwrap();
        // Each read is one chunk: the second waits for the first to be recorded.
        while std::fs::metadata(&log).unwrap().len() < 14 {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20));
        let between = SystemTime::now();
        writer.write_all(b"o\nthree\n").unwrap();
        drop(writer);
        copier.join().unwrap().unwrap();
        let after = SystemTime::now();

        assert_eq!(std::fs::read_to_string(&log).unwrap(), "earlier\none\ntwo\nthree\n");
        let times = Times::load(&log).unwrap();
        assert_eq!(times.records.len(), 2, "{times:?}");
        let first = times.at(8).unwrap();
        assert!(before <= first && first <= between, "{first:?}");
        assert_eq!(times.at(12), Some(first), "\"two\" began in the first chunk");
        let second = times.at(16).unwrap();
        assert!(between <= second && second <= after, "{second:?}");
        assert_eq!(
            times.at(0),
            Some(first),
            "bytes from before the writer take its first time"
        );
    }

    #[test]
    fn a_writer_whose_pipe_another_process_holds_ends_once_told_the_container_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("main.log");
        let done = dir.path().join("done");
        let (reader, mut writer) = std::io::pipe().unwrap();
        let copier = {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || write_log(reader, &log, &done))
        };
        writer.write_all(b"last words\n").unwrap();
        std::fs::write(&done, "").unwrap();
        // `writer` stays open, as a left-behind process's copy would.
        copier.join().unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "last words\n");
        drop(writer);
    }

    #[test]
    fn a_log_without_a_times_file_has_no_times_and_a_torn_record_waits() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("main.log");
        assert!(Times::load(&log).is_none());
        let mut bytes = record(0, UNIX_EPOCH + Duration::from_secs(5)).to_vec();
        bytes.extend_from_slice(&record(10, UNIX_EPOCH + Duration::from_secs(6))[..9]);
        std::fs::write(times_path(&log), &bytes).unwrap();
        let mut times = Times::load(&log).unwrap();
        assert_eq!(times.at(20), Some(UNIX_EPOCH + Duration::from_secs(5)));
        std::fs::write(
            times_path(&log),
            [&bytes[..], &record(10, UNIX_EPOCH + Duration::from_secs(6))[9..]].concat(),
        )
        .unwrap();
        times.refresh(&log).unwrap();
        assert_eq!(times.at(20), Some(UNIX_EPOCH + Duration::from_secs(6)));
        assert_eq!(times.at(9), Some(UNIX_EPOCH + Duration::from_secs(5)));
    }
}
