//! The one place where store errors become gRPC statuses, with etcd's codes and
//! messages (clients match on the message text), and back again for errors that
//! crossed a peer hop.

use tonic::{Code, Status};

use crate::error::StoreError;

pub const NOT_LEADER: &str = "etcdserver: not leader";

const MESSAGES: &[(&str, Code)] = &[
    ("etcdserver: key is not provided", Code::InvalidArgument),
    ("etcdserver: key not found", Code::InvalidArgument),
    ("etcdserver: value is provided", Code::InvalidArgument),
    ("etcdserver: lease is provided", Code::InvalidArgument),
    ("etcdserver: too many operations in txn request", Code::InvalidArgument),
    ("etcdserver: duplicate key given in txn request", Code::InvalidArgument),
    ("etcdserver: request is too large", Code::InvalidArgument),
    (
        "etcdserver: mvcc: required revision has been compacted",
        Code::OutOfRange,
    ),
    (
        "etcdserver: mvcc: required revision is a future revision",
        Code::OutOfRange,
    ),
    ("etcdserver: requested lease not found", Code::NotFound),
    ("etcdserver: lease already exists", Code::FailedPrecondition),
    ("etcdserver: too large lease TTL", Code::OutOfRange),
    ("etcdserver: mvcc: database space exceeded", Code::ResourceExhausted),
    ("etcdserver: no leader", Code::Unavailable),
    ("etcdserver: leader changed", Code::Unavailable),
    ("etcdserver: request timed out", Code::Unavailable),
    ("etcdserver: member not found", Code::NotFound),
    ("etcdserver: Peer URLs already exists", Code::FailedPrecondition),
    (
        "etcdserver: can only promote a learner member",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: can only promote a learner member which is in sync with leader",
        Code::FailedPrecondition,
    ),
    ("etcdserver: server stopped", Code::Unavailable),
];

fn etcd(index: usize) -> Status {
    let (message, code) = MESSAGES[index];
    Status::new(code, message)
}

pub fn to_status(e: StoreError) -> Status {
    match e {
        StoreError::EmptyKey => etcd(0),
        StoreError::KeyNotFound => etcd(1),
        StoreError::ValueProvided => etcd(2),
        StoreError::LeaseProvided => etcd(3),
        StoreError::TooManyOps { .. } => etcd(4),
        StoreError::DuplicateKey => etcd(5),
        StoreError::RequestTooLarge { .. } => etcd(6),
        StoreError::Compacted { .. } => etcd(7),
        StoreError::FutureRevision { .. } => etcd(8),
        StoreError::LeaseNotFound { .. } => etcd(9),
        StoreError::LeaseExists { .. } => etcd(10),
        StoreError::LeaseTtlTooLarge { .. } => etcd(11),
        StoreError::NoSpace => etcd(12),
        StoreError::NoLeader => etcd(13),
        StoreError::LeaderChanged => etcd(14),
        StoreError::Timeout => etcd(15),
        StoreError::MemberNotFound { .. } => etcd(16),
        StoreError::PeerUrlExists => etcd(17),
        StoreError::MemberNotLearner { .. } => etcd(18),
        StoreError::LearnerNotReady { .. } => etcd(19),
        StoreError::Stopped => etcd(20),
        StoreError::InvalidArgument(message) => Status::invalid_argument(message),
        StoreError::Unsupported(message) => Status::unimplemented(message),
        StoreError::Internal(message) => Status::internal(message),
        // `StoreError` is non-exhaustive for users of the crate, not for this match.
    }
}

/// Recovers the store error from a status a peer sent.
pub fn status_to_error(status: &Status) -> StoreError {
    let index = MESSAGES.iter().position(|(message, _)| *message == status.message());
    match index {
        Some(0) => StoreError::EmptyKey,
        Some(1) => StoreError::KeyNotFound,
        Some(7) => StoreError::Compacted {
            requested: 0,
            compacted: 0,
        },
        Some(8) => StoreError::FutureRevision { requested: 0 },
        Some(9) => StoreError::LeaseNotFound { id: 0 },
        Some(10) => StoreError::LeaseExists { id: 0 },
        Some(11) => StoreError::LeaseTtlTooLarge { ttl: 0 },
        Some(12) => StoreError::NoSpace,
        Some(13) => StoreError::NoLeader,
        Some(14) => StoreError::LeaderChanged,
        Some(15) => StoreError::Timeout,
        Some(16) => StoreError::MemberNotFound { id: 0 },
        Some(17) => StoreError::PeerUrlExists,
        Some(18) => StoreError::MemberNotLearner { id: 0 },
        Some(19) => StoreError::LearnerNotReady { id: 0 },
        Some(20) => StoreError::Stopped,
        _ => match status.code() {
            Code::InvalidArgument => StoreError::InvalidArgument(status.message().to_string()),
            Code::Unavailable => StoreError::LeaderChanged,
            Code::DeadlineExceeded => StoreError::Timeout,
            _ => StoreError::Internal(status.message().to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_a_peer_hop() {
        for e in [
            StoreError::NoLeader,
            StoreError::PeerUrlExists,
            StoreError::NoSpace,
            StoreError::KeyNotFound,
        ] {
            let name = format!("{e:?}");
            assert_eq!(format!("{:?}", status_to_error(&to_status(e))), name);
        }
    }

    #[test]
    fn messages_are_etcds() {
        let status = to_status(StoreError::Compacted {
            requested: 1,
            compacted: 5,
        });
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            status.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
    }
}
