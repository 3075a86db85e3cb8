//! etcd's authentication and authorization: users (with hashed passwords, or none for
//! certificate auth), roles, key-range permissions, the `root` user and role, and the
//! enabled flag with its revision.
//!
//! ```text
//!  Auth API (grpc/auth.rs) ─► store/auth.rs: hash the password, check the caller is root
//!      ─► Command::Auth through the log ─► state.rs: AuthState::apply (pure), stored
//!         with the data under `m/auth` (so in snapshots) ─► runtime.rs: tokens, enabled
//!  KV, Txn, Watch, Lease, Maintenance, Cluster (grpc/*.rs) ─► grpc/auth.rs: the caller
//!      (token metadata, else the client certificate's CN) ─► checks.rs against the
//!      applied AuthState (permissions.rs: is the range covered?) ─► refused before any
//!      proposal, so a refused write never reaches the log
//! ```
//!
//! While auth is disabled the only cost on a request is one atomic load
//! ([`AuthRuntime::is_enabled`]).

pub mod checks;
pub mod password;
pub mod permissions;
pub mod runtime;
pub mod state;

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;

pub use permissions::Access;
pub use runtime::AuthRuntime;
pub use state::{AuthState, StoredUser};

/// The user and role that may do anything, etcd's `root`.
pub const ROOT: &str = "root";

/// The auth errors clients see, each one of etcd's (see `grpc::status`). They cross
/// replicas inside [`StoreError`](crate::StoreError) in serde's form: add variants at
/// the end only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum AuthError {
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("user name already exists")]
    UserAlreadyExists,
    #[error("user name is empty")]
    UserEmpty,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name already exists")]
    RoleAlreadyExists,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role name is empty")]
    RoleEmpty,
    #[error("permission denied")]
    PermissionDenied,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    #[error("authentication is not enabled")]
    AuthNotEnabled,
    #[error("invalid auth token")]
    InvalidAuthToken,
    #[error("invalid auth management")]
    InvalidAuthMgmt,
    #[error("root user does not exist")]
    RootUserNotExist,
    #[error("root user does not have root role")]
    RootRoleNotExist,
    #[error("permission not given")]
    PermissionNotGiven,
}
