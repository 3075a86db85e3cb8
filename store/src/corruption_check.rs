//! etcd's periodic corruption check (`--experimental-corrupt-check-time`): every
//! interval the leader hashes its keyspace at its current revision (HashKV), asks every
//! other member for its hash at that revision, and raises the CORRUPT alarm, through
//! the log, for a member whose data differs. Once raised, CORRUPT makes every member
//! refuse requests (see `alarm`) until an operator disarms it.
//!
//! ```text
//!   leader: (hash, revision, compacted) = HashKV(current)
//!       │ its hash at that revision from every other member, on a raft stream
//!       │ (`corruption::ask`, Kind::HashKv)
//!       ▼
//!   leader: HashKV(current) again ──► judge (pure) ──► ACTIVATE CORRUPT for the member
//! ```
//!
//! The judgement is etcd's: the leader's own hash changing at an unchanged revision
//! means the leader is corrupt; a member ahead of the leader in revision or compaction
//! is corrupt (once the leader has had the time to apply what it committed: a follower
//! may apply an entry first); a member compacted where the leader was must have the same hash. A
//! member that has not applied the revision yet (or compacted past it) is skipped.
//! One alarm at most per check.

use std::time::Duration;

use berth_proto::etcdserverpb::AlarmType;

use crate::corruption::{PeerHash, ask, local_hash};
use crate::raft::NodeId;
use crate::store::Store;

/// The member to raise CORRUPT for, if any: `leader` is this replica, `before` and
/// `after` its hashes at its current revision around the peers' answers, which hash
/// `before.revision`.
pub fn judge(leader: NodeId, before: PeerHash, after: PeerHash, peers: &[PeerHash]) -> Option<NodeId> {
    if before.hash != after.hash
        && before.revision == after.revision
        && before.compact_revision == after.compact_revision
    {
        return Some(leader);
    }
    peers.iter().find_map(|peer| {
        let is_ahead = peer.current_revision > after.revision || peer.compact_revision > after.compact_revision;
        let differs = peer.compact_revision == before.compact_revision && peer.hash != before.hash;
        (is_ahead || differs).then_some(peer.member_id)
    })
}

/// Runs the check every `every` while this replica leads, until the store stops.
pub async fn run_periodically(store: Store, every: Duration) {
    let mut shutdown = store.shutdown_signal();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !store.is_leader() {
            continue;
        }
        if let Err(e) = check_once(&store).await {
            tracing::warn!(error = %e, "the corruption check could not run");
        }
    }
}

/// One check, as the leader. Returns the member it raised CORRUPT for.
pub async fn check_once(store: &Store) -> crate::error::Result<Option<NodeId>> {
    let before = local_hash(store, 0)?;
    let mut peers = Vec::new();
    for member in store.members() {
        if member.id == store.id() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + store.request_timeout();
        match ask(store, member.id, before.revision, deadline).await {
            Ok(answer) => peers.push(answer),
            Err(e) => tracing::debug!(member = format!("{:x}", member.id), error = %e, "no hash from a member"),
        }
    }
    let mut after = local_hash(store, 0)?;
    // A follower may apply a committed entry before the leader does, so a member that
    // looks ahead is judged only once the leader has applied as far (or the request
    // timeout has passed: then it is ahead of anything the leader committed).
    let furthest = peers.iter().map(|peer| peer.current_revision).max().unwrap_or(0);
    if furthest > after.revision {
        let deadline = tokio::time::Instant::now() + store.request_timeout();
        while store.current_revision() < furthest && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        after = local_hash(store, 0)?;
    }
    let Some(corrupt) = judge(store.id(), before, after, &peers) else {
        tracing::debug!(
            revision = before.revision,
            checked = peers.len(),
            "corruption check: hashes agree"
        );
        return Ok(None);
    };
    tracing::error!(
        member = format!("{corrupt:x}"),
        revision = before.revision,
        "corruption check: a member's data differs from the leader's; raising CORRUPT"
    );
    store.activate_alarm(corrupt, AlarmType::Corrupt).await?;
    Ok(Some(corrupt))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: NodeId = 1;

    fn local(hash: u32, revision: i64, compact_revision: i64) -> PeerHash {
        peer(LEADER, hash, revision, compact_revision)
    }

    /// A member's answer: its hash, its own current revision, its compaction.
    fn peer(member_id: NodeId, hash: u32, current_revision: i64, compact_revision: i64) -> PeerHash {
        PeerHash {
            member_id,
            revision: current_revision,
            hash,
            compact_revision,
            current_revision,
        }
    }

    #[test]
    fn agreeing_members_raise_nothing() {
        let mine = local(0xabc, 10, 2);
        let peers = [peer(2, 0xabc, 10, 2), peer(3, 0xabc, 9, 2)];
        assert_eq!(judge(LEADER, mine, mine, &peers), None);
    }

    #[test]
    fn a_member_with_another_hash_at_the_same_compaction_is_corrupt() {
        let mine = local(0xabc, 10, 2);
        let peers = [peer(2, 0xabc, 10, 2), peer(3, 0xdef, 10, 2)];
        assert_eq!(judge(LEADER, mine, mine, &peers), Some(3));
    }

    #[test]
    fn a_member_compacted_elsewhere_is_not_compared_by_hash() {
        let mine = local(0xabc, 10, 2);
        let peers = [peer(2, 0xdef, 10, 1)];
        assert_eq!(judge(LEADER, mine, mine, &peers), None);
    }

    #[test]
    fn a_member_ahead_of_the_leader_is_corrupt() {
        let mine = local(0xabc, 10, 2);
        assert_eq!(judge(LEADER, mine, mine, &[peer(2, 0xabc, 11, 2)]), Some(2));
        assert_eq!(judge(LEADER, mine, mine, &[peer(3, 0xabc, 10, 5)]), Some(3));
    }

    #[test]
    fn a_leader_whose_own_hash_moved_at_the_same_revision_is_corrupt() {
        let before = local(0xabc, 10, 2);
        let after = local(0x123, 10, 2);
        assert_eq!(judge(LEADER, before, after, &[peer(2, 0xabc, 10, 2)]), Some(LEADER));
        // A write in between moves the hash with the revision: nothing wrong.
        let later = local(0x123, 11, 2);
        assert_eq!(judge(LEADER, before, later, &[peer(2, 0xabc, 10, 2)]), None);
    }
}
