//! berth's fault-injection suite: a real multi-process cluster under client load while
//! faults are injected, a recorded history of every operation, and checkers that
//! say plainly whether the history is one the store's guarantees allow.
//!
//! ```text
//!  seed ──► schedule of faults ──► nemesis (kill, pause, partition, disk) ──► cluster
//!                                                                               ▲
//!  workloads (etcd clients) ──► history (invoke / ok / fail / info) ─────────────┘
//!        │
//!        ▼
//!  checkers (linearizability, revisions, watch, leases, list-append) and, on the
//!  healed cluster, the final-state checks (durability, convergence, lease expiry)
//!        │
//!        ▼
//!  report (summary, JSON, timeline) and the run folder on failure
//! ```

pub mod check;
pub mod cluster;
pub mod final_state;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod recorder;
pub mod report;
pub mod rng;
pub mod runner;
pub mod workload;
