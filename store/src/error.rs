//! The store's error type. Every variant that a client can see maps to one etcd
//! gRPC status in `grpc::status`, and nowhere else.

use crate::raft::NodeId;

#[derive(Debug, Clone, thiserror::Error)]
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
