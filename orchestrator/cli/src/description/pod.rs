//! `berth describe pod`. Also the tolerations block, which a pod template prints too.

use std::fmt::Write;

use super::container::container;
use super::text::{Text, controlled_by, labels, meta_lines, time_text};
use crate::table::text as field;
use berth_api::conditions::Condition;
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, PodCondition, Toleration};

fn conditions(text: &mut Text, conditions: &[PodCondition]) {
    if conditions.is_empty() {
        return;
    }
    let explained = conditions
        .iter()
        .any(|c| !c.reason().is_empty() || !c.message().is_empty());
    if explained {
        text.line(0, "Conditions:");
        text.line(1, "Type\tStatus\tReason\tMessage");
        text.line(1, "----\t------\t------\t-------");
        for c in conditions {
            text.line(
                1,
                format!("{} \t{} \t{} \t{}", c.type_(), c.status(), c.reason(), c.message()),
            );
        }
    } else {
        text.line(0, "Conditions:");
        text.line(1, "Type\tStatus");
        for c in conditions {
            text.line(1, format!("{} \t{} ", c.type_(), c.status()));
        }
    }
}

pub fn pod(pod: &Pod) -> String {
    let mut text = Text::default();
    let (meta, spec, status) = (&pod.metadata, &pod.spec, &pod.status);
    text.line(0, format!("Name:\t{}", meta.name()));
    text.line(0, format!("Namespace:\t{}", meta.namespace()));
    match field(&spec.node_name) {
        "" => text.line(0, "Node:\t<none>"),
        node => text.line(0, format!("Node:\t{node}/{}", field(&status.host_ip))),
    }
    if let Some(start_time) = &status.start_time {
        text.line(0, format!("Start Time:\t{}", time_text(Some(start_time))));
    }
    meta_lines(&mut text, meta);
    match &meta.deletion_timestamp {
        Some(at) => text.line(0, format!("Status:\tTerminating (since {})", time_text(Some(at)))),
        None => text.line(
            0,
            format!(
                "Status:\t{}",
                match field(&status.phase) {
                    "" => "Pending",
                    phase => phase,
                }
            ),
        ),
    }
    if !field(&status.reason).is_empty() {
        text.line(0, format!("Reason:\t{}", field(&status.reason)));
    }
    if !field(&status.message).is_empty() {
        text.line(0, format!("Message:\t{}", field(&status.message)));
    }
    if let Some(owner) = controlled_by(meta) {
        text.line(0, format!("Controlled By:\t{owner}"));
    }
    text.line(0, "Containers:");
    for c in &spec.containers {
        let container_status = status.container_statuses.iter().flatten().find(|s| s.name == c.name);
        container(&mut text, c, container_status, false);
    }
    conditions(&mut text, status.conditions.as_deref().unwrap_or_default());
    let node_selector = spec.node_selector.clone().unwrap_or_default();
    labels(&mut text, "Node-Selectors", "", &node_selector, "=");
    tolerations(&mut text, "", spec.tolerations.as_deref().unwrap_or_default());
    text.finish()
}

pub(super) fn tolerations(text: &mut Text, indent: &str, tolerations: &[Toleration]) {
    if tolerations.is_empty() {
        text.line(0, format!("{indent}Tolerations:\t<none>"));
        return;
    }
    for (i, t) in tolerations.iter().enumerate() {
        let head = if i == 0 { "Tolerations:" } else { "" };
        let mut what = field(&t.key).to_string();
        if field(&t.operator) == "Exists" {
            what.push_str(" op=Exists");
        } else if !field(&t.value).is_empty() {
            let _ = write!(what, "={}", field(&t.value));
        }
        if !field(&t.effect).is_empty() {
            let _ = write!(what, ":{}", field(&t.effect));
        }
        if let Some(seconds) = t.toleration_seconds {
            let _ = write!(what, " for {seconds}s");
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
        pod.status.host_ip = Some("10.0.0.11".into());
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
