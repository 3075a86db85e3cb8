//! When a follower campaigns: after `--election-timeout` × a random factor in
//! [0.95, 1.05) without hearing from a leader. etcd's followers count heartbeat ticks
//! since the leader's last message and campaign after a random 10 to 19 of the 10 ticks
//! an election timeout holds, so from 0.9 × `--election-timeout` on; berth's range sits
//! at the low end of etcd's.
//!
//! openraft checks its own election timer only on its tick, every 1.5 heartbeat
//! intervals, which adds up to that much to every failover. This timer runs on the
//! replica's own clock: the peer service notes each AppendEntries or snapshot chunk from
//! the current leader, when it arrives (a slow disk must not make a replica doubt a live
//! leader) and when it is answered, and each vote this replica granted. A follower that
//! has heard nothing for its timeout asks openraft to campaign at once. It never does
//! while it installs a snapshot: the leader sends nothing else meanwhile. openraft's own
//! timer stays armed behind it, and retries an election that does not conclude.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::store::Store;

/// When this replica last heard from a leader (or granted a vote), in milliseconds
/// since it started.
#[derive(Debug)]
pub struct LeaderContact {
    epoch: Instant,
    last_ms: AtomicU64,
    /// Snapshot installs in progress.
    installing: AtomicUsize,
}

impl Default for LeaderContact {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            installing: AtomicUsize::new(0),
        }
    }
}

/// Marks a snapshot install in progress until dropped.
pub struct Installing<'a>(&'a LeaderContact);

impl Drop for Installing<'_> {
    fn drop(&mut self) {
        self.0.installing.fetch_sub(1, Ordering::Relaxed);
        self.0.note();
    }
}

impl LeaderContact {
    pub fn note(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    pub fn installing(&self) -> Installing<'_> {
        self.installing.fetch_add(1, Ordering::Relaxed);
        self.note();
        Installing(self)
    }

    fn is_installing(&self) -> bool {
        self.installing.load(Ordering::Relaxed) > 0
    }

    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A timeout in [0.95, 1.05) × `election_timeout`, drawn afresh each time.
fn randomised(election_timeout: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    let tenth = election_timeout / 10;
    let extra_ns = random % (tenth.as_nanos().max(1) as u64);
    election_timeout - tenth / 2 + Duration::from_nanos(extra_ns)
}

/// True when this replica is a follower and a voter among several voters, and is not
/// installing a snapshot: the only case where silence from the leader should start an
/// election.
fn may_campaign(store: &Store) -> bool {
    if store.leader_contact().is_installing() {
        return false;
    }
    let metrics = store.raft().metrics();
    let metrics = metrics.borrow();
    let voters: Vec<_> = metrics.membership_config.membership().voter_ids().collect();
    metrics.state == ServerState::Follower && voters.len() > 1 && voters.contains(&store.id())
}

pub async fn campaign_when_the_leader_is_silent(store: Store) {
    let mut shutdown = store.shutdown_signal();
    let election_timeout = store.config().election_timeout;
    let mut timeout = randomised(election_timeout);
    loop {
        let deadline = store.leader_contact().last() + timeout;
        if Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        if may_campaign(&store) {
            tracing::info!(
                silent_ms = store.leader_contact().last().elapsed().as_millis() as u64,
                "no word from a leader; campaigning"
            );
            if store.raft().trigger().elect().await.is_err() {
                return;
            }
        }
        // Wait a whole timeout again, whether or not this replica campaigned.
        store.leader_contact().note();
        timeout = randomised(election_timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_fall_within_five_percent_of_the_election_timeout() {
        let base = Duration::from_millis(1000);
        let drawn: Vec<Duration> = (0..200).map(|_| randomised(base)).collect();
        let (low, high) = (Duration::from_millis(950), Duration::from_millis(1050));
        assert!(drawn.iter().all(|d| *d >= low && *d < high), "{drawn:?}");
        let distinct: std::collections::BTreeSet<_> = drawn.iter().collect();
        assert!(
            distinct.len() > 100,
            "the draws are not random: {} distinct",
            distinct.len()
        );
    }

    #[test]
    fn an_install_in_progress_counts_until_it_ends() {
        let contact = LeaderContact::default();
        let first = contact.installing();
        let second = contact.installing();
        drop(first);
        assert!(contact.is_installing());
        let before = contact.last();
        std::thread::sleep(Duration::from_millis(5));
        drop(second);
        assert!(!contact.is_installing());
        assert!(contact.last() > before, "the end of an install is word from the leader");
    }

    #[test]
    fn contact_only_moves_forward() {
        let contact = LeaderContact::default();
        contact.note();
        let first = contact.last();
        std::thread::sleep(Duration::from_millis(5));
        contact.note();
        assert!(contact.last() > first);
    }
}
