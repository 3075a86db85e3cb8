//! The filters a node must pass, each with the reason it gives when it does not,
//! worded as Kubernetes words them so users recognise the explanation.

use std::borrow::Cow;

use berth_api::objects::{Taint, Toleration};

use super::{NodeInfo, PodRequest, node_affinity};

/// Why a node cannot take a pod, as the Pending message counts it; most reasons are
/// fixed text, the taint filter's names the taint.
pub type Reason = Cow<'static, str>;

pub trait Filter: Sync {
    /// `Err(reason)` when the node cannot take the pod.
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), Reason>;
}

struct Ready;
struct Schedulable;
struct Selector;
struct Taints;
struct HostPorts;
struct Resources;
struct RuntimeHandler;
struct VolumeBinding;

/// In order: the first filter that rejects a node gives its reason.
pub static FILTERS: [&dyn Filter; 8] = [
    &Ready,
    &Schedulable,
    &Selector,
    &Taints,
    &RuntimeHandler,
    &VolumeBinding,
    &HostPorts,
    &Resources,
];

/// A pod's bound volumes must be reachable from the node (a local volume is on one
/// node), and each claim still waiting for its first consumer must find a volume
/// there or be provisioned there (Kubernetes' VolumeBinding plugin). A claim the
/// scheduler already chose a node for keeps it.
impl Filter for VolumeBinding {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        use berth_api::persistent_volumes::{SELECTED_NODE, node_allows};
        let reachable = |volume| node_allows(volume, &node.name, &node.labels);
        if !pod.bound_volumes.iter().all(reachable) {
            return Err("node(s) had volume node affinity conflict".into());
        }
        for waiting in &pod.waiting_claims {
            if let Some(selected) = waiting
                .claim
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SELECTED_NODE))
                && *selected != node.name
            {
                return Err("node(s) had volume node affinity conflict".into());
            }
            if !waiting.is_provisioned && !waiting.candidates.iter().any(reachable) {
                return Err("node(s) didn't find available persistent volumes to bind".into());
            }
        }
        Ok(())
    }
}

impl Filter for Ready {
    fn check(&self, _: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        if node.is_ready {
            Ok(())
        } else {
            Err("node(s) were not ready".into())
        }
    }
}

impl Filter for Schedulable {
    fn check(&self, _: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        if node.is_unschedulable {
            Err("node(s) were unschedulable".into())
        } else {
            Ok(())
        }
    }
}

/// Kubernetes' NodeAffinity filter: `nodeSelector` and required node affinity.
impl Filter for Selector {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        if node_affinity::matches(pod, node) {
            Ok(())
        } else {
            Err(node_affinity::REASON.into())
        }
    }
}

/// Whether one of the tolerations tolerates the taint.
pub fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let (key, operator) = (t.key.as_deref().unwrap_or(""), t.operator.as_deref().unwrap_or(""));
        let (value, effect) = (t.value.as_deref().unwrap_or(""), t.effect.as_deref().unwrap_or(""));
        let key_matches = key.is_empty() && operator == "Exists" || key == taint.key;
        let value_matches = operator == "Exists" || value == taint.value.as_deref().unwrap_or("");
        let effect_matches = effect.is_empty() || effect == taint.effect;
        key_matches && value_matches && effect_matches
    })
}

/// Kubernetes' TaintToleration filter: the first NoSchedule or NoExecute taint the
/// pod does not tolerate keeps it off, and the reason names it as kube-scheduler
/// does (`{key: value}`), so nodes tainted differently are counted apart.
impl Filter for Taints {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        let mut blocking = node.taints.iter().filter(|t| t.effect != "PreferNoSchedule");
        match blocking.find(|taint| !tolerates(&pod.tolerations, taint)) {
            None => Ok(()),
            Some(taint) => Err(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            )
            .into()),
        }
    }
}

/// A pod of a RuntimeClass goes only where the agent runs the class's handler (the
/// kubelet would refuse it: "RuntimeHandler not supported").
impl Filter for RuntimeHandler {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        match &pod.runtime_handler {
            Some(handler) if !node.runtime_handlers.contains(handler) => {
                Err("node(s) didn't have the pod's runtime handler".into())
            }
            _ => Ok(()),
        }
    }
}

impl Filter for HostPorts {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        if pod.host_ports.is_disjoint(&node.used_host_ports) {
            Ok(())
        } else {
            Err("node(s) didn't have free ports for the requested pod ports".into())
        }
    }
}

impl Filter for Resources {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), Reason> {
        if node.used_cpu_millis + pod.cpu_millis > node.allocatable_cpu_millis {
            return Err("Insufficient cpu".into());
        }
        if node.used_memory_bytes + pod.memory_bytes > node.allocatable_memory_bytes {
            return Err("Insufficient memory".into());
        }
        Ok(())
    }
}
