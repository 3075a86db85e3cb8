//! The segment files under one lock, and how appends reach the disk: synced in place
//! by `LogStore::write`, or behind by a thread for the leader's own entries (see the
//! module doc of `log_store`). Lock order: `syncing`, then `files`, then the
//! `Durable` watch; `files` is never held across a sync.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::LeaderId;

use crate::disk::SharedFile;
use crate::raft::durable::Durable;
use crate::raft::types::{LogId, NodeId};
use crate::raft::wal::{Wal, same_file};

/// Syncs the files in `unsynced` once each.
pub(super) fn sync_all(unsynced: &[SharedFile]) -> std::io::Result<()> {
    let mut synced: Vec<&SharedFile> = Vec::new();
    for file in unsynced {
        if !synced.iter().any(|s| same_file(s, file)) {
            file.sync_data()?;
            synced.push(file);
        }
    }
    Ok(())
}

/// The segment files and what is known of their entries, under one lock.
pub(super) struct Files {
    pub(super) wal: Wal,
    /// The last entry written.
    pub(super) appended: Option<LogId>,
    /// The last entry a truncation left since the current sync took its files (the
    /// lowest, after several): that sync covers no entry past it.
    pub(super) cut_to: Option<Option<LogId>>,
    /// The leader this replica is, when its vote is its own and granted: entries with
    /// this leader id are its own writes, in its current term.
    pub(super) leading: Option<LeaderId<NodeId>>,
}

/// What the log store and its sync thread share.
pub(super) struct Shared {
    pub(super) files: Mutex<Files>,
    /// One sync at a time, so a finished one covers every append before it started.
    pub(super) syncing: Mutex<()>,
    pub(super) durable: Durable,
}

impl Shared {
    pub(super) fn files(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Syncs every append written so far and records how far the log is on disk.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The test fault's wait stands for a slow fsync, and counts as one.
        let started = std::time::Instant::now();
        crate::slow_disk::before_sync();
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
        warn_if_slow(started.elapsed());
        let files = self.files();
        let upto = match files.cut_to {
            Some(cut_to) => upto.min(cut_to),
            None => upto,
        };
        self.durable.reached(upto);
        Ok(())
    }
}

/// A sync past this is logged, as etcd logs a slow fdatasync of its WAL: a follower
/// answers the leader only once its appends are on disk, so a sync this long leaves
/// the leader's heartbeats unanswered for as long, near an election timeout.
const WARN_SYNC: std::time::Duration = std::time::Duration::from_secs(1);

fn warn_if_slow(took: std::time::Duration) {
    if took > WARN_SYNC {
        tracing::warn!(
            took_ms = took.as_millis() as u64,
            expected_ms = WARN_SYNC.as_millis() as u64,
            "slow fdatasync of the raft log"
        );
    }
}

/// Syncs the leader's appends, all that are waiting at once.
pub(super) fn start_sync_thread(shared: Arc<Shared>) -> std_mpsc::Sender<()> {
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
pub(super) enum Written {
    /// Synced before `write` returned, with the sync's outcome.
    Synced(std::io::Result<()>),
    /// The sync thread syncs it; `Durable` tells when.
    SyncBehind,
}
