//! The orchestrator's API objects (Kubernetes-shaped): metadata, the kinds and the
//! table that describes them (`kinds`), resource quantities, conditions, owner
//! references, generated names, pods' QoS classes, and validation that names the
//! field at fault.
//! Everything above builds on these; this crate depends on nothing of berth's and
//! does no I/O.

pub mod admission;
pub mod apply;
pub mod cidr;
pub mod conditions;
pub mod depends_on;
pub mod int_or_percent;
pub mod kinds;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod objects;
pub mod owners;
pub mod patch;
pub mod persistent_volumes;
pub mod pod_deletion;
pub mod probes;
pub mod qos;
pub mod quantity;
pub mod rbac;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod tolerations;
pub mod validation;
