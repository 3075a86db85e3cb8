//! berth's cluster DNS, served by every agent for the pods of its node: names for
//! Services and their endpoints under the cluster domain (`cluster.local`), from the
//! Services and EndpointSlices in the store, as CoreDNS's kubernetes plugin gives
//! them; every other name forwarded to the host's resolvers. Also what a pod is told
//! about the cluster's names: its resolv.conf's parts ([`resolv`]) and the Services'
//! environment variables ([`service_env`]).
//!
//! ```text
//!  store ─► catalog (two reflectors) ─► zone::answer (pure) ─┐
//!  pod ─ UDP/TCP :53 ─► server ─► wire ──────────────────────┴─► reply
//!                                   └─► not ours: the host's resolvers
//! ```

pub mod catalog;
pub mod resolv;
pub mod server;
pub mod service_env;
pub mod wire;
pub mod zone;

pub use catalog::Catalog;
pub use server::{Listeners, Resolver};
pub use zone::ZoneConfig;

/// The kubelet's `--cluster-domain` default.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
