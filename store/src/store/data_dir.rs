//! The data dir's member record: who this replica is, written once, checked at
//! every start so a data dir is never silently re-initialised. Everything under the
//! member dir is kept private, as etcd keeps it: files 0600, directories 0700 (see
//! `disk`); a data dir an earlier version left wider is brought down at start.

use super::*;
use crate::disk::Disk;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct MemberRecord {
    name: String,
    pub(super) id: NodeId,
    pub(super) cluster_id: u64,
    cluster_token: String,
}

impl MemberRecord {
    pub(super) fn new(config: &StoreConfig, id: NodeId, cluster_id: u64) -> Self {
        Self {
            name: config.name.clone(),
            id,
            cluster_id,
            cluster_token: config.initial_cluster_token.clone(),
        }
    }
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("{what} {}: {e}", path.display()))
}

/// Reads or creates `member.json`; refuses a data dir that is not what it claims.
pub(super) fn open_member_dir(
    config: &StoreConfig,
    id: NodeId,
    cluster_id: u64,
) -> Result<(PathBuf, MemberRecord, bool)> {
    let member_dir = config.data_dir.join("member");
    warn_if_others_can_read(&config.data_dir);
    let record_path = member_dir.join(MEMBER_FILE);
    let db_dir = member_dir.join("db");
    match std::fs::read(&record_path) {
        Ok(bytes) => {
            let record: MemberRecord = serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Internal(format!(
                    "data dir {} is corrupt: {}: {e}",
                    config.data_dir.display(),
                    record_path.display()
                ))
            })?;
            if record.name != config.name {
                return Err(StoreError::InvalidArgument(format!(
                    "data dir {} belongs to member {:?}, not {:?}",
                    config.data_dir.display(),
                    record.name,
                    config.name
                )));
            }
            if !db_dir.exists() {
                return Err(StoreError::Internal(format!(
                    "data dir {} is corrupt: {} is missing",
                    config.data_dir.display(),
                    db_dir.display()
                )));
            }
            let tightened = crate::disk::tighten_modes(&member_dir)
                .map_err(|e| io_error("setting the modes of", &member_dir, e))?;
            if tightened > 0 {
                tracing::info!(
                    files = tightened,
                    dir = %member_dir.display(),
                    "made the data dir's files 0600 and directories 0700"
                );
            }
            Ok((member_dir, record, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A database without a record is either a first start that was
            // interrupted (the database is empty) or damage; `Store::open` tells which.
            crate::disk::OsDisk
                .create_dir_all(&member_dir)
                .map_err(|e| io_error("creating", &member_dir, e))?;
            Ok((member_dir, MemberRecord::new(config, id, cluster_id), false))
        }
        Err(e) => Err(io_error("reading", &record_path, e)),
    }
}

pub(super) fn write_member_record(member_dir: &Path, record: &MemberRecord) -> Result<()> {
    let path = member_dir.join(MEMBER_FILE);
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Internal(e.to_string()))?;
    crate::disk::write_atomically(&crate::disk::OsDisk, member_dir, MEMBER_FILE, &bytes)
        .map_err(|e| io_error("writing", &path, e))
}

/// A data dir that berth did not create keeps its mode (it may be a mount point), but
/// others reading it is worth a word, as etcd says it.
fn warn_if_others_can_read(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(data_dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %data_dir.display(),
                mode = format!("{mode:o}"),
                "the data dir can be read by others than its owner; 0700 is recommended"
            );
        }
    }
}
