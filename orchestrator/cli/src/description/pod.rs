//! `berth describe pod`. Also the tolerations block, which a pod template prints too.

use std::fmt::Write;

use super::container::container;
use super::text::{Text, controlled_by, labels, meta_lines, rfc1123z};
use berth_api::objects::{Condition, Pod};

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

pub(super) fn tolerations(text: &mut Text, indent: &str, tolerations: &[berth_api::objects::Toleration]) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::description::typed;

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
}
