//! A worker node: the agent (registers its Node, heartbeats on a store lease, runs
//! the pods bound to it and reports their status), the runtimes it runs containers
//! with, the images they run from, the pod network, the service proxy and the network policy filter.

pub mod agent;
pub mod image;
pub mod namespaces;
pub mod netpol;
pub mod network;
pub mod proxy;
pub mod runtime;
