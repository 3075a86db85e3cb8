//! The checks `start` makes on a spec before anything touches the disk: pod uids and
//! container names become file and cgroup names, so only a safe alphabet passes; and
//! the working directory must exist, so a bad one fails at start rather than as an
//! exit of the wrapper.

use std::path::Path;

use super::{ContainerSpec, RuntimeError};

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Pod uids and container names become file and cgroup names.
pub(super) fn check_name(spec: &ContainerSpec, field: &'static str, value: &str) -> Result<(), RuntimeError> {
    if is_safe_name(value) {
        return Ok(());
    }
    Err(RuntimeError::InvalidName {
        container: spec.name.clone(),
        field,
        value: value.to_owned(),
    })
}

/// The name itself when it is safe (every name `start` accepts), else a mangled one
/// that stays inside the logs directory.
pub(super) fn path_component(name: &str) -> String {
    if is_safe_name(name) {
        return name.to_owned();
    }
    let mangled: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("_{mangled}")
}

pub(super) fn check_working_dir(spec: &ContainerSpec, dir: &Path) -> Result<(), RuntimeError> {
    let cause = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "Not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "No such file or directory".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(RuntimeError::WorkingDir {
        container: spec.name.clone(),
        dir: dir.to_path_buf(),
        cause,
    })
}
