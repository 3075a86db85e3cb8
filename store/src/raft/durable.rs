//! How far this replica's log is on disk, for the parts that must not run ahead of
//! it.
//!
//! The leader tells openraft its own entries are flushed as soon as they are written,
//! before the sync, so that replication to the followers runs while the leader syncs
//! (as etcd's leader sends to its followers while it writes its WAL). openraft then
//! counts the leader's copy towards a quorum early: with three replicas, an entry it
//! calls committed may so far be on the disk of one follower only. Two fences keep
//! that from being seen:
//!
//! - the state machine applies an entry only once the log here holds it on disk, so a
//!   client hears of a write, and a read or a watch sees it, only when the leader's
//!   copy and a quorum's less one are both on disk: a quorum;
//! - the leader sends a follower a commit index only up to what it holds on disk
//!   itself (see `network`), so no follower applies an entry before that either.
//!
//! Membership entries are synced before openraft hears of them, so every change of
//! membership is committed on disks alone. The commit index saved for a restart goes no
//! further than the log on disk, and a replica that led when it stopped comes back as a
//! candidate, never as the leader of its old term (see `log_store`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::types::LogId;

#[derive(Debug, Clone, Default, PartialEq)]
struct OnDisk {
    /// The last entry that a sync covers, with every entry before it.
    upto: Option<LogId>,
    /// A sync failed: what the files hold is unknown from here on.
    failed: Option<Arc<str>>,
}

/// A shared view of how far the log is on disk.
#[derive(Debug, Clone)]
pub struct Durable {
    tx: Arc<watch::Sender<OnDisk>>,
}

impl Durable {
    pub(crate) fn new(upto: Option<LogId>) -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(OnDisk { upto, failed: None })),
        }
    }

    /// The last entry on disk (with all before it).
    pub fn upto(&self) -> Option<LogId> {
        self.tx.borrow().upto
    }

    /// Why the log can no longer be made durable, if a sync failed.
    pub fn failure(&self) -> Option<Arc<str>> {
        self.tx.borrow().failed.clone()
    }

    /// Waits until every entry up to `log_id` is on disk, for at most `timeout`
    /// (`None`: as long as it takes). Fails when a sync failed, or on the timeout.
    pub async fn wait_for(&self, log_id: Option<LogId>, timeout: Option<Duration>) -> Result<(), String> {
        {
            let now = self.tx.borrow();
            if now.failed.is_none() && now.upto >= log_id {
                return Ok(());
            }
        }
        let mut rx = self.tx.subscribe();
        let reached = rx.wait_for(|now| now.failed.is_some() || now.upto >= log_id);
        let reached = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, reached)
                .await
                .map_err(|_| format!("the log did not reach the disk up to {log_id:?} within {timeout:?}"))?,
            None => reached.await,
        };
        let now = reached.map_err(|_| "the log is closed".to_string())?;
        match &now.failed {
            Some(why) => Err(why.to_string()),
            None => Ok(()),
        }
    }

    /// Records that a sync covers every entry up to `upto`.
    pub(crate) fn reached(&self, upto: Option<LogId>) {
        self.tx.send_if_modified(|now| {
            let moves = upto > now.upto;
            if moves {
                now.upto = upto;
            }
            moves
        });
    }

    /// Records that the log was cut back to `last` (its last entry now).
    pub(crate) fn cut_back(&self, last: Option<LogId>) {
        self.tx.send_if_modified(|now| {
            let moves = last < now.upto;
            if moves {
                now.upto = last;
            }
            moves
        });
    }

    pub(crate) fn fail(&self, why: String) {
        self.tx.send_if_modified(|now| {
            let first = now.failed.is_none();
            if first {
                now.failed = Some(why.into());
            }
            first
        });
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn log_id(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    #[tokio::test]
    async fn a_wait_ends_when_a_sync_reaches_the_entry() {
        let durable = Durable::new(log_id(1, 3));
        durable.wait_for(log_id(1, 3), None).await.unwrap();
        let waiter = tokio::spawn({
            let durable = durable.clone();
            async move { durable.wait_for(log_id(1, 5), None).await }
        });
        durable.reached(log_id(1, 4));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the wait ended before entry 5 was on disk");
        durable.reached(log_id(1, 5));
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the wait hangs with the entry on disk")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_cut_moves_back_and_a_failure_ends_every_wait_with_its_reason() {
        let durable = Durable::new(log_id(1, 10));
        durable.cut_back(log_id(1, 7));
        assert_eq!(durable.upto(), log_id(1, 7));
        // A stale report from before the cut never moves it back up past a new entry.
        durable.reached(log_id(1, 6));
        assert_eq!(durable.upto(), log_id(1, 7));
        let error = durable
            .wait_for(log_id(2, 8), Some(Duration::from_millis(20)))
            .await
            .unwrap_err();
        assert!(error.contains("did not reach the disk"), "{error}");
        let waiter = tokio::spawn({
            let durable = durable.clone();
            async move { durable.wait_for(log_id(2, 8), None).await }
        });
        durable.fail("fdatasync: input/output error".into());
        let error = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("a failed sync leaves the wait hanging")
            .unwrap()
            .unwrap_err();
        assert!(error.contains("input/output error"), "{error}");
        assert!(durable.failure().is_some());
    }
}
