//! The pod network: a network namespace per pod, shared by its containers, with an
//! address from the node's pod CIDR (`node.spec.podCIDR`, assigned by the control
//! plane), set up by the standard CNI plugins (bridge with host-local IPAM, loopback,
//! portmap for `hostPort`) invoked as the CNI specification says, and routes to the
//! other nodes' pod CIDRs so pods reach each other by IP across agents.
//!
//! ```text
//!  setup(pod) ──► netns  state_dir/netns/<pod_uid>  (bind-mounted nsfs)
//!             ──► CNI ADD: loopback, bridge (berth0, host-local from podCIDR), portmap
//!             ◄── the pod's IP
//!  teardown(pod_uid) ──► CNI DEL (reverse order) ──► unmount and remove the netns,
//!                        and what the plugins leave behind
//! ```
//!
//! [`CniNetwork`] (cni_network.rs) is the implementation; `routes.rs` keeps the routes
//! to the other nodes' pod CIDRs and tells the network its own. hostNetwork pods
//! never reach this module: the agent skips them.

pub mod cni;
pub mod cni_network;
pub mod config;
pub mod netns;
pub mod no_masquerade;
pub mod routes;
mod stale_bridge;
#[cfg(test)]
pub(crate) mod tests;

pub use cni_network::{CniNetwork, CniSettings, DEFAULT_BRIDGE, DEFAULT_CNI_BIN_DIR, PodCidr, default_bin_dir};

#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::net::IpAddr;
use std::path::PathBuf;

/// A `containerPort` with a `hostPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp" (CNI's spelling).
    pub protocol: String,
    /// `hostIP`; empty for every address.
    pub host_ip: String,
}

/// The pod a network is set up for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNetworkSpec {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    pub ports: Vec<PortMapping>,
}

/// A pod's network, once set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkStatus {
    /// The namespace file to give runc (`linux.namespaces[type=network].path`).
    pub netns: PathBuf,
    pub ip: IpAddr,
}

#[derive(thiserror::Error, Debug)]
pub enum NetworkError {
    /// The node has no pod CIDR yet (the control plane assigns one per node).
    #[error("the node has no pod CIDR yet (node.spec.podCIDR)")]
    NoPodCidr,
    /// A CNI plugin failed; `message` is its error (its JSON `msg` and `details`).
    #[error("CNI plugin {plugin} {command} failed for pod {pod}: {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        pod: String,
        message: String,
    },
    #[error("pod network for {pod}: {what}: {source}")]
    Io {
        pod: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The agent's view of the pod network. Calls block (they run the CNI plugins): the
/// agent makes them off its async threads.
pub trait PodNetwork: Send + Sync + 'static {
    /// Creates the pod's network namespace and connects it; idempotent for a pod
    /// already set up (returns what it has).
    fn setup(&self, pod: &PodNetworkSpec) -> Result<PodNetworkStatus, NetworkError>;
    /// Removes everything `setup` made for the pod; Ok for a pod it does not know.
    fn teardown(&self, pod_uid: &str) -> Result<(), NetworkError>;
    /// The pods with a network on this node (found on disk after an agent restart),
    /// so the agent can tear down what no pod needs any more.
    fn list(&self) -> Vec<String>;
}
