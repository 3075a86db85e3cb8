//! The filters a node must pass, each with the reason it gives when it does not,
//! worded as Kubernetes words them so users recognise the explanation.

use super::{NodeInfo, PodRequest};

pub trait Filter: Sync {
    /// `Err(reason)` when the node cannot take the pod.
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), &'static str>;
}

struct Ready;
struct Schedulable;
struct Selector;
struct Taints;
struct HostPorts;
struct Resources;

/// In order: the first filter that rejects a node gives its reason.
pub static FILTERS: [&dyn Filter; 6] = [&Ready, &Schedulable, &Selector, &Taints, &HostPorts, &Resources];

impl Filter for Ready {
    fn check(&self, _: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        if node.is_ready { Ok(()) } else { Err("not ready") }
    }
}

impl Filter for Schedulable {
    fn check(&self, _: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        if node.is_unschedulable {
            Err("unschedulable")
        } else {
            Ok(())
        }
    }
}

impl Filter for Selector {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        if pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
            Ok(())
        } else {
            Err("didn't match node selector")
        }
    }
}

impl Filter for Taints {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        let tolerated = |taint: &berth_api::objects::Taint| {
            pod.tolerations.iter().any(|t| {
                let key_matches = t.key.is_empty() && t.operator == "Exists" || t.key == taint.key;
                let value_matches = t.operator == "Exists" || t.value == taint.value;
                let effect_matches = t.effect.is_empty() || t.effect == taint.effect;
                key_matches && value_matches && effect_matches
            })
        };
        let blocking = node.taints.iter().filter(|t| t.effect != "PreferNoSchedule");
        if blocking.clone().all(tolerated) {
            Ok(())
        } else {
            Err("had untolerated taint")
        }
    }
}

impl Filter for HostPorts {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        if pod.host_ports.is_disjoint(&node.used_host_ports) {
            Ok(())
        } else {
            Err("host port conflict")
        }
    }
}

impl Filter for Resources {
    fn check(&self, pod: &PodRequest, node: &NodeInfo) -> Result<(), &'static str> {
        if node.used_cpu_millis + pod.cpu_millis > node.allocatable_cpu_millis {
            return Err("insufficient cpu");
        }
        if node.used_memory_bytes + pod.memory_bytes > node.allocatable_memory_bytes {
            return Err("insufficient memory");
        }
        Ok(())
    }
}
