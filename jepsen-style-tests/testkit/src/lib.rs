//! One way to launch, wait for and tear down real processes on loopback, shared by the
//! fault-injection suite, the store's and the orchestrator's process tests and the
//! benches.
//!
//! ```text
//!  ClusterSpec (system, binary, size, token, args, env)
//!     │ Cluster::new: names n1…nN, two reserved ports each, data dir + log under one dir
//!     ▼
//!  Cluster ── start / kill (SIGKILL) / stop (SIGTERM) / pause (SIGSTOP) / resume / restart
//!     │        each replica is a Process: a child whose stdout and stderr go to its log
//!     ▼
//!  wait_for_leader ── every running replica answers Status and names one leader
//!     │                (feature `etcd`); fails on an exited replica, with log tails
//!     ▼
//!  drop ── SIGKILL what still runs; a temporary dir is kept when a test panics
//! ```
//!
//! Besides: [`berth_binary`] (the `berth` next to the running binary), [`free_port`]
//! (a port no other test or outgoing connection holds) and [`eventually`] /
//! [`eventually_blocking`] (poll until a condition holds; the timeout means "it
//! hangs", never a timing assertion), and [`skip`] (a test that lacks something of
//! the host skips, except under CI, where it fails).
//!
//! With the feature `images`: [`oci`] builds container images in a test (OCI layouts,
//! `docker save` archives, a busybox image) and [`registry`] runs a real image
//! registry on loopback to push them to.
//!
//! With the feature `hosts`: [`hosts`] makes several "hosts" on one machine, network
//! namespaces on a private bridge, for agents that must reach each other's pods.
//!
//! This crate depends on no berth crate, so every berth crate can use it in tests.

mod binary;
mod cluster;
mod eventually;
#[cfg(feature = "hosts")]
pub mod hosts;
#[cfg(feature = "etcd")]
mod leader;
#[cfg(feature = "images")]
pub mod oci;
mod ports;
mod process;
#[cfg(feature = "images")]
pub mod registry;
mod skip;
mod spec;
pub mod traffic;

pub use binary::berth_binary;
pub use cluster::{Cluster, Replica};
pub use eventually::{HANG_TIMEOUT, eventually, eventually_blocking};
#[cfg(feature = "etcd")]
pub use leader::{Status, connect, connect_with, status, status_with};
pub use ports::free_port;
pub use process::Process;
pub use skip::{is_ci, skip};
pub use spec::{ClusterSpec, ClusterTls, QUIET_RAFT_LOG, System};
