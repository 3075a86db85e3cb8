//! The service proxy every agent runs: kube-proxy's iptables mode. From the
//! Services and EndpointSlices in the store it programs the node's kernel so that a
//! connection to a Service's cluster IP (from a pod or from the host), to a NodePort
//! on any of the node's addresses or on 127.0.0.1, or to an external IP, is DNATed
//! to one of the Service's ready endpoints, chosen at random (or by the client's
//! address, with `sessionAffinity: ClientIP`). A Service with no endpoint to go to
//! rejects at once. Only berth's own chains are written, in one
//! `iptables-restore --noflush` per change, and they all go when the agent stops.
//!
//! ```text
//!  watch.rs    Services + EndpointSlices (reflectors) ─► on every change:
//!  model.rs    ─► service ports with their endpoints (pure)
//!  rules.rs    ─► one iptables-restore input (pure; chain names in chains.rs)
//!  proxier.rs  ─► iptables.rs: iptables-restore; host.rs: sysctls, service route
//!              ─► conntrack.rs: the UDP flows to endpoints that are gone (conntrack)
//! ```

pub mod chains;
pub mod conntrack;
pub mod host;
pub mod iptables;
pub mod model;
pub mod proxier;
pub mod rules;
pub mod watch;

#[cfg(test)]
mod tests;

pub use proxier::{DEFAULT_SERVICE_CIDR, Proxier, ProxySettings};
