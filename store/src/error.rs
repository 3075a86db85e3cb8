//! The store's error type. Every variant that a client can see maps to one etcd
//! gRPC status in `grpc::status`, and nowhere else.
//!
//! A replica also sends these errors to another one, whole: the leader answers a
//! follower's forwarded batch with each command's outcome (see `raft::forward`). They
//! travel in serde's form (bincode, `raft::encode`), where a variant is known by its
//! position: add new variants at the end, and never move or remove one. The golden
//! bytes below fail when that is broken. Nothing writes them to disk.

use crate::raft::NodeId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum StoreError {
    #[error("key is not provided")]
    EmptyKey,
    #[error("key not found")]
    KeyNotFound,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request ({ops} > {max})")]
    TooManyOps { ops: usize, max: usize },
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("request is too large ({bytes} > {max} bytes)")]
    RequestTooLarge { bytes: usize, max: usize },
    #[error("required revision {requested} has been compacted (compacted at {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    #[error("required revision {requested} is a future revision")]
    FutureRevision { requested: i64 },
    #[error("requested lease {id:x} not found")]
    LeaseNotFound { id: i64 },
    #[error("lease {id:x} already exists")]
    LeaseExists { id: i64 },
    #[error("lease TTL {ttl} is too large")]
    LeaseTtlTooLarge { ttl: i64 },
    #[error("database space exceeded")]
    NoSpace,
    #[error("no leader")]
    NoLeader,
    #[error("leader changed")]
    LeaderChanged,
    #[error("request timed out")]
    Timeout,
    #[error("member {id:x} not found")]
    MemberNotFound { id: NodeId },
    #[error("peer URLs already exist")]
    PeerUrlExists,
    #[error("member {id:x} is not a learner")]
    MemberNotLearner { id: NodeId },
    #[error("learner {id:x} is not in sync with the leader")]
    LearnerNotReady { id: NodeId },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("the store is stopping")]
    Stopped,
    #[error("internal error: {0}")]
    Internal(String),
    /// The CORRUPT alarm is raised: a member's data differs from the others'.
    #[error("corrupt cluster")]
    Corrupt,
    /// A request on the peer port that this replica does not serve: from another
    /// cluster, from a member not in the membership, or over a size limit.
    #[error("peer request refused: {0}")]
    PeerRefused(String),
    /// `--strict-reconfig-check`: the change would leave fewer started voting members
    /// than a quorum.
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// `--strict-reconfig-check`: the leader has not heard from enough voting members
    /// lately for the change to keep a quorum that is up.
    #[error("unhealthy cluster: {0}")]
    Unhealthy(String),
    /// Asked of a replica that is not the leader where only the leader can act
    /// (MoveLeader).
    #[error("not leader")]
    NotLeader,
    #[error("member {id:x} cannot take leadership (not a voting member)")]
    BadLeaderTransferee { id: NodeId },
    /// Users, roles, tokens and permissions (see `auth`).
    #[error("{0}")]
    Auth(crate::auth::AuthError),
}

impl From<crate::auth::AuthError> for StoreError {
    fn from(e: crate::auth::AuthError) -> Self {
        StoreError::Auth(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<crate::mvcc::MvccError> for StoreError {
    fn from(e: crate::mvcc::MvccError) -> Self {
        use crate::mvcc::MvccError;
        match e {
            MvccError::Compacted { requested, compacted } => StoreError::Compacted { requested, compacted },
            MvccError::FutureRevision { requested, .. } => StoreError::FutureRevision { requested },
            other => StoreError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{decode, encode};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Each variant's bytes as a follower receives them: the variant's position (u32),
    /// then its fields, big-endian and fixed width; a string is its length (u64) and
    /// its bytes.
    #[test]
    fn every_variant_keeps_its_encoding_between_replicas() {
        let cases = [
            (StoreError::EmptyKey, "00000000"),
            (StoreError::KeyNotFound, "00000001"),
            (StoreError::ValueProvided, "00000002"),
            (StoreError::LeaseProvided, "00000003"),
            (
                StoreError::TooManyOps { ops: 129, max: 128 },
                "0000000400000000000000810000000000000080",
            ),
            (StoreError::DuplicateKey, "00000005"),
            (
                StoreError::RequestTooLarge { bytes: 2, max: 1 },
                "0000000600000000000000020000000000000001",
            ),
            (
                StoreError::Compacted {
                    requested: 3,
                    compacted: 5,
                },
                "0000000700000000000000030000000000000005",
            ),
            (StoreError::FutureRevision { requested: 9 }, "000000080000000000000009"),
            (StoreError::LeaseNotFound { id: 0x7f }, "00000009000000000000007f"),
            (StoreError::LeaseExists { id: 0x7e }, "0000000a000000000000007e"),
            (StoreError::LeaseTtlTooLarge { ttl: 0x7d }, "0000000b000000000000007d"),
            (StoreError::NoSpace, "0000000c"),
            (StoreError::NoLeader, "0000000d"),
            (StoreError::LeaderChanged, "0000000e"),
            (StoreError::Timeout, "0000000f"),
            (StoreError::MemberNotFound { id: 0x10 }, "000000100000000000000010"),
            (StoreError::PeerUrlExists, "00000011"),
            (StoreError::MemberNotLearner { id: 0x12 }, "000000120000000000000012"),
            (StoreError::LearnerNotReady { id: 0x13 }, "000000130000000000000013"),
            (StoreError::InvalidArgument("a".into()), "00000014000000000000000161"),
            (StoreError::Unsupported("b".into()), "00000015000000000000000162"),
            (StoreError::Stopped, "00000016"),
            (StoreError::Internal("c".into()), "00000017000000000000000163"),
            (StoreError::Corrupt, "00000018"),
            (StoreError::PeerRefused("d".into()), "00000019000000000000000164"),
            (StoreError::NotEnoughStartedMembers, "0000001a"),
            (StoreError::Unhealthy("e".into()), "0000001b000000000000000165"),
            (StoreError::NotLeader, "0000001c"),
            (StoreError::BadLeaderTransferee { id: 0x19 }, "0000001d0000000000000019"),
            (
                StoreError::Auth(crate::auth::AuthError::PermissionDenied),
                "0000001e00000007",
            ),
            (
                StoreError::Auth(crate::auth::AuthError::PermissionNotGiven),
                "0000001e0000000f",
            ),
        ];
        for (error, golden) in cases {
            // Exhaustive: a new variant does not compile until it is named here and given
            // a case above.
            match &error {
                StoreError::EmptyKey
                | StoreError::KeyNotFound
                | StoreError::ValueProvided
                | StoreError::LeaseProvided
                | StoreError::TooManyOps { .. }
                | StoreError::DuplicateKey
                | StoreError::RequestTooLarge { .. }
                | StoreError::Compacted { .. }
                | StoreError::FutureRevision { .. }
                | StoreError::LeaseNotFound { .. }
                | StoreError::LeaseExists { .. }
                | StoreError::LeaseTtlTooLarge { .. }
                | StoreError::NoSpace
                | StoreError::NoLeader
                | StoreError::LeaderChanged
                | StoreError::Timeout
                | StoreError::MemberNotFound { .. }
                | StoreError::PeerUrlExists
                | StoreError::MemberNotLearner { .. }
                | StoreError::LearnerNotReady { .. }
                | StoreError::InvalidArgument(_)
                | StoreError::Unsupported(_)
                | StoreError::Stopped
                | StoreError::Internal(_)
                | StoreError::Corrupt
                | StoreError::PeerRefused(_)
                | StoreError::NotEnoughStartedMembers
                | StoreError::Unhealthy(_)
                | StoreError::NotLeader
                | StoreError::BadLeaderTransferee { .. }
                | StoreError::Auth(_) => {}
            }
            let bytes = encode(&error).unwrap();
            assert_eq!(hex(&bytes), golden, "{error:?}");
            assert_eq!(decode::<StoreError>(&bytes).unwrap(), error);
        }
    }

    #[test]
    fn an_error_a_later_version_added_is_not_read_as_another() {
        assert!(decode::<StoreError>(&[0, 0, 0, 0x1e]).is_err());
    }
}
