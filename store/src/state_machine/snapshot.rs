//! Snapshots of the state machine: the whole `State` tree (every MVCC revision not
//! yet compacted, the leases and the meta records), with openraft's meta.
//!
//! The current snapshot is kept as one file, written to a temporary name, fsynced
//! and renamed, so a crash leaves either the old snapshot or the new one.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::{Pair, SharedBackend, Tree, WriteBatch};
use crate::raft::{SnapshotMeta, decode, encode};

const SNAPSHOT_FILE: &str = "current.snap";

#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// Encodes every pair of the State tree.
pub fn dump_state(backend: &SharedBackend) -> Result<Vec<u8>, String> {
    let pairs: Vec<Pair> = backend.scan(Tree::State, &[], None, 0).map_err(|e| e.to_string())?;
    encode(&pairs).map_err(|e| e.to_string())
}

/// Replaces the State tree with the pairs of a snapshot in one atomic batch.
pub fn restore_state(
    backend: &SharedBackend,
    data: &[u8],
    applied_key: &[u8],
    applied_value: Vec<u8>,
) -> Result<(), String> {
    let pairs: Vec<Pair> = decode(data).map_err(|e| format!("snapshot does not decode: {e}"))?;
    let mut batch = WriteBatch::new();
    for (key, _) in backend.scan(Tree::State, &[], None, 0).map_err(|e| e.to_string())? {
        batch.delete(key);
    }
    for (key, value) in pairs {
        batch.put(key, value);
    }
    batch.put(applied_key.to_vec(), applied_value);
    backend.write(Tree::State, batch).map_err(|e| e.to_string())?;
    backend.flush().map_err(|e| e.to_string())
}

/// Replaces the current snapshot (a private file, 0600, in a 0700 directory).
pub fn save(dir: &Path, snapshot: &SnapshotFile) -> std::io::Result<()> {
    use crate::disk::{Disk, OsDisk};
    OsDisk.create_dir_all(dir)?;
    let bytes = encode(snapshot).map_err(std::io::Error::other)?;
    crate::disk::write_atomically(&OsDisk, dir, SNAPSHOT_FILE, &bytes)
}

pub fn load(dir: &Path) -> std::io::Result<Option<SnapshotFile>> {
    let bytes = match fs::read(path(dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    decode(&bytes).map(Some).map_err(|e| {
        let what = format!("snapshot {} does not decode: {e}", path(dir).display());
        std::io::Error::new(std::io::ErrorKind::InvalidData, what)
    })
}

fn path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}
