//! Leases: the replicated table (changed only by apply) and the leader's lessor,
//! which keeps expiry deadlines in memory and proposes revocations through the log.

mod lessor;
mod table;

pub use lessor::{Lessor, MAX_LEASE_TTL_SECONDS};
pub use table::{Lease, LeaseTable};
