//! The `slow-disk` test fault (`--test-fault slow-disk`), for the fault-injection
//! suite's disk nemesis: every sync of the raft log first waits as long as the data
//! dir's control file [`CONTROL_FILE`] says (whole milliseconds; no file, no wait),
//! as it would on a disk whose fsync is slow. The suite writes the file to slow a
//! replica's disk and removes it to heal, without restarting the replica.
//!
//! The switch is process-wide, which is why it is a static: one `berth store` process
//! is one replica, and only that role can set it. Without the flag nothing reads the
//! file, so a real store never waits here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The control file, in the data dir: the delay of every raft log sync, in ms.
pub const CONTROL_FILE: &str = "test-fault-slow-disk-ms";

/// The longest delay honoured: a longer one would only look like a hung replica.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// The control file of this process, once `--test-fault slow-disk` enabled it.
static CONTROL: OnceLock<PathBuf> = OnceLock::new();

/// A malformed control file is reported once, not at every sync.
static REPORTED_MALFORMED: AtomicBool = AtomicBool::new(false);

/// Lets the control file in `data_dir` slow this process's raft log syncs.
pub fn enable(data_dir: &Path) {
    let path = data_dir.join(CONTROL_FILE);
    tracing::warn!(control_file = %path.display(), "test fault slow-disk: raft log syncs wait as this file says");
    let _ = CONTROL.set(path);
}

/// Called before each raft log sync: waits if the fault is on and its file says so.
pub(crate) fn before_sync() {
    let Some(path) = CONTROL.get() else { return };
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    match parse_delay(&text) {
        Ok(delay) => std::thread::sleep(delay),
        Err(why) => {
            if !REPORTED_MALFORMED.swap(true, Ordering::Relaxed) {
                tracing::error!(control_file = %path.display(), "test fault slow-disk: {why}; not waiting");
            }
        }
    }
}

/// The delay a control file's text asks for, at most [`MAX_DELAY`].
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let ms: u64 = trimmed
        .parse()
        .map_err(|_| format!("{CONTROL_FILE} holds {trimmed:?}, not a whole number of milliseconds"))?;
    Ok(Duration::from_millis(ms).min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_whole_milliseconds_with_surrounding_space_ignored() {
        assert_eq!(parse_delay("250\n"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_delay(" 0 "), Ok(Duration::ZERO));
    }

    #[test]
    fn a_delay_past_the_maximum_is_the_maximum() {
        assert_eq!(parse_delay("3600000"), Ok(MAX_DELAY));
    }

    #[test]
    fn a_malformed_delay_is_refused_naming_the_file_and_what_it_holds() {
        for text in ["", "fast", "-5", "1.5", "250ms"] {
            let why = parse_delay(text).unwrap_err();
            assert!(
                why.contains(CONTROL_FILE) && why.contains(&format!("{:?}", text.trim())),
                "{why}"
            );
        }
    }
}
