//! berth's store: a Raft-replicated MVCC key-value store that speaks the etcd v3 API.
//!
//! Use it embedded ([`Store::open`]) or as a server ([`Server::start`]); the layout
//! of the crate follows the data path described in `ARCHITECTURE.md` at the root of
//! the repository.

pub mod alarm;
pub mod auth;
pub mod backend;
mod background;
pub mod config;
pub mod corruption;
pub mod corruption_check;
pub mod disk;
pub mod disk_space;
mod election;
pub mod error;
pub mod flags;
pub mod grpc;
pub mod http;
pub mod lease;
pub mod mvcc;
pub mod peer_identity;
mod peers;
mod proposer;
pub mod raft;
mod read_index;
pub mod role;
pub mod server;
pub mod slow_disk;
pub mod snapshot_tool;
pub mod state_machine;
pub mod store;
pub mod tls;
pub mod validate;
pub mod watch;

pub use config::{AutoCompaction, ClusterState, StoreConfig, TestFaults, TlsInfo};
pub use error::StoreError;
pub use server::Server;
pub use store::Store;
