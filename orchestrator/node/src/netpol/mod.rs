//! NetworkPolicies, enforced by every agent for the pods it runs, in the node's
//! packet filter (iptables' filter table, berth's own chains only). A pod some
//! policy selects for ingress (egress) receives (sends) only what those policies
//! allow; replies of allowed connections pass; pods no policy selects are open.
//! Namespaces labelled `berth.io/isolation: namespace` isolate their pods from
//! other namespaces' pods (model.rs). The filter runs beside the service proxy,
//! under the same tag (the pod bridge's name), and goes when the agent stops.
//!
//! ```text
//!  watch.rs   Pods + Namespaces + NetworkPolicies (reflectors) ─► on every change:
//!  model.rs   ─► the filters of this node's pods (pure)
//!  rules.rs   ─► the filter table's chains (pure)
//!  filter.rs  ─► iptables-restore --noflush (the proxy's iptables.rs)
//! ```

pub mod filter;
pub mod model;
pub mod rules;
pub mod watch;

pub use filter::Filter;

#[cfg(test)]
mod tests;
