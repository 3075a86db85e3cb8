//! Pods: containers that run together on one node.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells, or_none, state_of, text};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::conditions::is_true;
use crate::meta::MetaExt;
use crate::objects::{Pod, PodSpec, PodStatus, Spec};
use crate::time::age_of;
use crate::validation::{self, FieldError};

pub static POD: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ],
    categories: &["all"],
    subresources: Subresources {
        status: true,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Ready",
            "string",
            "",
            "The number of ready containers out of all the pod's containers.",
        ),
        PrinterColumn::new(
            "Status",
            "string",
            "",
            "A container's waiting or terminated reason, else the pod's reason, else its phase.",
        ),
        PrinterColumn::new(
            "Restarts",
            "integer",
            "",
            "How often the pod's containers were restarted, summed.",
        ),
        PrinterColumn::AGE,
        PrinterColumn::new("IP", "string", ".status.podIP", "The pod's IP address.").wide(),
        PrinterColumn::new("Node", "string", ".spec.nodeName", "The node the pod is bound to.").wide(),
        PrinterColumn::new(
            "Nominated Node",
            "string",
            ".status.nominatedNodeName",
            "The node the pod may run on once others are preempted.",
        )
        .wide(),
        PrinterColumn::new(
            "Readiness Gates",
            "string",
            "",
            "Readiness gates that are True, of all.",
        )
        .wide(),
    ],
    status_on_create: StatusOnCreate::Phase("Pending"),
    decode: Object::decode::<PodSpec>,
    defaults,
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::Pod>(),
};

impl Spec for PodSpec {
    type Status = PodStatus;
    const DESCRIPTOR: &'static KindDescriptor = &POD;
}

/// Kubernetes' defaults for the fields berth acts on: its probes'.
fn defaults(object: &mut Object) {
    if let Some(pod) = object.downcast_mut::<Pod>() {
        crate::probes::set_defaults(&mut pod.spec);
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(pod) = object.downcast_ref::<Pod>() {
        validation::pod_spec(&pod.spec, "spec", errors);
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(pod) = object.downcast_ref::<Pod>() else {
        return cells::from_paths(&POD, object, now);
    };
    let statuses = pod.status.container_statuses.as_deref().unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|c| {
            let state = state_of(&c.state);
            c.ready && state.running.is_some() && state.waiting.is_none() && state.terminated.is_none()
        })
        .count();
    let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
    // The latest restart, as kubectl shows it: `3 (5m ago)`.
    let last_restart = statuses
        .iter()
        .filter_map(|c| state_of(&c.last_state).terminated?.finished_at)
        .max();
    let restarts: Value = match last_restart {
        Some(at) if restarts > 0 => format!("{restarts} ({} ago)", age_of(Some(&at), now)).into(),
        _ => restarts.into(),
    };
    let gates = pod.spec.readiness_gates.as_deref().unwrap_or_default();
    let gates: Value = if gates.is_empty() {
        "<none>".into()
    } else {
        let conditions = pod.status.conditions.as_ref();
        let met = gates.iter().filter(|g| is_true(conditions, &g.condition_type)).count();
        format!("{met}/{}", gates.len()).into()
    };
    vec![
        cells::name(object),
        format!("{ready}/{}", pod.spec.containers.len()).into(),
        pod_status(pod).into(),
        restarts,
        cells::age(object, now),
        or_none(text(&pod.status.pod_ip)),
        or_none(text(&pod.spec.node_name)),
        or_none(text(&pod.status.nominated_node_name)),
        gates,
    ]
}

/// The STATUS column, by kubectl's rules: a container's waiting or terminated
/// reason (the first container's wins) over the pod's reason over its phase, and
/// `Terminating` once deletion has begun.
pub fn pod_status(pod: &Pod) -> String {
    let mut reason = match (text(&pod.status.reason), text(&pod.status.phase)) {
        ("", "") => "Pending".to_string(),
        ("", phase) => phase.to_string(),
        (reason, _) => reason.to_string(),
    };
    let mut has_running = false;
    for container in pod.status.container_statuses.iter().flatten().rev() {
        let state = state_of(&container.state);
        if let Some(waiting) = &state.waiting
            && !text(&waiting.reason).is_empty()
        {
            reason = text(&waiting.reason).to_string();
        } else if let Some(terminated) = &state.terminated {
            reason = match (text(&terminated.reason), terminated.signal) {
                ("", Some(signal)) if signal != 0 => format!("Signal:{signal}"),
                ("", _) => format!("ExitCode:{}", terminated.exit_code),
                (reason, _) => reason.to_string(),
            };
        } else if container.ready && state.running.is_some() {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        let is_ready = is_true(pod.status.conditions.as_ref(), "Ready");
        reason = if is_ready { "Running" } else { "NotReady" }.to_string();
    }
    if pod.metadata.is_deleting() {
        reason = if text(&pod.status.reason) == "NodeLost" {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_string();
    }
    reason
}
