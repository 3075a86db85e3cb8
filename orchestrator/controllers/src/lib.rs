//! The leader's controllers: each turns the cached state of the cluster into the
//! writes that move it toward what the user asked for. Each is a pure pass
//! (snapshot → actions) and a thin loop on [`berth_controller_runtime::drive`] that
//! makes the fenced writes; `berth-control-plane` runs them while this replica leads.

pub mod cluster_role_aggregation;
pub mod depends_on;
pub mod deployment;
pub mod disruption;
pub mod endpointslice;
pub mod gc;
pub mod hpa;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod replicaset;
pub mod resource_quota;
pub mod service_account;
pub mod statefulset;
pub mod storage_protection;
pub mod taint_eviction;
mod template_json;
pub mod volume_binder;

/// The least time between two passes of the loops that walk every pod to find what
/// time or rare events bring (node lifecycle, taint eviction, garbage collection):
/// Kubernetes' node lifecycle controller looks every `--node-monitor-period` (5 s).
pub(crate) const WALK_SPACING: std::time::Duration = std::time::Duration::from_secs(1);

/// `spec.replicas` of a ReplicaSet or Deployment as Kubernetes reads it: 1 when absent.
pub(crate) fn spec_replicas(replicas: Option<i32>) -> i32 {
    replicas.unwrap_or(1)
}
