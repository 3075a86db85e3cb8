//! `berth describe node`: its conditions, addresses and resources, and the pods bound
//! to it with their requests and limits as shares of what the node can allocate.

use std::time::SystemTime;

use std::collections::BTreeMap;

use super::text::{Text, meta_lines, time_text};
use crate::table::{node_roles, text as field};
use berth_api::conditions::{Condition, is_terminal};
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, Pod, Quantity};
use berth_api::quantity::{format_cpu_millis, format_memory_bytes, parse_cpu_millis, parse_memory_bytes};
use berth_api::time::age_of;

/// The cpu (millicores) and memory (bytes) of a map of quantities; absent or
/// unreadable is 0.
fn cpu_and_memory(values: Option<&BTreeMap<String, Quantity>>) -> (u64, u64) {
    let get = |name: &str| values.and_then(|v| v.get(name)).map(|q| q.0.as_str());
    (
        get("cpu").and_then(|q| parse_cpu_millis(q).ok()).unwrap_or(0),
        get("memory").and_then(|q| parse_memory_bytes(q).ok()).unwrap_or(0),
    )
}

/// A pod's summed requests or limits, as (cpu millicores, memory bytes).
fn pod_totals(pod: &Pod, limits: bool) -> (u64, u64) {
    pod.spec.containers.iter().fold((0, 0), |(cpu, memory), c| {
        let resources = c.resources.as_ref();
        let values = if limits {
            resources.and_then(|r| r.limits.as_ref())
        } else {
            resources.and_then(|r| r.requests.as_ref())
        };
        let (cpu_of, memory_of) = cpu_and_memory(values);
        (cpu + cpu_of, memory + memory_of)
    })
}

/// A whole percentage, rounded down as kubectl does; 0 of nothing is 0%.
fn percent(part: u64, whole: u64) -> u64 {
    (part * 100).checked_div(whole).unwrap_or(0)
}

/// `pods`: those bound to the node; the finished ones are left out here.
pub fn node(node: &Node, pods: &[Pod], now: SystemTime) -> String {
    let mut text = Text::default();
    let (meta, status) = (&node.metadata, &node.status);
    text.line(0, format!("Name:\t{}", meta.name()));
    text.line(0, format!("Roles:\t{}", node_roles(node)));
    meta_lines(&mut text, meta);
    text.line(
        0,
        format!("CreationTimestamp:\t{}", time_text(meta.creation_timestamp.as_ref())),
    );
    let taints = node.spec.taints.as_deref().unwrap_or_default();
    if taints.is_empty() {
        text.line(0, "Taints:\t<none>");
    }
    for (i, t) in taints.iter().enumerate() {
        let head = if i == 0 { "Taints:" } else { "" };
        let value = match field(&t.value) {
            "" => String::new(),
            value => format!("={value}"),
        };
        text.line(0, format!("{head}\t{}{value}:{}", t.key, t.effect));
    }
    text.line(
        0,
        format!("Unschedulable:\t{}", node.spec.unschedulable.unwrap_or_default()),
    );
    let conditions = status.conditions.as_deref().unwrap_or_default();
    if !conditions.is_empty() {
        text.line(0, "Conditions:");
        text.line(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage");
        text.line(1, "----\t------\t------------------\t------\t-------");
        for c in conditions {
            text.line(
                1,
                format!(
                    "{} \t{} \t{} \t{} \t{}",
                    c.type_(),
                    c.status(),
                    time_text(c.last_transition_time()),
                    c.reason(),
                    c.message()
                ),
            );
        }
    }
    text.line(0, "Addresses:");
    for address in status.addresses.iter().flatten() {
        text.line(1, format!("{}:\t{}", address.type_, address.address));
    }
    let non_empty = |resources: &Option<BTreeMap<String, Quantity>>| resources.clone().filter(|r| !r.is_empty());
    let (capacity, allocatable) = (non_empty(&status.capacity), non_empty(&status.allocatable));
    for (title, resources) in [("Capacity", &capacity), ("Allocatable", &allocatable)] {
        if let Some(resources) = resources {
            text.line(0, format!("{title}:"));
            for (name, quantity) in resources {
                text.line(1, format!("{name}:\t{}", quantity.0));
            }
        }
    }
    let (cpu_allocatable, memory_allocatable) = cpu_and_memory(allocatable.as_ref().or(capacity.as_ref()));
    let running: Vec<&Pod> = pods.iter().filter(|p| !is_terminal(p)).collect();
    text.line(0, format!("Non-terminated Pods:\t({} in total)", running.len()));
    text.line(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge",
    );
    text.line(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---",
    );
    let (mut total_requests, mut total_limits) = ((0, 0), (0, 0));
    for pod in &running {
        let (requests, limits) = (pod_totals(pod, false), pod_totals(pod, true));
        total_requests = (total_requests.0 + requests.0, total_requests.1 + requests.1);
        total_limits = (total_limits.0 + limits.0, total_limits.1 + limits.1);
        text.line(
            1,
            format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}",
                pod.metadata.namespace(),
                pod.metadata.name(),
                format_cpu_millis(requests.0),
                percent(requests.0, cpu_allocatable),
                format_cpu_millis(limits.0),
                percent(limits.0, cpu_allocatable),
                format_memory_bytes(requests.1),
                percent(requests.1, memory_allocatable),
                format_memory_bytes(limits.1),
                percent(limits.1, memory_allocatable),
                age_of(pod.metadata.creation_timestamp.as_ref(), now)
            ),
        );
    }
    text.line(0, "Allocated resources:");
    text.line(1, "(Total limits may be over 100 percent, i.e., overcommitted.)");
    text.line(1, "Resource\tRequests\tLimits");
    text.line(1, "--------\t--------\t------");
    text.line(
        1,
        format!(
            "cpu\t{} ({}%)\t{} ({}%)",
            format_cpu_millis(total_requests.0),
            percent(total_requests.0, cpu_allocatable),
            format_cpu_millis(total_limits.0),
            percent(total_limits.0, cpu_allocatable)
        ),
    );
    text.line(
        1,
        format!(
            "memory\t{} ({}%)\t{} ({}%)",
            format_memory_bytes(total_requests.1),
            percent(total_requests.1, memory_allocatable),
            format_memory_bytes(total_limits.1),
            percent(total_limits.1, memory_allocatable)
        ),
    );
    text.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::description::typed;
    use berth_api::objects::Object;
    use berth_api::time::parse_rfc3339;

    #[test]
    fn a_node_with_its_pods() {
        let node: Node = typed(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "creationTimestamp": "2026-11-22T02:18:30Z"},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi"}, "allocatable": {"cpu": "2", "memory": "4Gi"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady",
                                       "lastTransitionTime": "2026-11-22T02:18:30Z"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]}
        }));
        let now = parse_rfc3339("2026-11-22T02:28:30Z").unwrap();
        let Ok(pod) = Object::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2026-11-22T02:23:30Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a", "command": ["x"],
                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
        .downcast::<Pod>() else {
            unreachable!()
        };
        // The Allocatable lines, the pods' count and the pods table form one run of
        // lines with a first cell, so Go's tabwriter aligns them together.
        assert_eq!(
            super::node(&node, &[pod], now),
            "\
Name:               node-1
Roles:              <none>
Labels:             <none>
Annotations:        <none>
CreationTimestamp:  Sun, 22 Nov 2026 02:18:30 +0000
Taints:             <none>
Unschedulable:      false
Conditions:
  Type    Status  LastTransitionTime                Reason       Message
  ----    ------  ------------------                ------       -------
  Ready   True    Sun, 22 Nov 2026 02:18:30 +0000   AgentReady   
Addresses:
  InternalIP:  10.0.0.11
Capacity:
  cpu:     2
  memory:  4Gi
Allocatable:
  cpu:                2
  memory:             4Gi
Non-terminated Pods:  (1 in total)
  Namespace           Name     CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age
  ---------           ----     ------------  ----------  ---------------  -------------  ---
  default             web-1    500m (25%)    0 (0%)      1Gi (25%)        0 (0%)         5m
Allocated resources:
  (Total limits may be over 100 percent, i.e., overcommitted.)
  Resource  Requests    Limits
  --------  --------    ------
  cpu       500m (25%)  0 (0%)
  memory    1Gi (25%)   0 (0%)
"
        );
    }
}
