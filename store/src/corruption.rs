//! Corruption checks: this replica's hash of its key-value history compared with
//! its peers' at one revision (etcd's HashKV), so that a replica whose data changed
//! under it (a bad disk, a hand edit) is caught instead of serving.
//!
//! ```text
//!  local hash at revision R ──► each peer, on a raft stream (Kind::HashKv): its hash at R
//!      ──► compare (pure): the same hash, or a mismatch at the same compaction;
//!          a peer behind R, compacted past it or compacted elsewhere is no evidence
//! ```
//!
//! With `--experimental-initial-corrupt-check`, a restarted replica runs this before
//! it serves anything and refuses to start on a mismatch, as etcd does; a new member
//! has nothing to compare. Peers that do not answer within the wait are skipped,
//! as in etcd: the check can only find disagreement, not prove agreement.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::raft::wire::{CallError, Kind};
use crate::raft::{NodeId, decode, encode};
use crate::store::Store;

/// A replica's hash of its key-value history at a revision: what `Kind::HashKv`
/// answers (in a `Result<PeerHash, StoreError>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHash {
    pub member_id: NodeId,
    /// The revision hashed.
    pub revision: i64,
    pub hash: u32,
    pub compact_revision: i64,
    /// The replica's own revision when it answered (at or past `revision`).
    pub current_revision: i64,
}

/// What one peer's answer says about this replica's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    Agrees,
    /// Same revision, same compaction, another hash: one of the two is corrupt.
    Mismatch {
        peer: PeerHash,
    },
    /// The peer compacted at another revision, so the hashes cover other records.
    CompactedElsewhere {
        peer: PeerHash,
    },
    /// The peer could not hash the revision (it is behind, or compacted past it), or
    /// did not answer.
    NoEvidence {
        member_id: NodeId,
        reason: String,
    },
}

/// This replica's hash at `revision` (0: the current revision).
pub fn local_hash(store: &Store, revision: i64) -> Result<PeerHash> {
    let state = store.state().read();
    let revision = state.kv.check_revision(revision)?;
    Ok(PeerHash {
        member_id: store.id(),
        revision,
        hash: state.kv.hash_kv(revision)?,
        compact_revision: state.kv.compact_revision(),
        current_revision: state.kv.current_revision(),
    })
}

/// The peer's side of `Kind::HashKv`: `message` is the revision (bincode i64).
pub fn answer_hash_request(store: &Store, message: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let revision: i64 = decode(message).map_err(|e| format!("undecodable hash request: {e}"))?;
    encode(&local_hash(store, revision)).map_err(|e| e.to_string())
}

/// Compares this replica's hash with one peer's answer at the same revision.
pub fn compare(local: &PeerHash, member_id: NodeId, answer: &Result<PeerHash>) -> Comparison {
    match answer {
        Ok(peer) if peer.hash == local.hash => Comparison::Agrees,
        Ok(peer) if peer.compact_revision == local.compact_revision => Comparison::Mismatch { peer: *peer },
        Ok(peer) => Comparison::CompactedElsewhere { peer: *peer },
        Err(e) => Comparison::NoEvidence {
            member_id,
            reason: e.to_string(),
        },
    }
}

/// Asks every other member for its hash at `local.revision` and compares, trying a
/// peer that cannot be reached again until `wait` has passed.
pub async fn compare_with_peers(store: &Store, local: &PeerHash, wait: Duration) -> Vec<Comparison> {
    let deadline = tokio::time::Instant::now() + wait;
    let peers: Vec<NodeId> = store.member_ids().into_iter().filter(|id| *id != store.id()).collect();
    let asks = peers.into_iter().map(|peer| async move {
        let answer = ask(store, peer, local.revision, deadline).await;
        compare(local, peer, &answer)
    });
    futures::future::join_all(asks).await
}

/// Peer `peer`'s hash at `revision`, asked on a raft stream; a peer that cannot be
/// reached is asked again until `deadline`.
pub(crate) async fn ask(
    store: &Store,
    peer: NodeId,
    revision: i64,
    deadline: tokio::time::Instant,
) -> Result<PeerHash> {
    let message = encode(&revision).map_err(|e| StoreError::Internal(e.to_string()))?;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let url = store.peer_clients().url(peer)?;
        let streams = store.peer_clients().raft_streams();
        match streams
            .call(&url, Kind::HashKv, &message, left.max(Duration::from_millis(1)))
            .await
        {
            Ok(answer) => {
                return decode::<Result<PeerHash>>(&answer)
                    .map_err(|e| StoreError::Internal(format!("undecodable hash from {peer:x}: {e}")))?;
            }
            Err(CallError::Unreachable(e)) if tokio::time::Instant::now() + RETRY < deadline => {
                tracing::debug!(peer = format!("{peer:x}"), error = %e, "waiting for a peer's hash");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => return Err(StoreError::Internal(format!("asking {peer:x} ({url}): {e}"))),
        }
    }
}

const RETRY: Duration = Duration::from_millis(200);

/// `--experimental-initial-corrupt-check`: compares with the peers at this replica's
/// current revision, and refuses to go on, naming the members and the hashes, when
/// one disagrees.
pub async fn initial_check(store: &Store) -> Result<()> {
    let local = local_hash(store, 0)?;
    tracing::info!(
        member = format!("{:x}", local.member_id),
        revision = local.revision,
        "starting the initial corruption check"
    );
    // etcd waits a request timeout for its peers: 5 s and two election timeouts.
    let wait = Duration::from_secs(5) + store.config().election_timeout * 2;
    let comparisons = compare_with_peers(store, &local, wait).await;
    let verdict = verdict(&local, &comparisons);
    if verdict.is_ok() {
        tracing::info!(
            peers = comparisons.len(),
            "initial corruption check passed; no corruption"
        );
    }
    verdict
}

/// Refuses when any peer's comparison is a mismatch; logs what was no evidence.
pub fn verdict(local: &PeerHash, comparisons: &[Comparison]) -> Result<()> {
    let mut mismatches = Vec::new();
    for comparison in comparisons {
        match comparison {
            Comparison::Agrees => {}
            Comparison::Mismatch { peer } => mismatches.push(format!(
                "member {:x} has hash {} (this member {})",
                peer.member_id, peer.hash, local.hash
            )),
            Comparison::CompactedElsewhere { peer } => tracing::warn!(
                peer = format!("{:x}", peer.member_id),
                peer_compact_revision = peer.compact_revision,
                compact_revision = local.compact_revision,
                "found a different compact revision on a peer; its hash is no evidence"
            ),
            Comparison::NoEvidence { member_id, reason } => tracing::warn!(
                peer = format!("{member_id:x}"),
                reason = %reason,
                "cannot compare hashes with a peer"
            ),
        }
    }
    if mismatches.is_empty() {
        return Ok(());
    }
    Err(StoreError::Internal(format!(
        "{:x} found data inconsistency with peers at revision {} (compacted at {}): {}",
        local.member_id,
        local.revision,
        local.compact_revision,
        mismatches.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: PeerHash = PeerHash {
        member_id: 0xa,
        revision: 9,
        hash: 111,
        compact_revision: 3,
        current_revision: 12,
    };

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What a replica answers a hash request with, as its peers read it: the request
    /// is the revision, the answer a `Result` (0 ok, 1 error) of the fields in order.
    #[test]
    fn a_hash_keeps_its_encoding_between_replicas() {
        assert_eq!(hex(&encode(&9i64).unwrap()), "0000000000000009");
        let answer: Result<PeerHash> = Ok(LOCAL);
        assert_eq!(
            hex(&encode(&answer).unwrap()),
            concat!(
                "00000000",         // Ok
                "000000000000000a", // member
                "0000000000000009", // revision
                "0000006f",         // hash
                "0000000000000003", // compact revision
                "000000000000000c", // current revision
            )
        );
        let behind: Result<PeerHash> = Err(StoreError::FutureRevision { requested: 9 });
        assert_eq!(hex(&encode(&behind).unwrap()), "00000001000000080000000000000009");
        assert_eq!(decode::<Result<PeerHash>>(&encode(&answer).unwrap()).unwrap(), answer);
    }

    #[test]
    fn only_a_different_hash_at_the_same_compaction_is_a_mismatch() {
        let same = PeerHash {
            member_id: 0xb,
            ..LOCAL
        };
        assert_eq!(compare(&LOCAL, 0xb, &Ok(same)), Comparison::Agrees);
        let other = PeerHash { hash: 222, ..same };
        assert_eq!(compare(&LOCAL, 0xb, &Ok(other)), Comparison::Mismatch { peer: other });
        let compacted = PeerHash {
            compact_revision: 5,
            ..other
        };
        assert_eq!(
            compare(&LOCAL, 0xb, &Ok(compacted)),
            Comparison::CompactedElsewhere { peer: compacted }
        );
        let behind = Err(StoreError::FutureRevision { requested: 9 });
        assert!(matches!(
            compare(&LOCAL, 0xb, &behind),
            Comparison::NoEvidence { member_id: 0xb, .. }
        ));
    }

    #[test]
    fn the_verdict_names_the_member_and_both_hashes() {
        let other = PeerHash {
            member_id: 0xb,
            hash: 222,
            ..LOCAL
        };
        let no_answer = Comparison::NoEvidence {
            member_id: 0xc,
            reason: "unreachable".into(),
        };
        assert_eq!(verdict(&LOCAL, &[Comparison::Agrees, no_answer.clone()]), Ok(()));
        let error = verdict(&LOCAL, &[Comparison::Mismatch { peer: other }, no_answer])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a found data inconsistency with peers at revision 9")
                && error.contains("member b has hash 222 (this member 111)"),
            "{error}"
        );
    }
}
