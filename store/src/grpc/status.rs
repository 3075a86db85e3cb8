//! The one place where store errors become gRPC statuses, with etcd's codes and
//! messages (clients match on the message text), and back again for errors that
//! crossed a peer hop.

use tonic::{Code, Status};

use crate::auth::AuthError;
use crate::error::StoreError;

/// What a follower hears when it hands the leader's work to a replica that is not.
pub const NOT_LEADER: &str = "etcdserver: not leader";

const EMPTY_KEY: &str = "etcdserver: key is not provided";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const VALUE_PROVIDED: &str = "etcdserver: value is provided";
const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REVISION: &str = "etcdserver: mvcc: required revision is a future revision";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const LEASE_EXISTS: &str = "etcdserver: lease already exists";
const LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
const NO_LEADER: &str = "etcdserver: no leader";
const LEADER_CHANGED: &str = "etcdserver: leader changed";
const TIMEOUT: &str = "etcdserver: request timed out";
const MEMBER_NOT_FOUND: &str = "etcdserver: member not found";
const PEER_URL_EXISTS: &str = "etcdserver: Peer URLs already exists";
const MEMBER_NOT_LEARNER: &str = "etcdserver: can only promote a learner member";
const LEARNER_NOT_READY: &str = "etcdserver: can only promote a learner member which is in sync with leader";
const STOPPED: &str = "etcdserver: server stopped";
const CORRUPT: &str = "etcdserver: corrupt cluster";
const NOT_ENOUGH_STARTED_MEMBERS: &str = "etcdserver: re-configuration failed due to not enough started members";
const UNHEALTHY: &str = "etcdserver: unhealthy cluster";
const BAD_LEADER_TRANSFEREE: &str = "etcdserver: bad leader transferee";
const ROOT_USER_NOT_EXIST: &str = "etcdserver: root user does not exist";
const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";
const USER_ALREADY_EXISTS: &str = "etcdserver: user name already exists";
const USER_EMPTY: &str = "etcdserver: user name is empty";
const USER_NOT_FOUND: &str = "etcdserver: user name not found";
const ROLE_ALREADY_EXISTS: &str = "etcdserver: role name already exists";
const ROLE_NOT_FOUND: &str = "etcdserver: role name not found";
const ROLE_EMPTY: &str = "etcdserver: role name is empty";
const AUTH_FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
const PERMISSION_NOT_GIVEN: &str = "etcdserver: permission not given";
const PERMISSION_DENIED: &str = "etcdserver: permission denied";
const ROLE_NOT_GRANTED: &str = "etcdserver: role is not granted to the user";
const PERMISSION_NOT_GRANTED: &str = "etcdserver: permission is not granted to the role";
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
const INVALID_AUTH_TOKEN: &str = "etcdserver: invalid auth token";
const INVALID_AUTH_MGMT: &str = "etcdserver: invalid auth management";

pub fn to_status(e: StoreError) -> Status {
    let (code, message) = match e {
        StoreError::EmptyKey => (Code::InvalidArgument, EMPTY_KEY),
        StoreError::KeyNotFound => (Code::InvalidArgument, KEY_NOT_FOUND),
        StoreError::ValueProvided => (Code::InvalidArgument, VALUE_PROVIDED),
        StoreError::LeaseProvided => (Code::InvalidArgument, LEASE_PROVIDED),
        StoreError::TooManyOps { .. } => (Code::InvalidArgument, TOO_MANY_OPS),
        StoreError::DuplicateKey => (Code::InvalidArgument, DUPLICATE_KEY),
        StoreError::RequestTooLarge { .. } => (Code::InvalidArgument, REQUEST_TOO_LARGE),
        StoreError::Compacted { .. } => (Code::OutOfRange, COMPACTED),
        StoreError::FutureRevision { .. } => (Code::OutOfRange, FUTURE_REVISION),
        StoreError::LeaseNotFound { .. } => (Code::NotFound, LEASE_NOT_FOUND),
        StoreError::LeaseExists { .. } => (Code::FailedPrecondition, LEASE_EXISTS),
        StoreError::LeaseTtlTooLarge { .. } => (Code::OutOfRange, LEASE_TTL_TOO_LARGE),
        StoreError::NoSpace => (Code::ResourceExhausted, NO_SPACE),
        StoreError::NoLeader => (Code::Unavailable, NO_LEADER),
        StoreError::LeaderChanged => (Code::Unavailable, LEADER_CHANGED),
        StoreError::Timeout => (Code::Unavailable, TIMEOUT),
        StoreError::MemberNotFound { .. } => (Code::NotFound, MEMBER_NOT_FOUND),
        StoreError::PeerUrlExists => (Code::FailedPrecondition, PEER_URL_EXISTS),
        StoreError::MemberNotLearner { .. } => (Code::FailedPrecondition, MEMBER_NOT_LEARNER),
        StoreError::LearnerNotReady { .. } => (Code::FailedPrecondition, LEARNER_NOT_READY),
        StoreError::Stopped => (Code::Unavailable, STOPPED),
        StoreError::Corrupt => (Code::DataLoss, CORRUPT),
        StoreError::NotEnoughStartedMembers => (Code::FailedPrecondition, NOT_ENOUGH_STARTED_MEMBERS),
        // etcd's text alone, which clients match; the check logs the reason.
        StoreError::Unhealthy(_) => (Code::Unavailable, UNHEALTHY),
        StoreError::PeerRefused(message) => return Status::permission_denied(message),
        StoreError::NotLeader => (Code::FailedPrecondition, NOT_LEADER),
        StoreError::BadLeaderTransferee { .. } => (Code::FailedPrecondition, BAD_LEADER_TRANSFEREE),
        StoreError::InvalidArgument(message) => return Status::invalid_argument(message),
        StoreError::Unsupported(message) => {
            return Status::unimplemented(format!("berth does not support {message} yet"));
        }
        StoreError::Internal(message) => return Status::internal(message),
        StoreError::Auth(e) => auth_status(&e),
    };
    Status::new(code, message)
}

fn auth_status(e: &AuthError) -> (Code, &'static str) {
    match e {
        AuthError::AuthFailed => (Code::InvalidArgument, AUTH_FAILED),
        AuthError::UserAlreadyExists => (Code::FailedPrecondition, USER_ALREADY_EXISTS),
        AuthError::UserEmpty => (Code::InvalidArgument, USER_EMPTY),
        AuthError::UserNotFound => (Code::FailedPrecondition, USER_NOT_FOUND),
        AuthError::RoleAlreadyExists => (Code::FailedPrecondition, ROLE_ALREADY_EXISTS),
        AuthError::RoleNotFound => (Code::FailedPrecondition, ROLE_NOT_FOUND),
        AuthError::RoleEmpty => (Code::InvalidArgument, ROLE_EMPTY),
        AuthError::PermissionDenied => (Code::PermissionDenied, PERMISSION_DENIED),
        AuthError::RoleNotGranted => (Code::FailedPrecondition, ROLE_NOT_GRANTED),
        AuthError::PermissionNotGranted => (Code::FailedPrecondition, PERMISSION_NOT_GRANTED),
        AuthError::AuthNotEnabled => (Code::FailedPrecondition, AUTH_NOT_ENABLED),
        AuthError::InvalidAuthToken => (Code::Unauthenticated, INVALID_AUTH_TOKEN),
        AuthError::InvalidAuthMgmt => (Code::InvalidArgument, INVALID_AUTH_MGMT),
        AuthError::RootUserNotExist => (Code::FailedPrecondition, ROOT_USER_NOT_EXIST),
        AuthError::RootRoleNotExist => (Code::FailedPrecondition, ROOT_ROLE_NOT_EXIST),
        AuthError::PermissionNotGiven => (Code::InvalidArgument, PERMISSION_NOT_GIVEN),
    }
}

/// The auth errors by etcd's message, for errors that crossed a peer hop.
const AUTH_ERRORS: [AuthError; 16] = [
    AuthError::AuthFailed,
    AuthError::UserAlreadyExists,
    AuthError::UserEmpty,
    AuthError::UserNotFound,
    AuthError::RoleAlreadyExists,
    AuthError::RoleNotFound,
    AuthError::RoleEmpty,
    AuthError::PermissionDenied,
    AuthError::RoleNotGranted,
    AuthError::PermissionNotGranted,
    AuthError::AuthNotEnabled,
    AuthError::InvalidAuthToken,
    AuthError::InvalidAuthMgmt,
    AuthError::RootUserNotExist,
    AuthError::RootRoleNotExist,
    AuthError::PermissionNotGiven,
];

/// A KV request whose message is longer than the client port accepts, as grpc-go
/// (etcd's gRPC server) refuses it; tonic would answer OUT_OF_RANGE.
pub fn message_too_large(length: usize, max: usize) -> Status {
    Status::resource_exhausted(format!("grpc: received message larger than max ({length} vs. {max})"))
}

/// A transaction nested deeper than berth decodes (etcd has no such limit).
pub fn txn_too_deep(max: usize) -> Status {
    Status::invalid_argument(format!(
        "txn request is nested more than {max} levels deep; berth accepts at most {max}"
    ))
}

/// Recovers the store error from a status a peer sent.
pub fn status_to_error(status: &Status) -> StoreError {
    match status.message() {
        EMPTY_KEY => StoreError::EmptyKey,
        KEY_NOT_FOUND => StoreError::KeyNotFound,
        VALUE_PROVIDED => StoreError::ValueProvided,
        LEASE_PROVIDED => StoreError::LeaseProvided,
        DUPLICATE_KEY => StoreError::DuplicateKey,
        COMPACTED => StoreError::Compacted {
            requested: 0,
            compacted: 0,
        },
        FUTURE_REVISION => StoreError::FutureRevision { requested: 0 },
        LEASE_NOT_FOUND => StoreError::LeaseNotFound { id: 0 },
        LEASE_EXISTS => StoreError::LeaseExists { id: 0 },
        LEASE_TTL_TOO_LARGE => StoreError::LeaseTtlTooLarge { ttl: 0 },
        NO_SPACE => StoreError::NoSpace,
        NO_LEADER => StoreError::NoLeader,
        LEADER_CHANGED | NOT_LEADER => StoreError::LeaderChanged,
        TIMEOUT => StoreError::Timeout,
        MEMBER_NOT_FOUND => StoreError::MemberNotFound { id: 0 },
        PEER_URL_EXISTS => StoreError::PeerUrlExists,
        MEMBER_NOT_LEARNER => StoreError::MemberNotLearner { id: 0 },
        LEARNER_NOT_READY => StoreError::LearnerNotReady { id: 0 },
        STOPPED => StoreError::Stopped,
        CORRUPT => StoreError::Corrupt,
        NOT_ENOUGH_STARTED_MEMBERS => StoreError::NotEnoughStartedMembers,
        UNHEALTHY => StoreError::Unhealthy("the leader refused the change".into()),
        BAD_LEADER_TRANSFEREE => StoreError::BadLeaderTransferee { id: 0 },
        other if let Some(e) = AUTH_ERRORS.iter().find(|e| auth_status(e).1 == other) => StoreError::Auth(e.clone()),
        other => match status.code() {
            Code::InvalidArgument => StoreError::InvalidArgument(other.to_string()),
            Code::Unavailable => StoreError::LeaderChanged,
            Code::DeadlineExceeded => StoreError::Timeout,
            Code::PermissionDenied => StoreError::PeerRefused(other.to_string()),
            _ => StoreError::Internal(other.to_string()),
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
            StoreError::Corrupt,
            StoreError::NotEnoughStartedMembers,
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
        let status = to_status(StoreError::NoSpace);
        assert_eq!(
            (status.code(), status.message()),
            (Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded")
        );
        let status = to_status(StoreError::Corrupt);
        assert_eq!(
            (status.code(), status.message()),
            (Code::DataLoss, "etcdserver: corrupt cluster")
        );
        let status = to_status(StoreError::NoLeader);
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
    }
}
