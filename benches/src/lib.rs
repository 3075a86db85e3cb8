//! berth's load generator and its comparison with etcd.
//!
//! `berth-bench` (src/bin/berth-bench.rs) speaks the etcd v3 API through the
//! `etcd-client` crate, so the same load runs against berth and against etcd. It is
//! modelled on etcd's own `benchmark` tool: a number of gRPC connections, a number of
//! concurrent clients spread over them, and a budget of requests.
//!
//! ```text
//!  options ──► workload (put, range, txn, watch, lease-keepalive)
//!                 │ builds one Operation per client
//!                 ▼
//!              driver: clients take tickets from a Budget (bounded in count and time),
//!                 │    time each request, count errors
//!                 ▼
//!              Report: throughput, latency percentiles, errors, workload counters
//!                      (a human table and one JSON line)
//! ```
//!
//! `compare` starts etcd and berth clusters with the same flags, runs the same workloads
//! against each and prints a markdown table of the two side by side.
//!
//! `api` starts one `berth server` and loads its Kubernetes-style REST API over HTTP:
//! twenty thousand pods created, listed in pages and watched, with the server's RSS.
//!
//! `pods` times pod starts with a cached image, berth (server, agent and a loopback
//! registry) against bare `runc run`, and reads the agent's RSS with many pods.
//!
//! `traffic` runs agents with runc containers on test hosts (network namespaces) and
//! measures the traffic layer: HTTP through a Service's cluster IP against straight to
//! the pods, how fast a readiness change reaches every node's proxy, and cluster DNS.
//!
//! `secrets` prices encryption at rest: the same Secret creates, updates and reads
//! against a berth server with and without an AES-GCM key, as ratios; `autoscale`
//! times the horizontal pod autoscaler from a load step to the new replicas Ready.
//! `api-security` prices TLS, authentication and RBAC on the API server: pod creates,
//! gets and paged lists over plain HTTP against HTTPS with client certificates and
//! RBAC, as ratios.

pub mod api;
pub mod autoscale;
pub mod berth_binary;
pub mod budget;
pub mod compare;
pub mod connection;
pub mod driver;
pub mod duration;
pub mod keys;
pub mod latency;
pub mod options;
pub mod paired;
pub mod pods;
pub mod progress;
pub mod report;
pub mod scale;
pub mod secrets;
pub mod security;
pub mod traffic;
pub mod workload;
