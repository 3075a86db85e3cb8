//! Container log files, shared by the runtimes so that `logs` and `logs -f` read the
//! same layout whichever runtime ran the container:
//!
//! ```text
//! state_dir/logs/<pod_uid>/<container>.log   stdout and stderr, appended across restarts
//! ```
//!
//! The file is handed to the container as its stdout and stderr (a file, not a pipe),
//! so the container keeps writing when the agent is gone.

use std::path::{Path, PathBuf};

use super::RuntimeError;
use super::spec_check::path_component;

#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
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
        Ok(LogFiles { dir })
    }

    pub fn path(&self, pod_uid: &str, container: &str) -> PathBuf {
        self.dir
            .join(path_component(pod_uid))
            .join(format!("{}.log", path_component(container)))
    }

    /// The container's log file, opened for appending (created with its directory).
    pub fn open_for_append(&self, pod_uid: &str, container: &str) -> Result<std::fs::File, RuntimeError> {
        let path = self.path(pod_uid, container);
        let state_dir_error = |source| RuntimeError::StateDir {
            what: "cannot open the log file",
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(state_dir_error)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(state_dir_error)
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
