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
//!
//! ```text
//!   mod.rs      the log store and what openraft calls on it
//!   sync.rs     the segment files under their lock, and the thread that syncs them
//!   recovery.rs what opening the log does with what an earlier process left
//! ```

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, EntryPayload, RaftLogReader, StorageIOError};

use super::durable::Durable;
use super::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote, decode, encode};
use super::wal::Wal;
use crate::backend::{BackendError, SharedBackend, Tree, WriteBatch, WriteBehind};
use crate::disk_space::{DiskSpace, RETRY_INTERVAL, is_out_of_space};

#[cfg(test)]
mod out_of_space_tests;
#[cfg(test)]
mod power_cut_tests;
mod recovery;
mod sync;
#[cfg(test)]
mod tests;

use recovery::{
    check_the_backend_against_the_log, last_entry_id, leading, move_entries_off_the_backend, stand_down_after_a_restart,
};
use sync::{Files, Shared, Written, start_sync_thread};

const ENTRY_PREFIX: u8 = b'e';
const KEY_VOTE: &[u8] = b"v";
const KEY_COMMITTED: &[u8] = b"c";
const KEY_PURGED: &[u8] = b"p";

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
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
    /// Where appends that find the disk full are reported while they wait for space.
    space: DiskSpace,
    wal_dir: std::path::PathBuf,
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
        Self::open_on(crate::disk::os(), me, wal_dir, engine, state)
    }

    /// [`LogStore::open`], its segment files on `disk`.
    pub fn open_on(
        disk: crate::disk::SharedDisk,
        me: NodeId,
        wal_dir: &std::path::Path,
        engine: SharedBackend,
        state: Arc<WriteBehind>,
    ) -> Result<Self, StorageError> {
        let mut wal = Wal::open_on(disk, wal_dir)
            .map_err(|e| read_err(format!("opening the log in {}: {e}", wal_dir.display())))?;
        move_entries_off_the_backend(&engine, &mut wal)?;
        check_the_backend_against_the_log(&engine, &wal)?;
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
        let space = state.disk_space().unwrap_or_else(|| DiskSpace::new(wal_dir));
        Ok(Self {
            me,
            backend: engine,
            sync_soon: start_sync_thread(shared.clone()),
            shared,
            state,
            space,
            wal_dir: wal_dir.to_path_buf(),
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
    ///
    /// An append that finds the disk full is taken back (see `Wal::append`) and
    /// tried again every `RETRY_INTERVAL` until space returns, the disk reported full
    /// meanwhile: the Raft core waits, as for a slow disk, rather than stopping.
    async fn write_when_there_is_room(&self, entries: &[Entry]) -> Result<Written, StorageError> {
        loop {
            match self.try_write(entries) {
                Err(AppendFailure::OutOfSpace(e)) => {
                    self.space.report(&self.wal_dir, &e);
                    if self.space.is_closing() {
                        return Err(write_err(format!("appending to {}: {e}", self.wal_dir.display())));
                    }
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
                Err(AppendFailure::Other(e)) => return Err(*e),
                Ok(written) => {
                    self.space.recovered(&self.wal_dir);
                    return Ok(written);
                }
            }
        }
    }

    #[cfg(test)]
    fn write(&self, entries: impl IntoIterator<Item = Entry>) -> Result<Written, StorageError> {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.try_write(&entries).map_err(|failure| match failure {
            AppendFailure::OutOfSpace(e) => write_err(e),
            AppendFailure::Other(e) => *e,
        })
    }

    fn try_write(&self, entries: &[Entry]) -> Result<Written, AppendFailure> {
        if let Some(why) = self.shared.durable.failure() {
            return Err(write_err(why).into());
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
            records.push((entry.log_id.index, encode(entry).map_err(write_err)?));
        }
        let sync_here = {
            let mut files = self.files();
            files.wal.append(&records).map_err(|e| {
                if is_out_of_space(&e) {
                    AppendFailure::OutOfSpace(e)
                } else {
                    AppendFailure::Other(Box::new(write_err(e)))
                }
            })?;
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
}

/// Why an append failed: out of space (taken back, to be tried again), or otherwise.
#[derive(Debug)]
enum AppendFailure {
    OutOfSpace(std::io::Error),
    Other(Box<StorageError>),
}

impl From<StorageError> for AppendFailure {
    fn from(e: StorageError) -> Self {
        AppendFailure::Other(Box::new(e))
    }
}

impl LogStore {
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        match self.write_when_there_is_room(&entries).await? {
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
        let mut deadline = tokio::time::Instant::now() + PURGE_WAIT;
        loop {
            // What the state machine applied and has not written out yet counts too.
            // Short of space it cannot be: the purge waits, however long that takes,
            // for the entries it would remove are all the state has meanwhile.
            match self.state.write_out_now() {
                Ok(()) => {}
                Err(BackendError::Io(e)) if is_out_of_space(&e) => {
                    if self.space.is_closing() {
                        return Err(write_err(format!("purging the raft log: {e}")));
                    }
                    deadline = tokio::time::Instant::now() + PURGE_WAIT;
                    tokio::time::sleep(RETRY_INTERVAL).await;
                    continue;
                }
                Err(e) => return Err(write_err(e)),
            }
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

/// For the log store's tests: a committed entry at `index` holding one put.
#[cfg(test)]
fn put_entry(index: u64, put: berth_proto::etcdserverpb::PutRequest) -> Entry {
    use berth_proto::berthpb::{Command, CommandBatch, command};
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 2), index),
        payload: EntryPayload::Normal(crate::raft::Request::new(&CommandBatch {
            commands: vec![Command {
                command: Some(command::Command::Put(put)),
            }],
            initial_revision: crate::mvcc::INITIAL_REVISION,
        })),
    }
}
