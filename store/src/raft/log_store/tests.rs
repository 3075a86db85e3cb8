use openraft::{CommittedLeaderId, RaftLogReader};

use super::recovery::entry_key;
use super::sync::sync_all;
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
    // The vote the entries were accepted under.
    batch.put(KEY_VOTE.to_vec(), encode(&Vote::new_committed(1, 1)).unwrap());
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

/// A log on disk of entries `from..=to` (term 1), and a backend that says `applied`,
/// `purged` and the vote's term.
fn log_and_backend(
    from: u64,
    to: u64,
    applied: u64,
    purged: Option<u64>,
    vote_term: u64,
) -> (SharedBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    let records: Vec<(u64, Vec<u8>)> = (from..=to).map(|i| (i, encode(&blank(i)).unwrap())).collect();
    wal.append(&records).unwrap();
    sync_all(&wal.take_unsynced()).unwrap();
    let engine: SharedBackend = Arc::new(MemoryBackend::new());
    set_applied_on_disk(&engine, applied);
    let mut batch = WriteBatch::new();
    batch.put(KEY_VOTE.to_vec(), encode(&Vote::new_committed(vote_term, 1)).unwrap());
    if let Some(purged) = purged {
        batch.put(KEY_PURGED.to_vec(), encode(&log_id(purged)).unwrap());
    }
    engine.write(Tree::RaftLog, batch).unwrap();
    (engine, dir)
}

fn open_error(dir: &std::path::Path, engine: &SharedBackend) -> String {
    let state = Arc::new(WriteBehind::new(engine.clone()));
    match LogStore::open(1, dir, engine.clone(), state) {
        Ok(_) => panic!("opened over a backend that went back behind the log"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_backend_behind_what_the_log_still_holds_is_replayed() {
    // The state rolled back to entry 3; the log holds 1..=20: entries 4.. apply again.
    let (engine, dir) = log_and_backend(1, 20, 3, None, 1);
    let mut log = open(dir.path(), &engine);
    assert_eq!(log.try_get_log_entries(4..=20).await.unwrap().len(), 17);
}

#[test]
fn a_backend_behind_the_start_of_the_log_is_refused() {
    // The log was purged up to 9; the state went back to entry 3: 4..=9 are nowhere.
    let (engine, dir) = log_and_backend(10, 20, 3, Some(9), 1);
    let message = open_error(dir.path(), &engine);
    assert!(
        message.contains("state is at entry 3") && message.contains("starts at entry 10"),
        "{message}"
    );
    assert!(message.contains("lost writes it had synced"), "{message}");
}

#[test]
fn a_purge_record_or_a_vote_that_went_back_is_refused() {
    let (engine, dir) = log_and_backend(10, 20, 12, Some(4), 1);
    let message = open_error(dir.path(), &engine);
    assert!(message.contains("purge record is at entry 4"), "{message}");

    // Entries of term 1, but a vote the backend remembers only from term 0: voting
    // again in term 1 could elect two leaders.
    let (engine, dir) = log_and_backend(1, 5, 5, None, 0);
    let message = open_error(dir.path(), &engine);
    assert!(
        message.contains("vote is for term 0") && message.contains("of term 1"),
        "{message}"
    );
}
