//! `berth store snapshot restore`: a new member's data dir from a portable snapshot
//! (`etcdctl snapshot save`), for a new cluster.
//!
//! What the snapshot brings is the key space: every revision not compacted, the
//! compaction point and the leases, so the new cluster goes on at the revision the
//! old one was at and its hashes (`etcdctl endpoint hashkv`) agree with the old one's
//! there. What it leaves behind is the old cluster: its membership and applied log
//! id are dropped, so every restored member starts without a Raft log and
//! bootstraps from `--initial-cluster` as a new cluster does, under the cluster ID
//! of `--initial-cluster-token`. Leases get their whole TTL again from the new
//! leader, as after any election.
//!
//! The data dir is written under a temporary name and renamed when complete, so an
//! interrupted restore leaves no data dir that would start with half the data.

use super::*;
use crate::backend::{Tree, WriteBatch};
use crate::state_machine::SnapshotFile;
use crate::state_machine::store::META_APPLIED;

/// What a restore wrote, for its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub member_id: NodeId,
    pub cluster_id: u64,
    pub revision: i64,
    pub leases: usize,
}

/// Restores `snapshot` (the file's bytes) into `config.data_dir` for the member
/// `config` describes. `config.data_dir` must not exist yet.
pub fn restore_snapshot(snapshot: &[u8], config: &StoreConfig, skip_hash_check: bool) -> Result<Restored> {
    let file = SnapshotFile::from_portable(snapshot, skip_hash_check)
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
    let pairs = file.pairs().map_err(StoreError::InvalidArgument)?;
    let data_dir = &config.data_dir;
    if data_dir.exists() {
        return Err(StoreError::InvalidArgument(format!(
            "data-dir {:?} exists",
            data_dir.display().to_string()
        )));
    }
    let Some((_, urls)) = config.initial_cluster.iter().find(|(name, _)| *name == config.name) else {
        return Err(StoreError::InvalidArgument(format!(
            "--initial-cluster has no member named {:?} (--name)",
            config.name
        )));
    };
    if urls != &config.initial_advertise_peer_urls {
        return Err(StoreError::InvalidArgument(format!(
            "--initial-cluster has {:?}={urls:?} but --initial-advertise-peer-urls is {:?}",
            config.name, config.initial_advertise_peer_urls
        )));
    }

    let staging = staging_dir(data_dir);
    let _ = std::fs::remove_dir_all(&staging);
    let io = |what: &str, e: &dyn std::fmt::Display| StoreError::Internal(format!("{what}: {e}"));
    let member_dir = staging.join("member");
    std::fs::create_dir_all(&member_dir).map_err(|e| io(&format!("creating {}", member_dir.display()), &e))?;
    let (revision, leases) = {
        let engine = backend::open_on_disk(&member_dir.join("db")).map_err(|e| io("opening the database", &e))?;
        let mut batch = WriteBatch::new();
        for (key, value) in pairs {
            // The old cluster's applied log id and membership stay behind.
            if key != META_APPLIED {
                batch.put(key, value);
            }
        }
        engine
            .write(Tree::State, batch)
            .map_err(|e| io("writing the database", &e))?;
        engine.flush().map_err(|e| io("flushing the database", &e))?;
        let state = AppliedState::load(&engine)
            .map_err(|e| StoreError::InvalidArgument(format!("the snapshot's data is corrupt: {e}")))?;
        state
            .kv
            .validate()
            .map_err(|e| StoreError::InvalidArgument(format!("the snapshot's data is corrupt: {e}")))?;
        (state.kv.current_revision(), state.leases.len())
    };
    let id = member_id(&config.initial_advertise_peer_urls, &config.initial_cluster_token);
    let cluster_id = cluster_id(&config.initial_cluster_token);
    write_member_record(&member_dir, &data_dir::MemberRecord::new(config, id, cluster_id))?;
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(&format!("creating {}", parent.display()), &e))?;
    }
    std::fs::rename(&staging, data_dir).map_err(|e| io(&format!("renaming into {}", data_dir.display()), &e))?;
    Ok(Restored {
        member_id: id,
        cluster_id,
        revision,
        leases,
    })
}

fn staging_dir(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".restoring");
    data_dir.with_file_name(name)
}
