//! The largest message of each kind that a replica reads from a peer: what a
//! legitimate sender can produce, derived from `--max-request-bytes` and the batch
//! limits, so that a larger length prefix is refused before anything is allocated.
//!
//! ```text
//!  command         ≤ max_request_bytes + COMMAND_OVERHEAD          (validate::size)
//!  forwarded batch ≤ MAX_BATCH_BYTES + one command                 (proposer: a batch
//!                                                                   closes at the budget)
//!  log entry       ≤ MAX_BATCH_BYTES + one forwarded batch         (the leader's batch)
//!  AppendEntries   ≤ max_payload_entries × (entry + ENTRY_OVERHEAD), at most MAX_FRAME
//!  Vote, HashKv    a few dozen bytes                                → SMALL_MESSAGE
//!  gRPC peer call  the larger of a snapshot chunk and a forwarded batch
//! ```
//!
//! The bounds are the receiver's: members are meant to run with the same
//! `--max-request-bytes` (as etcd's do), and a follower with a larger one may forward
//! a batch that its leader refuses whole.
//!
//! AppendEntries' bound passes [`MAX_FRAME`] with the defaults (256 entries of up to
//! 9.5 MiB), so that is its bound: a sender has to be a member to be read at all (see
//! `peer_identity`), and a body is read as its bytes arrive, never allocated from the
//! length prefix alone.

use super::wire::Kind;
use crate::proposer::MAX_BATCH_BYTES;

/// The largest frame either side reads, whatever its kind.
pub const MAX_FRAME: usize = 1 << 30;
/// Votes and hash requests: fixed-size messages of a few dozen bytes.
const SMALL_MESSAGE: usize = 64 * 1024;
/// A command's protobuf framing around the client request it carries.
const COMMAND_OVERHEAD: usize = 64;
/// What an entry adds to its commands in an AppendEntries (log id, payload tag).
const ENTRY_OVERHEAD: usize = 256;
/// What an AppendEntries or a snapshot chunk adds to its entries or bytes.
const MESSAGE_OVERHEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    pub append_entries: usize,
    pub forward_batch: usize,
    pub small: usize,
}

impl FrameLimits {
    pub fn new(max_request_bytes: usize, max_payload_entries: u64) -> Self {
        let forward_batch = Self::forward_batch_bytes(max_request_bytes);
        let entry = MAX_BATCH_BYTES + forward_batch + ENTRY_OVERHEAD;
        let append_entries = usize::try_from(max_payload_entries)
            .unwrap_or(usize::MAX)
            .saturating_mul(entry)
            .saturating_add(MESSAGE_OVERHEAD)
            .min(MAX_FRAME);
        Self {
            append_entries,
            forward_batch,
            small: SMALL_MESSAGE,
        }
    }

    fn forward_batch_bytes(max_request_bytes: usize) -> usize {
        MAX_BATCH_BYTES + max_request_bytes + COMMAND_OVERHEAD
    }

    /// The largest message of `kind`.
    pub fn for_kind(&self, kind: Kind) -> usize {
        match kind {
            Kind::AppendEntries => self.append_entries,
            Kind::ForwardBatch => self.forward_batch,
            Kind::Vote | Kind::HashKv => self.small,
        }
    }

    /// The largest gRPC message the peer service decodes: a snapshot chunk (or a
    /// batch forwarded over gRPC, if that is larger) and its envelope.
    pub fn grpc_message(max_request_bytes: usize, snapshot_chunk_bytes: u64) -> usize {
        let chunk = usize::try_from(snapshot_chunk_bytes).unwrap_or(MAX_FRAME);
        chunk.max(Self::forward_batch_bytes(max_request_bytes)) + MESSAGE_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn limits_follow_the_request_size_and_the_batch_budget() {
        let limits = FrameLimits::new(1536 * 1024, 256);
        assert_eq!(limits.for_kind(Kind::Vote), SMALL_MESSAGE);
        assert_eq!(limits.for_kind(Kind::HashKv), SMALL_MESSAGE);
        assert_eq!(
            limits.for_kind(Kind::ForwardBatch),
            MAX_BATCH_BYTES + 1536 * 1024 + COMMAND_OVERHEAD
        );
        assert_eq!(limits.for_kind(Kind::AppendEntries), MAX_FRAME);
        // A larger --max-request-bytes lets larger forwarded batches through.
        let larger = FrameLimits::new(10 * MIB, 256);
        assert_eq!(larger.forward_batch - limits.forward_batch, 10 * MIB - 1536 * 1024);
        // Few entries per message: AppendEntries below the frame limit.
        let few = FrameLimits::new(MIB, 2);
        assert_eq!(
            few.append_entries,
            2 * (MAX_BATCH_BYTES + few.forward_batch + ENTRY_OVERHEAD) + MESSAGE_OVERHEAD
        );
    }

    #[test]
    fn the_grpc_limit_takes_a_snapshot_chunk() {
        let limit = FrameLimits::grpc_message(MIB, 64 * MIB as u64);
        assert_eq!(limit, 64 * MIB + MESSAGE_OVERHEAD);
        let limit = FrameLimits::grpc_message(MIB, 3 * MIB as u64);
        assert_eq!(limit, MAX_BATCH_BYTES + MIB + COMMAND_OVERHEAD + MESSAGE_OVERHEAD);
    }
}
