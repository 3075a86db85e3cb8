//! The text of `berth describe`, laid out as kubectl's describers lay it out (the
//! same labels, levels of two spaces, and Go tabwriter alignment). Pure: the
//! command fetches the objects, these functions only write.
//!
//! berth has no Events; where kubectl would show the scheduler's event, a pod's
//! conditions table gains Reason and Message columns instead.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::table::{node_roles, selector_text};
use super::tabwriter::align;
use berth_api::meta::ObjectMeta;
use berth_api::objects::{
    Condition, Container, ContainerState, ContainerStatus, Deployment, Namespace, Node, Pod, PodTemplateSpec,
    ReplicaSet,
};
use berth_api::quantity::{format_cpu_millis, format_memory_bytes, parse_cpu_millis, parse_memory_bytes};
use berth_api::time::{age, format_rfc3339, parse_rfc3339};

/// Lines with kubectl's indentation levels; cells separated by `\t`.
#[derive(Default)]
struct Text(String);

impl Text {
    fn line(&mut self, level: usize, text: impl AsRef<str>) {
        for _ in 0..level {
            self.0.push_str("  ");
        }
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    fn finish(self) -> String {
        align(&self.0, 0, 2)
    }
}

/// `Sun, 22 Nov 2026 02:18:30 +0000` (Go's RFC1123Z), as kubectl prints times.
pub fn rfc1123z(timestamp: &str) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(time) = parse_rfc3339(timestamp) else {
        return if timestamp.is_empty() {
            "<unknown>".into()
        } else {
            timestamp.to_string()
        };
    };
    let days = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    let utc = format_rfc3339(time); // YYYY-MM-DDTHH:MM:SSZ
    let month: usize = utc[5..7].parse().unwrap_or(1);
    format!(
        "{}, {} {} {} {} +0000",
        DAYS[((days + 4) % 7) as usize], // 1970-01-01 was a Thursday
        &utc[8..10],
        MONTHS[month.saturating_sub(1) % 12],
        &utc[0..4],
        &utc[11..19]
    )
}

fn labels(text: &mut Text, title: &str, indent: &str, labels: &BTreeMap<String, String>, separator: &str) {
    if labels.is_empty() {
        text.line(0, format!("{indent}{title}:\t<none>"));
        return;
    }
    for (i, (key, value)) in labels.iter().enumerate() {
        let head = if i == 0 { format!("{title}:") } else { String::new() };
        text.line(0, format!("{indent}{head}\t{key}{separator}{value}"));
    }
}

fn meta_lines(text: &mut Text, meta: &ObjectMeta) {
    labels(text, "Labels", "", &meta.labels, "=");
    labels(text, "Annotations", "", &meta.annotations, ": ");
}

fn controlled_by(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
}

fn bool_text(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn ports(container: &Container) -> (String, String) {
    let join = |ports: Vec<String>| {
        if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(", ")
        }
    };
    let container_ports = container
        .ports
        .iter()
        .map(|p| format!("{}/TCP", p.container_port))
        .collect();
    let host_ports = container
        .ports
        .iter()
        .map(|p| format!("{}/TCP", p.host_port.unwrap_or(0)))
        .collect();
    (join(container_ports), join(host_ports))
}

/// One container, with its status when the pod has one. `in_template` indents
/// the name by one more space, as kubectl does under `Pod Template:`.
fn container(text: &mut Text, c: &Container, status: Option<&ContainerStatus>, in_template: bool) {
    text.line(1, format!("{}{}:", if in_template { " " } else { "" }, c.name));
    text.line(
        2,
        format!("Image:\t{}", if c.image.is_empty() { "<none>" } else { &c.image }),
    );
    let (ports, host_ports) = ports(c);
    let plural = if ports.contains(',') { "s" } else { "" };
    text.line(2, format!("Port{plural}:\t{ports}"));
    text.line(2, format!("Host Port{plural}:\t{host_ports}"));
    for (title, words) in [("Command", &c.command), ("Args", &c.args)] {
        if !words.is_empty() {
            text.line(2, format!("{title}:"));
            for word in words.iter().flat_map(|w| w.split('\n')) {
                text.line(3, word);
            }
        }
    }
    if let Some(status) = status {
        state(text, "State", &status.state);
        if status.last_state.terminated.is_some() {
            state(text, "Last State", &status.last_state);
        }
        text.line(2, format!("Ready:\t{}", bool_text(status.ready)));
        text.line(2, format!("Restart Count:\t{}", status.restart_count));
    }
    for (title, quantities) in [("Limits", &c.resources.limits), ("Requests", &c.resources.requests)] {
        if !quantities.is_empty() {
            text.line(2, format!("{title}:"));
            for (name, quantity) in quantities {
                text.line(3, format!("{name}:\t{quantity}"));
            }
        }
    }
    if c.env.is_empty() {
        text.line(2, "Environment:\t<none>");
    } else {
        text.line(2, "Environment:");
        for env in &c.env {
            text.line(3, format!("{}:\t{}", env.name, env.value));
        }
    }
    if !c.working_dir.is_empty() {
        text.line(2, format!("Working Dir:\t{}", c.working_dir));
    }
}

fn state(text: &mut Text, title: &str, state: &ContainerState) {
    if let Some(running) = &state.running {
        text.line(2, format!("{title}:\tRunning"));
        text.line(3, format!("Started:\t{}", rfc1123z(&running.started_at)));
    } else if let Some(terminated) = &state.terminated {
        text.line(2, format!("{title}:\tTerminated"));
        if !terminated.reason.is_empty() {
            text.line(3, format!("Reason:\t{}", terminated.reason));
        }
        text.line(3, format!("Exit Code:\t{}", terminated.exit_code));
        if let Some(signal) = terminated.signal.filter(|s| *s > 0) {
            text.line(3, format!("Signal:\t{signal}"));
        }
        text.line(3, format!("Started:\t{}", rfc1123z(&terminated.started_at)));
        text.line(3, format!("Finished:\t{}", rfc1123z(&terminated.finished_at)));
    } else {
        text.line(2, format!("{title}:\tWaiting"));
        if let Some(waiting) = &state.waiting {
            if !waiting.reason.is_empty() {
                text.line(3, format!("Reason:\t{}", waiting.reason));
            }
            if !waiting.message.is_empty() {
                text.line(3, format!("Message:\t{}", waiting.message));
            }
        }
    }
}

fn conditions(text: &mut Text, conditions: &[Condition]) {
    if conditions.is_empty() {
        return;
    }
    let explained = conditions.iter().any(|c| !c.reason.is_empty() || !c.message.is_empty());
    if explained {
        text.line(0, "Conditions:");
        text.line(1, "Type\tStatus\tReason\tMessage");
        text.line(1, "----\t------\t------\t-------");
        for c in conditions {
            text.line(1, format!("{} \t{} \t{} \t{}", c.type_, c.status, c.reason, c.message));
        }
    } else {
        text.line(0, "Conditions:");
        text.line(1, "Type\tStatus");
        for c in conditions {
            text.line(1, format!("{} \t{} ", c.type_, c.status));
        }
    }
}

pub fn pod(pod: &Pod) -> String {
    let mut text = Text::default();
    let (meta, spec, status) = (&pod.metadata, &pod.spec, &pod.status);
    text.line(0, format!("Name:\t{}", meta.name));
    text.line(0, format!("Namespace:\t{}", meta.namespace));
    match spec.node_name.as_str() {
        "" => text.line(0, "Node:\t<none>"),
        node => text.line(0, format!("Node:\t{node}/{}", status.host_ip)),
    }
    if !status.start_time.is_empty() {
        text.line(0, format!("Start Time:\t{}", rfc1123z(&status.start_time)));
    }
    meta_lines(&mut text, meta);
    match &meta.deletion_timestamp {
        Some(at) => text.line(0, format!("Status:\tTerminating (since {})", rfc1123z(at))),
        None => text.line(
            0,
            format!(
                "Status:\t{}",
                if status.phase.is_empty() {
                    "Pending"
                } else {
                    &status.phase
                }
            ),
        ),
    }
    if !status.reason.is_empty() {
        text.line(0, format!("Reason:\t{}", status.reason));
    }
    if !status.message.is_empty() {
        text.line(0, format!("Message:\t{}", status.message));
    }
    if let Some(owner) = controlled_by(meta) {
        text.line(0, format!("Controlled By:\t{owner}"));
    }
    text.line(0, "Containers:");
    for c in &spec.containers {
        let container_status = status.container_statuses.iter().find(|s| s.name == c.name);
        container(&mut text, c, container_status, false);
    }
    conditions(&mut text, &status.conditions);
    labels(&mut text, "Node-Selectors", "", &spec.node_selector, "=");
    tolerations(&mut text, "", &spec.tolerations);
    text.finish()
}

fn tolerations(text: &mut Text, indent: &str, tolerations: &[berth_api::objects::Toleration]) {
    if tolerations.is_empty() {
        text.line(0, format!("{indent}Tolerations:\t<none>"));
        return;
    }
    for (i, t) in tolerations.iter().enumerate() {
        let head = if i == 0 { "Tolerations:" } else { "" };
        let mut what = t.key.clone();
        if t.operator == "Exists" {
            what.push_str(" op=Exists");
        } else if !t.value.is_empty() {
            let _ = write!(what, "={}", t.value);
        }
        if !t.effect.is_empty() {
            let _ = write!(what, ":{}", t.effect);
        }
        text.line(0, format!("{indent}{head}\t{what}"));
    }
}

fn pod_template(text: &mut Text, template: &PodTemplateSpec) {
    text.line(0, "Pod Template:");
    labels(text, "Labels", "  ", &template.metadata.labels, "=");
    if !template.metadata.annotations.is_empty() {
        labels(text, "Annotations", "  ", &template.metadata.annotations, ": ");
    }
    text.line(1, "Containers:");
    for c in &template.spec.containers {
        container(text, c, None, true);
    }
    if !template.spec.node_selector.is_empty() {
        labels(text, "Node-Selectors", "  ", &template.spec.node_selector, "=");
    }
    if !template.spec.tolerations.is_empty() {
        tolerations(text, "  ", &template.spec.tolerations);
    }
}

/// Whether a ReplicaSet runs the deployment's current template (the controller
/// adds `pod-template-hash` to the labels, so that one label is not compared).
fn runs_template(rs: &ReplicaSet, d: &Deployment) -> bool {
    let mut labels = rs.spec.template.metadata.labels.clone();
    labels.remove("pod-template-hash");
    rs.spec.template.spec == d.spec.template.spec && labels == d.spec.template.metadata.labels
}

/// `replica_sets`: those the deployment owns.
pub fn deployment(d: &Deployment, replica_sets: &[ReplicaSet]) -> String {
    let mut text = Text::default();
    text.line(0, format!("Name:\t{}", d.metadata.name));
    text.line(0, format!("Namespace:\t{}", d.metadata.namespace));
    text.line(
        0,
        format!("CreationTimestamp:\t{}", rfc1123z(&d.metadata.creation_timestamp)),
    );
    meta_lines(&mut text, &d.metadata);
    text.line(0, format!("Selector:\t{}", selector_text(&d.spec.selector)));
    let s = &d.status;
    text.line(
        0,
        format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable",
            d.spec.replicas,
            s.updated_replicas,
            s.replicas,
            s.available_replicas,
            (d.spec.replicas - s.available_replicas).max(0)
        ),
    );
    pod_template(&mut text, &d.spec.template);
    let describe = |sets: Vec<&ReplicaSet>| {
        if sets.is_empty() {
            return "<none>".to_string();
        }
        let parts: Vec<String> = sets
            .iter()
            .map(|rs| {
                format!(
                    "{} ({}/{} replicas created)",
                    rs.metadata.name, rs.status.replicas, rs.spec.replicas
                )
            })
            .collect();
        parts.join(", ")
    };
    let (new, old): (Vec<&ReplicaSet>, Vec<&ReplicaSet>) = replica_sets.iter().partition(|rs| runs_template(rs, d));
    let old = old
        .into_iter()
        .filter(|rs| rs.spec.replicas > 0 || rs.status.replicas > 0)
        .collect();
    text.line(0, format!("OldReplicaSets:\t{}", describe(old)));
    text.line(0, format!("NewReplicaSet:\t{}", describe(new)));
    text.finish()
}

/// `pods`: those the ReplicaSet owns.
pub fn replica_set(rs: &ReplicaSet, pods: &[Pod]) -> String {
    let mut text = Text::default();
    text.line(0, format!("Name:\t{}", rs.metadata.name));
    text.line(0, format!("Namespace:\t{}", rs.metadata.namespace));
    text.line(0, format!("Selector:\t{}", selector_text(&rs.spec.selector)));
    meta_lines(&mut text, &rs.metadata);
    if let Some(owner) = controlled_by(&rs.metadata) {
        text.line(0, format!("Controlled By:\t{owner}"));
    }
    text.line(
        0,
        format!(
            "Replicas:\t{} current / {} desired",
            rs.status.replicas, rs.spec.replicas
        ),
    );
    let count = |phase: &str| pods.iter().filter(|p| p.status.phase == phase).count();
    text.line(
        0,
        format!(
            "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed",
            count("Running"),
            pods.iter()
                .filter(|p| matches!(p.status.phase.as_str(), "Pending" | ""))
                .count(),
            count("Succeeded"),
            count("Failed")
        ),
    );
    pod_template(&mut text, &rs.spec.template);
    text.finish()
}

/// A pod's summed requests or limits, as (cpu millicores, memory bytes).
fn pod_totals(pod: &Pod, limits: bool) -> (u64, u64) {
    pod.spec.containers.iter().fold((0, 0), |(cpu, memory), c| {
        let values = if limits {
            &c.resources.limits
        } else {
            &c.resources.requests
        };
        let cpu_of = values.get("cpu").and_then(|q| parse_cpu_millis(q).ok()).unwrap_or(0);
        let memory_of = values
            .get("memory")
            .and_then(|q| parse_memory_bytes(q).ok())
            .unwrap_or(0);
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
    text.line(0, format!("Name:\t{}", meta.name));
    text.line(0, format!("Roles:\t{}", node_roles(node)));
    meta_lines(&mut text, meta);
    text.line(0, format!("CreationTimestamp:\t{}", rfc1123z(&meta.creation_timestamp)));
    if node.spec.taints.is_empty() {
        text.line(0, "Taints:\t<none>");
    }
    for (i, t) in node.spec.taints.iter().enumerate() {
        let head = if i == 0 { "Taints:" } else { "" };
        let value = if t.value.is_empty() {
            String::new()
        } else {
            format!("={}", t.value)
        };
        text.line(0, format!("{head}\t{}{value}:{}", t.key, t.effect));
    }
    text.line(0, format!("Unschedulable:\t{}", node.spec.unschedulable));
    if !status.conditions.is_empty() {
        text.line(0, "Conditions:");
        text.line(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage");
        text.line(1, "----\t------\t------------------\t------\t-------");
        for c in &status.conditions {
            text.line(
                1,
                format!(
                    "{} \t{} \t{} \t{} \t{}",
                    c.type_,
                    c.status,
                    rfc1123z(&c.last_transition_time),
                    c.reason,
                    c.message
                ),
            );
        }
    }
    text.line(0, "Addresses:");
    for address in &status.addresses {
        text.line(1, format!("{}:\t{}", address.type_, address.address));
    }
    for (title, resources) in [("Capacity", &status.capacity), ("Allocatable", &status.allocatable)] {
        if !resources.is_empty() {
            text.line(0, format!("{title}:"));
            for (name, quantity) in resources {
                text.line(1, format!("{name}:\t{quantity}"));
            }
        }
    }
    let allocatable = if status.allocatable.is_empty() {
        &status.capacity
    } else {
        &status.allocatable
    };
    let cpu_allocatable = allocatable
        .get("cpu")
        .and_then(|q| parse_cpu_millis(q).ok())
        .unwrap_or(0);
    let memory_allocatable = allocatable
        .get("memory")
        .and_then(|q| parse_memory_bytes(q).ok())
        .unwrap_or(0);
    let running: Vec<&Pod> = pods
        .iter()
        .filter(|p| !matches!(p.status.phase.as_str(), "Succeeded" | "Failed"))
        .collect();
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
                pod.metadata.namespace,
                pod.metadata.name,
                format_cpu_millis(requests.0),
                percent(requests.0, cpu_allocatable),
                format_cpu_millis(limits.0),
                percent(limits.0, cpu_allocatable),
                format_memory_bytes(requests.1),
                percent(requests.1, memory_allocatable),
                format_memory_bytes(limits.1),
                percent(limits.1, memory_allocatable),
                age(&pod.metadata.creation_timestamp, now)
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

pub fn namespace(ns: &Namespace) -> String {
    let mut text = Text::default();
    text.line(0, format!("Name:\t{}", ns.metadata.name));
    meta_lines(&mut text, &ns.metadata);
    let phase = if ns.status.phase.is_empty() {
        "Active"
    } else {
        &ns.status.phase
    };
    text.line(0, format!("Status:\t{phase}"));
    text.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use berth_api::objects::Object;

    fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn times_as_kubectl_prints_them() {
        assert_eq!(rfc1123z("2026-11-22T02:18:30Z"), "Sun, 22 Nov 2026 02:18:30 +0000");
        assert_eq!(rfc1123z("1970-01-01T00:00:00Z"), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc1123z(""), "<unknown>");
    }

    #[test]
    fn a_crashing_pod() {
        let pod: Pod = typed(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                                              "uid": "u1", "controller": true}]},
            "spec": {"nodeName": "node-1", "containers": [{
                "name": "http", "command": ["python3", "-m", "http.server"], "args": ["8000"],
                "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}}]},
            "status": {"phase": "Running", "startTime": "2026-11-22T02:18:30Z",
                "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "http", "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": "2026-11-22T02:20:00Z", "finishedAt": "2026-11-22T02:20:01Z"}}}]}
        }));
        let mut pod = pod;
        pod.status.host_ip = "10.0.0.11".into();
        assert_eq!(
            super::pod(&pod),
            "\
Name:           web-1
Namespace:      default
Node:           node-1/10.0.0.11
Start Time:     Sun, 22 Nov 2026 02:18:30 +0000
Labels:         app=web
                tier=front
Annotations:    <none>
Status:         Running
Controlled By:  ReplicaSet/web-7d4b9c
Containers:
  http:
    Image:      <none>
    Port:       <none>
    Host Port:  <none>
    Command:
      python3
      -m
      http.server
    Args:
      8000
    State:          Waiting
      Reason:       CrashLoopBackOff
    Last State:     Terminated
      Reason:       Error
      Exit Code:    1
      Started:      Sun, 22 Nov 2026 02:20:00 +0000
      Finished:     Sun, 22 Nov 2026 02:20:01 +0000
    Ready:          False
    Restart Count:  3
    Limits:
      memory:  64Mi
    Requests:
      cpu:        100m
    Environment:  <none>
Conditions:
  Type           Status
  PodScheduled   True 
  Ready          False 
Node-Selectors:  <none>
Tolerations:     <none>
"
        );
    }

    fn deployment() -> Deployment {
        typed(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d1",
                         "creationTimestamp": "2026-11-22T02:18:30Z"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "http", "image": "nginx"}]}}},
            "status": {"replicas": 4, "updatedReplicas": 4, "readyReplicas": 4, "availableReplicas": 4}
        }))
    }

    #[test]
    fn a_deployment_with_its_replica_sets() {
        let d = deployment();
        let rs = |name: &str, image: &str, replicas: i32| -> ReplicaSet {
            typed(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "h"}},
                                      "spec": {"containers": [{"name": "http", "image": image}]}}},
                "status": {"replicas": replicas}
            }))
        };
        let text = super::deployment(&d, &[rs("web-old", "httpd", 0), rs("web-new", "nginx", 4)]);
        assert_eq!(
            text,
            "\
Name:               web
Namespace:          default
CreationTimestamp:  Sun, 22 Nov 2026 02:18:30 +0000
Labels:             <none>
Annotations:        <none>
Selector:           app=web
Replicas:           4 desired | 4 updated | 4 total | 4 available | 0 unavailable
Pod Template:
  Labels:  app=web
  Containers:
   http:
    Image:        nginx
    Port:         <none>
    Host Port:    <none>
    Environment:  <none>
OldReplicaSets:   <none>
NewReplicaSet:    web-new (4/4 replicas created)
"
        );
    }

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
        let Object::Pod(pod) = Object::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2026-11-22T02:23:30Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a", "command": ["x"],
                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap() else {
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
