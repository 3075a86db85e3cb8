//! Snapshots of the state machine: the whole `State` tree (every MVCC revision not
//! yet compacted, the leases and the meta records), with openraft's meta.
//!
//! The current snapshot is kept as one file, written to a temporary name, fsynced
//! and renamed, so a crash leaves either the old snapshot or the new one.
//!
//! The same snapshot, taken out of the cluster (`etcdctl snapshot save`), is a
//! portable file: a magic line, the length of the encoded [`SnapshotFile`], the
//! encoding, zeros up to a multiple of 512 bytes, and the SHA-256 of everything
//! before it, appended as etcd appends one to its snapshots so a restore can tell a
//! whole file from a cut or damaged one. etcdctl checks the hash is there by the
//! file's size (512 × n + 32, a bolt database is made of pages), hence the padding.
//!
//! ```text
//!   "berth-snapshot-v1\n" | length (u64, big-endian) | bincode(SnapshotFile)
//!     | zeros to a multiple of 512 | sha256(all before) (32 bytes)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StateHandle;
use crate::backend::{Pair, SharedBackend, Tree, WriteBatch};
use crate::raft::{SnapshotMeta, decode, encode};

const SNAPSHOT_FILE: &str = "current.snap";
/// The first bytes of a portable snapshot file.
const PORTABLE_MAGIC: &[u8] = b"berth-snapshot-v1\n";
const SHA256_BYTES: usize = 32;
/// What the part before the hash is padded to a multiple of (see the module doc).
const PAGE_BYTES: usize = 512;

/// Why a portable snapshot file cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortableError {
    #[error(
        "not a berth snapshot (it does not start with {:?})",
        String::from_utf8_lossy(PORTABLE_MAGIC)
    )]
    NotASnapshot,
    #[error("snapshot file is cut short ({bytes} bytes, no room for its sha256)")]
    Truncated { bytes: usize },
    #[error("snapshot file integrity check failed: expected sha256 {expected}, got {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("snapshot does not decode: {0}")]
    Undecodable(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// A snapshot of the applied state as it stands, to take out of the cluster
/// (`etcdctl snapshot save`). The state's read lock is held while the tree is read,
/// so no apply lands halfway through and the meta describes exactly the data.
/// Also returns the MVCC revision the snapshot is at.
pub fn capture(state: &StateHandle, backend: &SharedBackend) -> Result<(SnapshotFile, i64), String> {
    let state = state.read();
    let revision = state.kv.current_revision();
    let data = dump_state(backend)?;
    let snapshot_id = match &state.last_applied {
        Some(id) => format!("{}-{}-saved", id.leader_id.term, id.index),
        None => "0-0-saved".to_string(),
    };
    let meta = SnapshotMeta {
        last_log_id: state.last_applied,
        last_membership: state.membership.clone(),
        snapshot_id,
    };
    Ok((SnapshotFile { meta, data }, revision))
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

impl SnapshotFile {
    /// The portable file: magic, the encoded snapshot, padding, its SHA-256.
    pub fn to_portable(&self) -> Result<Vec<u8>, String> {
        let body = encode(self).map_err(|e| e.to_string())?;
        let mut bytes = PORTABLE_MAGIC.to_vec();
        bytes.extend_from_slice(&(body.len() as u64).to_be_bytes());
        bytes.extend(body);
        bytes.resize(bytes.len().div_ceil(PAGE_BYTES) * PAGE_BYTES, 0);
        let sha = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sha);
        Ok(bytes)
    }

    /// Reads a portable file, checking its SHA-256 unless `skip_hash_check`. With
    /// `skip_hash_check`, a replica's own `current.snap` (no magic, no hash), copied
    /// out of a data dir, is read as well, as etcd restores a copied database file.
    pub fn from_portable(bytes: &[u8], skip_hash_check: bool) -> Result<Self, PortableError> {
        let Some(rest) = bytes.strip_prefix(PORTABLE_MAGIC) else {
            if skip_hash_check && let Ok(file) = decode::<SnapshotFile>(bytes) {
                return Ok(file);
            }
            return Err(PortableError::NotASnapshot);
        };
        if rest.len() < 8 + SHA256_BYTES {
            return Err(PortableError::Truncated { bytes: bytes.len() });
        }
        let (hashed, sha) = bytes.split_at(bytes.len() - SHA256_BYTES);
        if !skip_hash_check {
            let actual = Sha256::digest(hashed);
            if actual.as_slice() != sha {
                return Err(PortableError::HashMismatch {
                    expected: hex(sha),
                    actual: hex(&actual),
                });
            }
        }
        let (length, padded) = hashed[PORTABLE_MAGIC.len()..].split_at(8);
        let length = u64::from_be_bytes(length.try_into().expect("8 bytes")) as usize;
        let body = padded
            .get(..length)
            .ok_or(PortableError::Truncated { bytes: bytes.len() })?;
        decode(body).map_err(|e| PortableError::Undecodable(e.to_string()))
    }

    /// The pairs of the State tree the snapshot holds.
    pub fn pairs(&self) -> Result<Vec<Pair>, String> {
        decode(&self.data).map_err(|e| format!("snapshot does not decode: {e}"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> SnapshotFile {
        let pairs: Vec<Pair> = vec![(b"k".to_vec(), b"v".to_vec())];
        SnapshotFile {
            meta: SnapshotMeta::default(),
            data: encode(&pairs).unwrap(),
        }
    }

    #[test]
    fn a_portable_file_reads_back_and_a_damaged_one_is_refused() {
        let bytes = file().to_portable().unwrap();
        assert_eq!(bytes.len() % PAGE_BYTES, SHA256_BYTES, "the size etcdctl looks for");
        let back = SnapshotFile::from_portable(&bytes, false).unwrap();
        assert_eq!(back.pairs().unwrap(), vec![(b"k".to_vec(), b"v".to_vec())]);

        let mut damaged = bytes.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0xff;
        let error = SnapshotFile::from_portable(&damaged, false).unwrap_err();
        assert!(matches!(error, PortableError::HashMismatch { .. }), "{error}");
        assert!(error.to_string().contains("integrity check failed"), "{error}");

        let cut = &bytes[..PORTABLE_MAGIC.len() + 4];
        assert_eq!(
            SnapshotFile::from_portable(cut, false).unwrap_err(),
            PortableError::Truncated { bytes: cut.len() }
        );
        assert_eq!(
            SnapshotFile::from_portable(b"{\"not\": \"a snapshot\"}", true).unwrap_err(),
            PortableError::NotASnapshot
        );
    }

    #[test]
    fn skipping_the_hash_check_reads_a_replicas_own_snapshot_file() {
        let raw = encode(&file()).unwrap();
        assert_eq!(
            SnapshotFile::from_portable(&raw, false).unwrap_err(),
            PortableError::NotASnapshot
        );
        let read = SnapshotFile::from_portable(&raw, true).unwrap();
        assert_eq!(read.data, file().data);
    }
}
