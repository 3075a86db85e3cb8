//! What opening the log does with what an earlier process left: the last entry
//! written, a vote under which this replica led, a log still on the backend, and a
//! backend that went back in time.
//!
//! sled, given a damaged file, does not refuse to open: it rolls the database back
//! to the last point it can read, silently (a flipped byte mid-file loses every write
//! after it). Its batches stay atomic, so the state it rolls back to is exactly some
//! applied entry's, with that entry's id in the same batch. The log then replays what
//! follows, as after any crash, as long as it still holds those entries; when it no
//! longer does, or the vote or the purge record went back with the rest, the replica
//! refuses to start rather than serve a state with acknowledged writes missing.

use openraft::{AnyError, LeaderId, StorageIOError};

use super::sync::sync_all;
use super::{ENTRY_PREFIX, KEY_PURGED, KEY_VOTE, get_decoded, put_encoded, read_err, write_err};
use crate::backend::{SharedBackend, Tree, WriteBatch};
use crate::raft::types::{Entry, LogId, NodeId, StorageError, Vote, decode};
use crate::raft::wal::Wal;

/// Where an earlier version kept entry `index` on the backend.
#[cfg(test)]
pub(super) fn entry_key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = ENTRY_PREFIX;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

pub(super) fn last_entry_id(wal: &Wal) -> Result<Option<LogId>, StorageError> {
    let Some(last) = wal.last_index() else {
        return Ok(None);
    };
    let read = wal.read(last, last + 1).map_err(read_err)?;
    match read.first() {
        Some((_, bytes)) => decode::<Entry>(bytes).map(|e| Some(e.log_id)).map_err(read_err),
        None => Ok(None),
    }
}

/// The leader id replica `me` writes its entries with under `vote`, if that makes it
/// the leader.
pub(super) fn leading(me: NodeId, vote: &Vote) -> Option<LeaderId<NodeId>> {
    (vote.is_committed() && vote.leader_id().node_id == me).then(|| *vote.leader_id())
}

/// A replica that led when it stopped comes back as a candidate of its old term.
///
/// openraft 0.9 would make it leader again at once, in the same term, appending after
/// the last entry it finds. But a leader's entries reach the followers before its own
/// disk (see `durable`): after a power cut it may have lost entries a follower holds,
/// and would write new ones under the same log ids, which the follower takes for the
/// ones it has. As a candidate it has to win a new term, whose log ids are new.
pub(super) fn stand_down_after_a_restart(me: NodeId, backend: &SharedBackend) -> Result<(), StorageError> {
    let Some(vote) = get_decoded::<Vote>(backend, KEY_VOTE)? else {
        return Ok(());
    };
    if leading(me, &vote).is_none() {
        return Ok(());
    }
    put_encoded(backend, KEY_VOTE, &Vote::new(vote.leader_id().term, me))?;
    backend
        .flush()
        .map_err(|e| StorageIOError::write_vote(AnyError::error(e.to_string())).into())
}

/// Moves a log written by an earlier version (entries on the backend) into the
/// segment files: synced there before it is deleted here.
pub(super) fn move_entries_off_the_backend(backend: &SharedBackend, wal: &mut Wal) -> Result<(), StorageError> {
    let old = backend
        .scan(Tree::RaftLog, &[ENTRY_PREFIX], Some(&[ENTRY_PREFIX + 1]), 0)
        .map_err(read_err)?;
    if old.is_empty() {
        return Ok(());
    }
    let mut records = Vec::with_capacity(old.len());
    for (_, bytes) in &old {
        let entry: Entry = decode(bytes).map_err(read_err)?;
        records.push((entry.log_id.index, bytes.clone()));
    }
    let (first, last) = (records[0].0, records[records.len() - 1].0);
    // A move cut short by a crash left a prefix in the files: start it over.
    if wal.last_index() != Some(last) {
        wal.truncate(first).map_err(write_err)?;
        wal.append(&records).map_err(write_err)?;
        sync_all(&wal.take_unsynced()).map_err(write_err)?;
    }
    let mut batch = WriteBatch::new();
    for (key, _) in old {
        batch.delete(key);
    }
    backend.write(Tree::RaftLog, batch).map_err(write_err)?;
    backend.flush().map_err(write_err)?;
    tracing::info!(entries = records.len(), "moved the raft log into segment files");
    Ok(())
}

fn rolled_back(what: String) -> StorageError {
    read_err(format!(
        "{what}: the database lost writes it had synced (sled rolls back to the last point it \
         can read when its files are damaged); refusing to start without them (restore this \
         member's data dir from a backup, or remove the member and add it back empty)"
    ))
}

/// Checks that the backend has not gone back behind what the log says: the state
/// covers every entry before the log's first, the purge record reaches the log's
/// first entry, and the vote is at least as new as the last entry's term.
pub(super) fn check_the_backend_against_the_log(backend: &SharedBackend, wal: &Wal) -> Result<(), StorageError> {
    let (Some(first), Some(last)) = (wal.first_index(), last_entry_id(wal)?) else {
        return Ok(());
    };
    let applied = crate::state_machine::applied_on_disk(backend)
        .map_err(read_err)?
        .map_or(0, |id| id.index);
    if applied + 1 < first {
        return Err(rolled_back(format!(
            "the database's state is at entry {applied}, but the log starts at entry {first}: \
             entries {}..={} are in neither",
            applied + 1,
            first - 1
        )));
    }
    let purged = get_decoded::<LogId>(backend, KEY_PURGED)?.map_or(0, |id| id.index);
    if first > 1 && purged + 1 < first {
        return Err(rolled_back(format!(
            "the database's purge record is at entry {purged}, but the log starts at entry {first}"
        )));
    }
    let vote_term = get_decoded::<Vote>(backend, KEY_VOTE)?.map_or(0, |vote| vote.leader_id().term);
    if vote_term < last.leader_id.term {
        return Err(rolled_back(format!(
            "the database's vote is for term {vote_term}, but the log holds entry {} of term {}",
            last.index, last.leader_id.term
        )));
    }
    Ok(())
}
