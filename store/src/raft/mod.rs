//! openraft glue: the type configuration, the log storage, and the transport.
//! The peer gRPC service that receives these RPCs lives in `server::peer`.

mod durable;
mod forward;
mod frame_limits;
mod log_store;
mod network;
mod types;
pub mod wal;
pub mod wire;

pub use durable::Durable;
pub use forward::ForwardOutcome;
pub use frame_limits::FrameLimits;
pub use log_store::LogStore;
pub use network::{Network, PeerRpc, peer_channel, peer_rpc};
pub use types::*;
