//! The Raft log on the backend's `RaftLog` tree.
//!
//! Keys: `e` + big-endian index → entry; `v` → vote; `c` → committed log id;
//! `p` → last purged log id.
//!
//! A leader's append is written at once and acknowledged by a flusher thread after a
//! flush covers it, so the leader replicates the entry while its own fsync runs.
//! Appends that arrive while a flush is running share the next one (group fsync). A
//! follower's append (entries another leader wrote) is flushed in place: the follower
//! has nothing else to do meanwhile, and the hand-off to the thread and back would only
//! delay its answer. Either way `LogFlushed` is never called before the entry is on
//! disk. A vote is flushed before `save_vote` returns.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, RaftLogReader, StorageIOError};

use super::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote, decode, encode};
use crate::backend::{SharedBackend, Tree, WriteBatch};

const ENTRY_PREFIX: u8 = b'e';
const KEY_VOTE: &[u8] = b"v";
const KEY_COMMITTED: &[u8] = b"c";
const KEY_PURGED: &[u8] = b"p";

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

/// Acknowledges appends once a flush covers them, one flush for everything queued.
struct Flusher {
    tx: std_mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl Flusher {
    fn start(backend: SharedBackend) -> Self {
        let (tx, rx) = std_mpsc::channel::<LogFlushed<TypeConfig>>();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    let result = backend.flush();
                    for callback in waiting {
                        let outcome = match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(std::io::Error::other(e.to_string())),
                        };
                        callback.log_io_completed(outcome);
                    }
                }
            })
            .expect("spawning the log flush thread");
        Self { tx }
    }
}

#[derive(Clone)]
pub struct LogStore {
    /// This replica, to tell its own entries (it leads) from a leader's (it follows).
    me: NodeId,
    backend: SharedBackend,
    flusher: Arc<Flusher>,
}

impl LogStore {
    pub fn new(me: NodeId, backend: SharedBackend) -> Self {
        let flusher = Arc::new(Flusher::start(backend.clone()));
        Self { me, backend, flusher }
    }

    fn get_decoded<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.backend.get(Tree::RaftLog, key).map_err(read_err)? {
            Some(bytes) => decode(&bytes).map(Some).map_err(read_err),
            None => Ok(None),
        }
    }

    fn put_encoded<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.put(key.to_vec(), encode(value).map_err(write_err)?);
        self.backend.write(Tree::RaftLog, batch).map_err(write_err)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let last = self
            .backend
            .last(Tree::RaftLog, &[ENTRY_PREFIX], Some(&[ENTRY_PREFIX + 1]))
            .map_err(read_err)?;
        match last {
            Some((_, bytes)) => decode::<Entry>(&bytes).map(|e| Some(e.log_id)).map_err(read_err),
            None => Ok(None),
        }
    }
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
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        let end_key = end.map_or([ENTRY_PREFIX + 1, 0, 0, 0, 0, 0, 0, 0, 0], entry_key);
        let pairs = self
            .backend
            .scan(Tree::RaftLog, &entry_key(start), Some(&end_key), 0)
            .map_err(read_err)?;
        pairs
            .iter()
            .map(|(_, bytes)| decode::<Entry>(bytes).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_decoded(KEY_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
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
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_decoded(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: a committed id that rolls back is only re-learned from the leader.
        self.put_encoded(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_decoded::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::new();
        let mut is_mine = true;
        for entry in entries {
            is_mine &= entry.log_id.leader_id.node_id == self.me;
            batch.put(
                entry_key(entry.log_id.index).to_vec(),
                encode(&entry).map_err(write_err)?,
            );
        }
        self.backend.write(Tree::RaftLog, batch).map_err(write_err)?;
        if !is_mine {
            let flushed = self.backend.flush().map_err(|e| std::io::Error::other(e.to_string()));
            callback.log_io_completed(flushed);
            return Ok(());
        }
        self.flusher
            .tx
            .send(callback)
            .map_err(|_| write_err("log flush thread is gone"))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let pairs = self
            .backend
            .scan(Tree::RaftLog, &entry_key(log_id.index), Some(&[ENTRY_PREFIX + 1]), 0)
            .map_err(read_err)?;
        let mut batch = WriteBatch::new();
        for (key, _) in pairs {
            batch.delete(key);
        }
        self.backend.write(Tree::RaftLog, batch).map_err(write_err)?;
        self.backend.flush().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.put(KEY_PURGED.to_vec(), encode(&log_id).map_err(write_err)?);
        let end = entry_key(log_id.index + 1);
        for (key, _) in self
            .backend
            .scan(Tree::RaftLog, &entry_key(0), Some(&end), 0)
            .map_err(read_err)?
        {
            batch.delete(key);
        }
        self.backend.write(Tree::RaftLog, batch).map_err(write_err)?;
        tracing::debug!(upto = log_id.index, "purged raft log");
        Ok(())
    }
}
