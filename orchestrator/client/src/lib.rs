//! berth's clients. [`kv`] is the orchestrator's one way into the store (the etcd v3
//! API over gRPC: reads at a revision, conditional and fenced writes, watches,
//! leases); [`registry`] reads and writes typed objects through it; [`http_client`]
//! talks to berth's own API servers and agents; [`envelope`] encrypts Secrets at
//! rest, on every read and write of a [`kv::Kv`] given one.

pub mod admission;
mod admission_priority;
pub mod admission_reads;
pub mod agents;
pub mod api_source;
pub mod envelope;
pub mod events;
pub mod graceful;
pub mod http_client;
pub mod kv;
pub mod leadership;
pub mod reflector;
pub mod registry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
