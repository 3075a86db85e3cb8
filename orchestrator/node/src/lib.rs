//! A worker node: the agent (registers its Node, heartbeats on a store lease, runs
//! the pods bound to it and reports their status) and the runtimes it runs
//! containers with.

pub mod agent;
pub mod runtime;
