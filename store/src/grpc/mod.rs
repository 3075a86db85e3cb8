//! gRPC: the etcd v3 services clients use, the peer service replicas use, and the
//! mapping of store errors to etcd's statuses.

pub mod auth;
pub mod authority;
pub mod cluster;
pub mod deadline;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod peer;
pub mod request_limits;
pub mod status;
pub mod txn_depth;
pub mod watch;

pub use status::{NOT_LEADER, status_to_error, to_status};
