//! The adapter between openraft and the applied state.
//!
//! ```text
//!  committed entries ──► apply each command (pure) ──► staged writes
//!                                                        │ + applied log id + membership
//!                                                        ▼
//!                                       one atomic backend batch (State tree)
//!                                                        │
//!                                         watch hub ◄────┘ (after the write)
//! ```
//!
//! The batch is neither written out nor flushed here: the backend the state machine
//! is given gathers batches and writes many at once (see `backend::WriteBehind`), and
//! the Raft log's flushes (same database) make what was written out durable. Until
//! then a crash only means re-applying entries the log still has, because the applied
//! log id rolls back with the data it covers. Before a snapshot lets the log be purged,
//! and after one is installed, the state is written out and flushed.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use berth_proto::berthpb::{Command, CommandBatch};
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};

use super::snapshot::{self, SnapshotFile};
use super::{AppliedState, StateHandle};
use crate::alarm::AlarmSet;
use crate::auth::AuthRuntime;
use crate::backend::{BackendError, SharedBackend, Tree, WriteBatch};
use crate::disk_space::{DiskSpace, RETRY_INTERVAL, is_out_of_space};
use crate::lease::LeaseTable;
use crate::mvcc::{KvStore, MvccError};
use crate::raft::{
    Durable, Entry, LogId, Response, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, decode, encode,
};
use crate::watch::WatchHub;

pub(crate) const META_APPLIED: &[u8] = b"m/applied";

fn sm_write_error(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn sm_read_error(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_state_machine(AnyError::error(e.to_string())).into()
}

/// The applied log id the engine holds, written out or not yet flushed: what the state
/// on disk covers once the next flush is done. The Raft log purges no further.
pub fn applied_on_disk(engine: &SharedBackend) -> Result<Option<LogId>, String> {
    match engine.get(Tree::State, META_APPLIED).map_err(|e| e.to_string())? {
        Some(bytes) => decode::<(Option<LogId>, StoredMembership)>(&bytes)
            .map(|(applied, _)| applied)
            .map_err(|e| format!("applied log id record: {e}")),
        None => Ok(None),
    }
}

impl AppliedState {
    /// Loads the applied state from the backend and checks its invariants.
    pub fn load(backend: &SharedBackend) -> Result<Self, MvccError> {
        let (kv, leased) = KvStore::open(backend.clone())?;
        let leases = LeaseTable::open(backend, leased)?;
        let alarms = AlarmSet::open(backend)?;
        let auth = crate::auth::AuthState::load(backend)?;
        let (last_applied, membership) = match backend.get(Tree::State, META_APPLIED)? {
            Some(bytes) => {
                decode::<(Option<LogId>, StoredMembership)>(&bytes).map_err(|e| MvccError::CorruptRecord {
                    revision: Default::default(),
                    reason: format!("applied log id record: {e}"),
                })?
            }
            None => (None, StoredMembership::default()),
        };
        Ok(Self {
            kv,
            leases,
            last_applied,
            membership,
            alarms,
            auth,
        })
    }
}

pub struct StateMachineStore {
    state: StateHandle,
    backend: SharedBackend,
    hub: WatchHub,
    snapshot_dir: PathBuf,
    snapshot_seq: u64,
    /// How far this replica's log is on disk: no entry is applied before that.
    log_on_disk: Durable,
    /// A snapshot that finds the disk full waits for space (see `disk_space`).
    space: Option<DiskSpace>,
    /// This member's tokens and enabled flag, told of every applied auth change.
    auth: Arc<AuthRuntime>,
}

/// What a snapshot build that may wait for space gives up with.
enum BuildFailure {
    OutOfSpace(String),
    Other(StorageError),
}

fn is_out_of_space_error(e: &BackendError) -> bool {
    matches!(e, BackendError::Io(io) if is_out_of_space(io))
}

impl StateMachineStore {
    pub fn new(
        state: StateHandle,
        backend: SharedBackend,
        hub: WatchHub,
        snapshot_dir: PathBuf,
        log_on_disk: Durable,
    ) -> Self {
        Self {
            state,
            backend,
            hub,
            snapshot_dir,
            snapshot_seq: 0,
            log_on_disk,
            space: None,
            auth: Arc::new(AuthRuntime::new(std::time::Duration::from_secs(300), false)),
        }
    }

    /// Tells `auth` (the store's) of every applied auth change.
    pub fn with_auth(mut self, auth: Arc<AuthRuntime>) -> Self {
        self.auth = auth;
        self
    }

    /// Lets a snapshot build wait, while the disk is full, for space to return rather
    /// than fail (which would stop the Raft core).
    pub fn waiting_for_space(mut self, space: DiskSpace) -> Self {
        self.space = Some(space);
        self
    }

    /// Runs `attempt` until it succeeds or fails otherwise than for want of space,
    /// waiting for space in between (when this store may wait).
    async fn retry_while_full<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, BuildFailure>,
    ) -> Result<T, StorageError> {
        loop {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(BuildFailure::Other(e)) => return Err(e),
                Err(BuildFailure::OutOfSpace(why)) => match &self.space {
                    Some(space) if !space.is_closing() => {
                        tracing::warn!(error = %why, "a snapshot waits for disk space");
                        tokio::time::sleep(RETRY_INTERVAL).await;
                    }
                    _ => return Err(sm_write_error(why)),
                },
            }
        }
    }

    fn applied_record(last_applied: &Option<LogId>, membership: &StoredMembership) -> Result<Vec<u8>, StorageError> {
        encode(&(last_applied, membership)).map_err(sm_write_error)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // Hold the read lock so that the dump and its meta describe the same state (and
        // let go of it between attempts, so that entries apply while space is short).
        let (state_handle, backend) = (self.state.clone(), self.backend.clone());
        let (last_applied, membership, data) = self
            .retry_while_full(|| {
                let state = state_handle.read();
                match backend.flush() {
                    Ok(()) => {}
                    Err(e) if is_out_of_space_error(&e) => return Err(BuildFailure::OutOfSpace(e.to_string())),
                    Err(e) => return Err(BuildFailure::Other(sm_write_error(e))),
                }
                let data = snapshot::dump_state(&backend).map_err(|e| BuildFailure::Other(sm_read_error(e)))?;
                Ok((state.last_applied, state.membership.clone(), data))
            })
            .await?;
        self.snapshot_seq += 1;
        let snapshot_id = match &last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, self.snapshot_seq),
            None => format!("0-0-{}", self.snapshot_seq),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let dir = self.snapshot_dir.clone();
        let file = loop {
            let (dir, file) = (
                dir.clone(),
                SnapshotFile {
                    meta: file.meta.clone(),
                    data: file.data.clone(),
                },
            );
            let saved = tokio::task::spawn_blocking(move || snapshot::save(&dir, &file).map(|()| file))
                .await
                .map_err(sm_write_error)?;
            match saved {
                Ok(file) => break file,
                Err(e) if is_out_of_space(&e) && self.space.as_ref().is_some_and(|s| !s.is_closing()) => {
                    tracing::warn!(error = %e, "saving a snapshot waits for disk space");
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
                Err(e) => {
                    return Err(StorageError::from(StorageIOError::write_snapshot(
                        Some(meta.signature()),
                        AnyError::new(&e),
                    )));
                }
            }
        };
        tracing::info!(snapshot = %file.meta.snapshot_id, bytes = file.data.len(), "built snapshot");
        Ok(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(file.data)),
        })
    }
}

/// An entry's payload as apply takes it: a normal entry's batch decoded.
enum Payload {
    Blank,
    Membership(openraft::Membership<crate::raft::NodeId, crate::raft::MemberInfo>),
    Batch(CommandBatch),
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.state.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // The leader's own entries may be committed before its sync is done (see
        // `raft::durable`): an entry takes effect once it is on this disk as well.
        if let Some(last) = entries.last() {
            self.log_on_disk
                .wait_for(Some(last.log_id), None)
                .await
                .map_err(sm_write_error)?;
        }
        // The log keeps and sends batches encoded: each is decoded here, before the
        // state is locked.
        let entries = (entries.into_iter())
            .map(|entry| {
                let payload = match entry.payload {
                    EntryPayload::Blank => Payload::Blank,
                    EntryPayload::Membership(membership) => Payload::Membership(membership),
                    EntryPayload::Normal(request) => Payload::Batch(request.batch().map_err(|e| {
                        let e = AnyError::error(format!("the entry's batch does not decode: {e}"));
                        StorageError::from(StorageIOError::read_log_at_index(entry.log_id.index, e))
                    })?),
                };
                Ok((entry.log_id, payload))
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        let mut responses = Vec::with_capacity(entries.len());
        let mut events = Vec::new();
        let mut auth_effects = Vec::new();
        {
            let mut state = self.state.write();
            let mut lease_batch = WriteBatch::new();
            state.kv.set_events_carry_prev_kv(self.hub.wants_prev_kv());
            for (log_id, payload) in entries {
                state.last_applied = Some(log_id);
                let results = match payload {
                    Payload::Blank => Vec::new(),
                    Payload::Membership(membership) => {
                        state.membership = StoredMembership::new(Some(log_id), membership);
                        Vec::new()
                    }
                    Payload::Batch(batch) => {
                        state.kv.start_numbering(batch.initial_revision);
                        let mut results = Vec::with_capacity(batch.commands.len());
                        for command in &batch.commands {
                            let applied = apply_one(&mut state, command, &mut lease_batch, log_id)?;
                            results.push(applied.result);
                            events.extend(applied.events);
                            auth_effects.extend(applied.auth);
                        }
                        results
                    }
                };
                responses.push(Response(results));
            }
            let mut batch = state.kv.take_batch();
            batch.ops.append(&mut lease_batch.ops);
            batch.put(
                META_APPLIED.to_vec(),
                Self::applied_record(&state.last_applied, &state.membership)?,
            );
            self.backend.write(Tree::State, batch).map_err(sm_write_error)?;
            state.kv.debug_validate();
        }
        for effect in &auth_effects {
            self.auth.applied(effect);
        }
        self.hub.publish(events);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Self {
            state: self.state.clone(),
            backend: self.backend.clone(),
            hub: self.hub.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
            snapshot_seq: self.snapshot_seq + 1_000_000,
            log_on_disk: self.log_on_disk.clone(),
            space: self.space.clone(),
            auth: self.auth.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let signature = Some(meta.signature());
        let snapshot_err =
            |e: String| StorageError::from(StorageIOError::write_snapshot(signature.clone(), AnyError::error(e)));
        {
            let mut state = self.state.write();
            let applied = Self::applied_record(&meta.last_log_id, &meta.last_membership)?;
            snapshot::restore_state(&self.backend, &data, META_APPLIED, applied).map_err(snapshot_err)?;
            // The log's purge to the snapshot waits for this state to reach the engine.
            self.backend.flush().map_err(|e| snapshot_err(e.to_string()))?;
            *state = AppliedState::load(&self.backend).map_err(|e| snapshot_err(e.to_string()))?;
            self.auth.set_enabled(state.auth.enabled);
            tracing::info!(
                snapshot = %meta.snapshot_id,
                revision = state.kv.current_revision(),
                "installed snapshot from the leader"
            );
        }
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let dir = self.snapshot_dir.clone();
        tokio::task::spawn_blocking(move || snapshot::save(&dir, &file))
            .await
            .map_err(|e| snapshot_err(e.to_string()))?
            .map_err(|e| snapshot_err(e.to_string()))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let dir = self.snapshot_dir.clone();
        let file = tokio::task::spawn_blocking(move || snapshot::load(&dir))
            .await
            .map_err(sm_read_error)?
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(None, AnyError::new(&e))))?;
        Ok(file.map(|f| Snapshot {
            meta: f.meta,
            snapshot: Box::new(Cursor::new(f.data)),
        }))
    }
}

fn apply_one(
    state: &mut AppliedState,
    command: &Command,
    lease_batch: &mut WriteBatch,
    log_id: LogId,
) -> Result<super::Applied, StorageError> {
    state.apply(command, lease_batch).map_err(|e| {
        tracing::error!(%log_id, error = %e, "apply failed; this replica stops");
        StorageError::from(StorageIOError::apply(log_id, AnyError::error(e.to_string())))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use berth_proto::berthpb::{CommandBatch, command};
    use berth_proto::etcdserverpb::PutRequest;
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::backend::MemoryBackend;
    use crate::raft::Request;

    fn put_entry(index: u64) -> Entry {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: index.to_string().into_bytes(),
            ..Default::default()
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request::new(&CommandBatch {
                commands: vec![Command {
                    command: Some(command::Command::Put(put)),
                }],
                initial_revision: 0,
            })),
        }
    }

    /// An empty state machine over a log with nothing on disk yet.
    fn state_machine() -> (StateMachineStore, StateHandle, Durable, tempfile::TempDir) {
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        let state = StateHandle::new(AppliedState::load(&backend).unwrap());
        let snapshots = tempfile::tempdir().unwrap();
        let on_disk = Durable::new(None);
        let sm = StateMachineStore::new(
            state.clone(),
            backend,
            WatchHub::new(),
            snapshots.path().to_path_buf(),
            on_disk.clone(),
        );
        (sm, state, on_disk, snapshots)
    }

    #[tokio::test]
    async fn an_entry_is_applied_only_once_the_log_here_holds_it_on_disk() {
        let (mut sm, state, on_disk, _snapshots) = state_machine();
        let revision = state.read().kv.current_revision();
        let apply = tokio::spawn(async move { sm.apply([put_entry(1), put_entry(2)]).await.map(|r| r.len()) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        on_disk.reached(Some(put_entry(1).log_id));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!apply.is_finished(), "applied before entry 2 was on disk");
        assert_eq!(state.read().last_applied, None);
        assert_eq!(state.read().kv.current_revision(), revision);

        on_disk.reached(Some(put_entry(2).log_id));
        let applied = tokio::time::timeout(Duration::from_secs(10), apply)
            .await
            .expect("the apply hangs with its entries on disk")
            .unwrap()
            .unwrap();
        assert_eq!(applied, 2);
        assert_eq!(state.read().last_applied, Some(put_entry(2).log_id));
        assert_eq!(state.read().kv.current_revision(), revision + 2);
    }

    /// A batch is decoded where it is applied: one that does not decode stops the
    /// apply with the log index named, before anything of its batch is applied.
    #[tokio::test]
    async fn an_entry_whose_batch_does_not_decode_is_refused_with_its_index() {
        let (mut sm, state, on_disk, _snapshots) = state_machine();
        let revision = state.read().kv.current_revision();
        let torn = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 2),
            payload: EntryPayload::Normal(Request::from_encoded(vec![0x0a, 0xff])),
        };
        on_disk.reached(Some(torn.log_id));
        let error = sm.apply([put_entry(1), torn]).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("when Read LogIndex(2): the entry's batch does not decode"),
            "{error}"
        );
        assert_eq!(state.read().last_applied, None);
        assert_eq!(state.read().kv.current_revision(), revision);
    }

    fn numbered(entry: Entry, initial_revision: i64) -> Entry {
        match entry.payload {
            EntryPayload::Normal(request) => {
                let mut batch = request.batch().unwrap();
                batch.initial_revision = initial_revision;
                Entry {
                    log_id: entry.log_id,
                    payload: EntryPayload::Normal(Request::new(&batch)),
                }
            }
            _ => unreachable!("a put entry"),
        }
    }

    fn empty_entry(index: u64, initial_revision: i64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request::new(&CommandBatch {
                commands: Vec::new(),
                initial_revision,
            })),
        }
    }

    fn put_revision(response: &Response) -> i64 {
        match &response.0[..] {
            [Ok(berth_proto::berthpb::command_result::Result::Put(put))] => put.header.as_ref().unwrap().revision,
            other => panic!("not one put's result: {other:?}"),
        }
    }

    /// etcd's numbering for a store never written: revision 1 before the first write
    /// (from an entry of no commands), 2 for the first write, never compacted (-1).
    #[tokio::test]
    async fn a_store_never_written_numbers_its_revisions_as_etcd() {
        let (mut sm, state, on_disk, _snapshots) = state_machine();
        on_disk.reached(Some(put_entry(3).log_id));
        sm.apply([empty_entry(1, 1)]).await.unwrap();
        assert_eq!(state.read().kv.current_revision(), 1);
        assert_eq!(state.read().kv.compact_revision(), -1);
        let applied = sm
            .apply([numbered(put_entry(2), 1), numbered(put_entry(3), 1)])
            .await
            .unwrap();
        assert_eq!(applied.iter().map(put_revision).collect::<Vec<_>>(), [2, 3]);
        let kv = &state.read().kv;
        assert_eq!(
            kv.events_between(0, 3, 10, false).unwrap().len(),
            2,
            "history from the start"
        );
        assert_ne!(
            kv.hash_kv(3).unwrap(),
            kv.hash_kv(1).unwrap(),
            "the hash covers the writes"
        );
        let reloaded = AppliedState::load(kv.backend()).unwrap();
        assert_eq!(
            (reloaded.kv.current_revision(), reloaded.kv.compact_revision()),
            (3, -1)
        );
    }

    /// A store whose first write came in an entry of an earlier version (no initial
    /// revision) keeps numbering from 0 under this version's entries: every replica
    /// that applies the same log numbers alike.
    #[tokio::test]
    async fn a_store_first_written_by_an_earlier_version_keeps_its_numbering() {
        let (mut sm, state, on_disk, _snapshots) = state_machine();
        on_disk.reached(Some(put_entry(3).log_id));
        let applied = sm.apply([numbered(put_entry(1), 0)]).await.unwrap();
        assert_eq!(put_revision(&applied[0]), 1);
        let applied = sm.apply([empty_entry(2, 1), numbered(put_entry(3), 1)]).await.unwrap();
        assert_eq!(put_revision(&applied[1]), 2);
        assert_eq!(state.read().kv.compact_revision(), 0);
    }

    #[tokio::test]
    async fn a_failed_sync_of_the_log_fails_the_apply() {
        let (mut sm, state, on_disk, _snapshots) = state_machine();
        on_disk.fail("syncing the raft log: input/output error".into());
        let error = tokio::time::timeout(Duration::from_secs(10), sm.apply([put_entry(1)]))
            .await
            .expect("the apply hangs after a failed sync")
            .unwrap_err();
        assert!(error.to_string().contains("input/output error"), "{error}");
        assert_eq!(state.read().last_applied, None);
    }
}
