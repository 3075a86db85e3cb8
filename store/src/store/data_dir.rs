//! The data dir's member record: who this replica is, written once, checked at
//! every start so a data dir is never silently re-initialised.

use super::*;

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
            Ok((member_dir, record, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A database without a record is either a first start that was
            // interrupted (the database is empty) or damage; `Store::open` tells which.
            std::fs::create_dir_all(&member_dir).map_err(|e| io_error("creating", &member_dir, e))?;
            Ok((member_dir, MemberRecord::new(config, id, cluster_id), false))
        }
        Err(e) => Err(io_error("reading", &record_path, e)),
    }
}

pub(super) fn write_member_record(member_dir: &Path, record: &MemberRecord) -> Result<()> {
    let path = member_dir.join(MEMBER_FILE);
    let tmp = member_dir.join(format!("{MEMBER_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Internal(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(member_dir)?.sync_all()
    };
    write().map_err(|e| io_error("writing", &path, e))
}
