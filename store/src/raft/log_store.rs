//! The Raft log: entries in the write-ahead log's segment files (see `wal`), the
//! rest on the backend's `RaftLog` tree: `v` → vote; `c` → committed log id; `p` → last
//! purged log id. (Entries once lived on that tree too, under `e` + big-endian index;
//! a log found there is moved to the segment files at start.)
//!
//! The entries left the backend because sled wakes its whole IO pool for every
//! flush: with the log there, sled's threads took a third of a replica's CPU under
//! load, most of it waking up and going back to sleep.
//!
//! An append is written at once. A follower (appending entries a leader sent) syncs
//! it in place before `LogFlushed` is called: its answer to the leader is what counts
//! its copy towards a quorum, and it has nothing else to do meanwhile. The leader's own
//! entries are reported flushed as soon as they are written, and a thread syncs them
//! while openraft replicates them: openraft 0.9 waits for that callback before it does
//! anything else, replication included, so a sync first would put the leader's
//! `fdatasync` and the followers' one after the other on every write. What keeps an
//! entry from being acted on before a quorum holds it on disk is in `durable`. A
//! membership entry is synced before the callback, on the leader too. A vote is
//! flushed before `save_vote` returns.
//!
//! A purge never removes entries the state on disk still needs. The state machine
//! writes behind (see `backend::WriteBehind`), and while a follower installs a snapshot
//! openraft asks for the purge without waiting for the snapshot's state to reach the
//! disk. So a purge first waits until the applied log id in the engine has reached the
//! purge point: a crash in between then finds either the old state with the old log, or
//! the new state.

use std::fmt::Debug;
use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, EntryPayload, LeaderId, RaftLogReader, StorageIOError};

use super::durable::Durable;
use super::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote, decode, encode};
use super::wal::Wal;
use crate::backend::{SharedBackend, Tree, WriteBatch, WriteBehind};

const ENTRY_PREFIX: u8 = b'e';
const KEY_VOTE: &[u8] = b"v";
const KEY_COMMITTED: &[u8] = b"c";
const KEY_PURGED: &[u8] = b"p";

/// Where an earlier version kept entry `index` on the backend.
#[cfg(test)]
fn entry_key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = ENTRY_PREFIX;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

/// Syncs the files in `unsynced` once each.
fn sync_all(unsynced: &[Arc<File>]) -> std::io::Result<()> {
    let mut synced: Vec<&Arc<File>> = Vec::new();
    for file in unsynced {
        if !synced.iter().any(|s| Arc::ptr_eq(s, file)) {
            file.sync_data()?;
            synced.push(file);
        }
    }
    Ok(())
}

/// The segment files and what is known of their entries, under one lock.
struct Files {
    wal: Wal,
    /// The last entry written.
    appended: Option<LogId>,
    /// The last entry a truncation left since the current sync took its files (the
    /// lowest, after several): that sync covers no entry past it.
    cut_to: Option<Option<LogId>>,
    /// The leader this replica is, when its vote is its own and granted: entries with
    /// this leader id are its own writes, in its current term.
    leading: Option<LeaderId<NodeId>>,
}

/// What the log store and its sync thread share.
struct Shared {
    files: Mutex<Files>,
    /// One sync at a time, so a finished one covers every append before it started.
    syncing: Mutex<()>,
    durable: Durable,
}

impl Shared {
    fn files(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Syncs every append written so far and records how far the log is on disk.
    fn sync(&self) -> std::io::Result<()> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // After a failed sync the kernel may have dropped the pages it could not write:
        // a later sync that succeeds says nothing about them.
        if let Some(why) = self.durable.failure() {
            return Err(std::io::Error::other(why.to_string()));
        }
        let (unsynced, upto) = {
            let mut files = self.files();
            files.cut_to = None;
            (files.wal.take_unsynced(), files.appended)
        };
        if let Err(e) = sync_all(&unsynced) {
            self.durable.fail(format!("syncing the raft log: {e}"));
            return Err(e);
        }
        let files = self.files();
        let upto = match files.cut_to {
            Some(cut_to) => upto.min(cut_to),
            None => upto,
        };
        self.durable.reached(upto);
        Ok(())
    }
}

/// Syncs the leader's appends, all that are waiting at once.
fn start_sync_thread(shared: Arc<Shared>) -> std_mpsc::Sender<()> {
    let (tx, rx) = std_mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("raft-log-sync".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                rx.try_iter().for_each(drop);
                if let Err(e) = shared.sync() {
                    // Reported through `durable`: the state machine stops applying and
                    // openraft stops on the error it then returns.
                    tracing::error!(error = %e, "syncing the raft log failed; this replica stops writing");
                    return;
                }
            }
        })
        .expect("spawning the log sync thread");
    tx
}

/// What became of an append.
enum Written {
    /// Synced before `write` returned, with the sync's outcome.
    Synced(std::io::Result<()>),
    /// The sync thread syncs it; `Durable` tells when.
    SyncBehind,
}

#[derive(Clone)]
pub struct LogStore {
    /// This replica, to tell its own entries (it leads) from a leader's (it follows).
    me: NodeId,
    backend: SharedBackend,
    shared: Arc<Shared>,
    /// Wakes the sync thread.
    sync_soon: std_mpsc::Sender<()>,
    /// The state machine's writes, gathered: a purge writes them out while it waits.
    state: Arc<WriteBehind>,
}

impl LogStore {
    /// Replica `me`'s log: entries in segment files under `wal_dir`, the rest on
    /// `engine`, next to the state machine that writes through `state`.
    pub fn open(
        me: NodeId,
        wal_dir: &std::path::Path,
        engine: SharedBackend,
        state: Arc<WriteBehind>,
    ) -> Result<Self, StorageError> {
        let mut wal =
            Wal::open(wal_dir).map_err(|e| read_err(format!("opening the log in {}: {e}", wal_dir.display())))?;
        move_entries_off_the_backend(&engine, &mut wal)?;
        if let Some(purged) = get_decoded::<LogId>(&engine, KEY_PURGED)? {
            wal.purge(purged.index).map_err(write_err)?;
        }
        // What an earlier process wrote and never synced is synced now: from here on
        // the log on disk is all of it.
        wal.sync().map_err(write_err)?;
        let appended = last_entry_id(&wal)?;
        stand_down_after_a_restart(me, &engine)?;
        let shared = Arc::new(Shared {
            files: Mutex::new(Files {
                wal,
                appended,
                cut_to: None,
                leading: None,
            }),
            syncing: Mutex::new(()),
            durable: Durable::new(appended),
        });
        Ok(Self {
            me,
            backend: engine,
            sync_soon: start_sync_thread(shared.clone()),
            shared,
            state,
        })
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        self.shared.files()
    }

    /// How far this log is on disk.
    pub fn durable(&self) -> Durable {
        self.shared.durable.clone()
    }

    fn get_decoded<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        get_decoded(&self.backend, key)
    }

    /// Writes `entries` and syncs them here and now, or leaves the sync to the sync
    /// thread when they are this replica's own writes as the leader (and change no
    /// membership).
    fn write(&self, entries: impl IntoIterator<Item = Entry>) -> Result<Written, StorageError> {
        if let Some(why) = self.shared.durable.failure() {
            return Err(write_err(why));
        }
        let mut records = Vec::new();
        let mut last = None;
        let mut leader_ids = Vec::new();
        let mut changes_membership = false;
        for entry in entries {
            if !leader_ids.contains(&entry.log_id.leader_id) {
                leader_ids.push(entry.log_id.leader_id);
            }
            changes_membership |= matches!(entry.payload, EntryPayload::Membership(_));
            last = Some(entry.log_id);
            records.push((entry.log_id.index, encode(&entry).map_err(write_err)?));
        }
        let sync_here = {
            let mut files = self.files();
            files.wal.append(&records).map_err(write_err)?;
            files.appended = last.or(files.appended);
            let own_writes = files
                .leading
                .is_some_and(|leader| leader_ids.iter().all(|id| *id == leader));
            changes_membership || !own_writes
        };
        if sync_here {
            return Ok(Written::Synced(self.shared.sync()));
        }
        self.sync_soon
            .send(())
            .map_err(|_| write_err("the log sync thread is gone"))?;
        Ok(Written::SyncBehind)
    }

    fn put_encoded<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        put_encoded(&self.backend, key, value)
    }
}

fn get_decoded<T: serde::de::DeserializeOwned>(backend: &SharedBackend, key: &[u8]) -> Result<Option<T>, StorageError> {
    match backend.get(Tree::RaftLog, key).map_err(read_err)? {
        Some(bytes) => decode(&bytes).map(Some).map_err(read_err),
        None => Ok(None),
    }
}

fn put_encoded<T: serde::Serialize>(backend: &SharedBackend, key: &[u8], value: &T) -> Result<(), StorageError> {
    let mut batch = WriteBatch::new();
    batch.put(key.to_vec(), encode(value).map_err(write_err)?);
    backend.write(Tree::RaftLog, batch).map_err(write_err)
}

fn last_entry_id(wal: &Wal) -> Result<Option<LogId>, StorageError> {
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
fn leading(me: NodeId, vote: &Vote) -> Option<LeaderId<NodeId>> {
    (vote.is_committed() && vote.leader_id().node_id == me).then(|| *vote.leader_id())
}

/// A replica that led when it stopped comes back as a candidate of its old term.
///
/// openraft 0.9 would make it leader again at once, in the same term, appending after
/// the last entry it finds. But a leader's entries reach the followers before its own
/// disk (see `durable`): after a power cut it may have lost entries a follower holds,
/// and would write new ones under the same log ids, which the follower takes for the
/// ones it has. As a candidate it has to win a new term, whose log ids are new.
fn stand_down_after_a_restart(me: NodeId, backend: &SharedBackend) -> Result<(), StorageError> {
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
fn move_entries_off_the_backend(backend: &SharedBackend, wal: &mut Wal) -> Result<(), StorageError> {
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

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i + 1,
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        let records = self.files().wal.read(start, end).map_err(read_err)?;
        records
            .iter()
            .map(|(_, bytes)| decode::<Entry>(bytes).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_decoded(KEY_PURGED)?;
        // A snapshot installed past the last entry purges past it too.
        let last_log_id = self.files().appended.max(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_encoded(KEY_VOTE, vote)?;
        self.backend
            .flush()
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e.to_string())))?;
        self.files().leading = leading(self.me, vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_decoded(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: a committed id that rolls back is only re-learned from the leader.
        // No further than the log on disk: the leader's commit index may count its own
        // copy before its sync, and a restart re-applies up to the saved one.
        self.put_encoded(KEY_COMMITTED, &committed.min(self.shared.durable.upto()))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let saved = self.get_decoded::<Option<LogId>>(KEY_COMMITTED)?.flatten();
        let purged: Option<LogId> = self.get_decoded(KEY_PURGED)?;
        Ok(saved.min(self.files().appended.max(purged)))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        match self.write(entries)? {
            Written::SyncBehind => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Written::Synced(result) => {
                let failed = result.as_ref().err().map(|e| write_err(e.to_string()));
                callback.log_io_completed(result);
                failed.map_or(Ok(()), Err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut files = self.files();
        files.wal.truncate(log_id.index).map_err(write_err)?;
        let last = last_entry_id(&files.wal)?;
        files.appended = last;
        files.cut_to = Some(match files.cut_to {
            Some(earlier) => earlier.min(last),
            None => last,
        });
        self.shared.durable.cut_back(last);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wait_for_state_on_disk(log_id).await?;
        // The purge point is durable before any segment goes: a crash in between
        // leaves entries that are no longer needed, never a gap before the first one.
        self.put_encoded(KEY_PURGED, &log_id)?;
        self.backend.flush().map_err(write_err)?;
        self.files().wal.purge(log_id.index).map_err(write_err)?;
        tracing::debug!(upto = log_id.index, "purged raft log");
        Ok(())
    }
}

/// How long a purge waits for the state machine to write out the state it covers.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl LogStore {
    /// Waits until the engine holds a state applied at least up to `log_id`, so the
    /// entries a purge removes are never needed to rebuild the state after a crash.
    async fn wait_for_state_on_disk(&self, log_id: LogId) -> Result<(), StorageError> {
        let deadline = tokio::time::Instant::now() + PURGE_WAIT;
        loop {
            // What the state machine applied and has not written out yet counts too.
            self.state.write_out_now().map_err(write_err)?;
            let on_disk = crate::state_machine::applied_on_disk(&self.backend).map_err(read_err)?;
            if on_disk.is_some_and(|applied| applied.index >= log_id.index) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                // Only a state machine that failed to install a snapshot leaves it behind;
                // openraft treats that failure as fatal on its own.
                tracing::error!(
                    purge = log_id.index,
                    on_disk = ?on_disk.map(|l| l.index),
                    "the state on disk does not cover the purge point; purging anyway"
                );
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, RaftLogReader};

    use super::*;
    use crate::backend::{Backend, MemoryBackend};
    use crate::raft::StoredMembership;
    use crate::state_machine::store::META_APPLIED;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Blank,
        }
    }

    /// A backend holding entries `1..=upto` where an earlier version kept them.
    fn backend_with_old_entries(upto: u64) -> SharedBackend {
        let engine: SharedBackend = Arc::new(MemoryBackend::new());
        let mut batch = WriteBatch::new();
        for index in 1..=upto {
            batch.put(entry_key(index).to_vec(), encode(&blank(index)).unwrap());
        }
        engine.write(Tree::RaftLog, batch).unwrap();
        engine
    }

    fn open(dir: &std::path::Path, engine: &SharedBackend) -> LogStore {
        let state = Arc::new(WriteBehind::new(engine.clone()));
        LogStore::open(1, dir, engine.clone(), state).unwrap()
    }

    /// A log whose entries an earlier version wrote on the backend (moved at open).
    fn store_with_entries(upto: u64) -> (SharedBackend, LogStore, tempfile::TempDir) {
        let engine = backend_with_old_entries(upto);
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), &engine);
        (engine, log, dir)
    }

    fn written_by(term: u64, leader: NodeId, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, leader), index),
            payload: EntryPayload::Blank,
        }
    }

    fn id_of(entry: &Entry) -> Option<LogId> {
        Some(entry.log_id)
    }

    const A_WHILE: std::time::Duration = std::time::Duration::from_secs(10);

    /// An empty log on an in-memory backend, with its view of what is on disk.
    fn empty_log() -> (SharedBackend, LogStore, Durable, tempfile::TempDir) {
        let engine: SharedBackend = Arc::new(MemoryBackend::new());
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), &engine);
        let durable = log.durable();
        (engine, log, durable, dir)
    }

    #[tokio::test]
    async fn the_leaders_own_entries_are_synced_behind_and_all_others_before_the_answer() {
        let (engine, mut log, durable, dir) = empty_log();

        // Following node 2: synced before the answer.
        log.save_vote(&Vote::new_committed(1, 2)).await.unwrap();
        let first = written_by(1, 2, 1);
        assert!(matches!(log.write([first.clone()]).unwrap(), Written::Synced(Ok(()))));
        assert_eq!(durable.upto(), id_of(&first));

        // Leading: its own entries are answered at once and synced by the thread.
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        let own = [written_by(2, 1, 2), written_by(2, 1, 3)];
        assert!(matches!(log.write(own.clone()).unwrap(), Written::SyncBehind));
        durable.wait_for(id_of(&own[1]), Some(A_WHILE)).await.unwrap();

        // A change of membership is synced before the answer, by the leader too.
        let mut change = written_by(2, 1, 4);
        change.payload = EntryPayload::Membership(openraft::Membership::new(
            vec![std::collections::BTreeSet::from([1])],
            std::collections::BTreeMap::from([(1, crate::raft::MemberInfo::default())]),
        ));
        assert!(matches!(log.write([change.clone()]).unwrap(), Written::Synced(Ok(()))));
        assert_eq!(durable.upto(), id_of(&change));

        // Its entries from an earlier term, sent back by a later leader, are a follower's.
        log.save_vote(&Vote::new_committed(3, 2)).await.unwrap();
        let resent = written_by(2, 1, 5);
        assert!(matches!(log.write([resent.clone()]).unwrap(), Written::Synced(Ok(()))));
        assert_eq!(durable.upto(), id_of(&resent));

        // A restart that finds its own granted vote stands as a candidate of that term,
        // and syncs before it answers until it leads again.
        log.save_vote(&Vote::new_committed(4, 1)).await.unwrap();
        drop(log);
        let mut log = open(dir.path(), &engine);
        assert_eq!(log.durable().upto(), id_of(&resent), "what was on disk at the restart");
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(4, 1)));
        assert!(matches!(
            log.write([written_by(4, 1, 6)]).unwrap(),
            Written::Synced(Ok(()))
        ));
        log.save_vote(&Vote::new_committed(5, 1)).await.unwrap();
        assert!(matches!(log.write([written_by(5, 1, 7)]).unwrap(), Written::SyncBehind));
    }

    #[tokio::test]
    async fn the_commit_index_saved_goes_no_further_than_the_log_on_disk() {
        let (engine, mut log, durable, dir) = empty_log();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        let own: Vec<Entry> = (1..=3).map(|i| written_by(1, 1, i)).collect();
        log.write(own.clone()).unwrap();
        durable.wait_for(id_of(&own[2]), Some(A_WHILE)).await.unwrap();
        log.save_committed(id_of(&own[2])).await.unwrap();
        assert_eq!(log.read_committed().await.unwrap(), id_of(&own[2]));

        // Entry 4 is counted committed before the sync thread reached it (written here
        // without waking that thread).
        let fourth = written_by(1, 1, 4);
        {
            let mut files = log.files();
            files.wal.append(&[(4, encode(&fourth).unwrap())]).unwrap();
            files.appended = id_of(&fourth);
        }
        log.save_committed(id_of(&fourth)).await.unwrap();
        assert_eq!(log.read_committed().await.unwrap(), id_of(&own[2]));

        // A commit index saved past the log (by an earlier version) is read back cut
        // to the last entry.
        let mut batch = WriteBatch::new();
        batch.put(
            KEY_COMMITTED.to_vec(),
            encode(&Some(written_by(1, 1, 9).log_id)).unwrap(),
        );
        engine.write(Tree::RaftLog, batch).unwrap();
        drop(log);
        let mut log = open(dir.path(), &engine);
        assert_eq!(log.read_committed().await.unwrap(), id_of(&fourth));
    }

    #[tokio::test]
    async fn after_a_failed_sync_no_later_sync_reports_success() {
        let (_engine, log, durable, _dir) = empty_log();
        durable.fail("syncing the raft log: input/output error".into());
        let error = log.shared.sync().unwrap_err();
        assert!(error.to_string().contains("input/output error"), "{error}");
        assert!(log.write([written_by(1, 2, 1)]).is_err());
    }

    #[tokio::test]
    async fn a_truncation_moves_what_is_on_disk_back_to_the_entry_before_it() {
        let (_engine, mut log, durable, _dir) = empty_log();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        let own: Vec<Entry> = (1..=5).map(|i| written_by(1, 1, i)).collect();
        assert!(matches!(log.write(own.clone()).unwrap(), Written::SyncBehind));
        durable.wait_for(id_of(&own[4]), Some(A_WHILE)).await.unwrap();

        // Node 2 leads in term 2 and replaces entries 3..=5.
        log.save_vote(&Vote::new_committed(2, 2)).await.unwrap();
        log.truncate(own[2].log_id).await.unwrap();
        assert_eq!(durable.upto(), id_of(&own[1]));
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, id_of(&own[1]));
        let theirs = written_by(2, 2, 3);
        assert!(matches!(log.write([theirs.clone()]).unwrap(), Written::Synced(Ok(()))));
        assert_eq!(durable.upto(), id_of(&theirs));
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, id_of(&theirs));
    }

    #[tokio::test]
    async fn a_move_off_the_backend_cut_short_by_a_crash_is_done_again() {
        let dir = tempfile::tempdir().unwrap();
        // The crash left entries 1..=3 in the files, all ten still on the backend.
        let mut wal = Wal::open(dir.path()).unwrap();
        let prefix: Vec<(u64, Vec<u8>)> = (1..=3).map(|i| (i, encode(&blank(i)).unwrap())).collect();
        wal.append(&prefix).unwrap();
        sync_all(&wal.take_unsynced()).unwrap();
        drop(wal);
        let engine = backend_with_old_entries(10);
        let mut log = open(dir.path(), &engine);
        let entries = log.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        assert!(
            engine
                .scan(Tree::RaftLog, &[ENTRY_PREFIX], Some(&[ENTRY_PREFIX + 1]), 0)
                .unwrap()
                .is_empty()
        );
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(log_id(10)));
    }

    fn set_applied_on_disk(engine: &SharedBackend, index: u64) {
        let mut batch = WriteBatch::new();
        let record = encode(&(Some(log_id(index)), StoredMembership::default())).unwrap();
        batch.put(META_APPLIED.to_vec(), record);
        engine.write(Tree::State, batch).unwrap();
    }

    #[tokio::test]
    async fn a_purge_waits_until_the_state_on_disk_covers_it() {
        let (engine, log, _dir) = store_with_entries(10);
        set_applied_on_disk(&engine, 4);
        let purge = tokio::spawn({
            let mut log = log.clone();
            async move { log.purge(log_id(8)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!purge.is_finished(), "purged past the state on disk");
        let mut reader = log.clone();
        assert_eq!(reader.try_get_log_entries(1..=10).await.unwrap().len(), 10);

        set_applied_on_disk(&engine, 9);
        tokio::time::timeout(std::time::Duration::from_secs(10), purge)
            .await
            .expect("the purge hangs once the state covers it")
            .unwrap()
            .unwrap();
        let mut log = log;
        assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(8)));
        assert!(log.try_get_log_entries(1..=8).await.unwrap().is_empty());
        assert_eq!(log.try_get_log_entries(9..=10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_purge_writes_out_what_the_state_machine_gathered() {
        let engine: SharedBackend = Arc::new(MemoryBackend::new());
        let state = Arc::new(WriteBehind::new(engine.clone()));
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(1, dir.path(), engine.clone(), state.clone()).unwrap();
        // An apply that is gathered, not yet in the engine.
        let mut batch = WriteBatch::new();
        let record = encode(&(Some(log_id(6)), StoredMembership::default())).unwrap();
        batch.put(META_APPLIED.to_vec(), record);
        state.write(Tree::State, batch).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), log.purge(log_id(5)))
            .await
            .expect("the purge waits for a write-out that only it can start")
            .unwrap();
        assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(5)));
    }
}
