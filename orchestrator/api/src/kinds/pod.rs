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
    validate_update,
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
        let bound = pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
        if bound && pod.spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()) {
            errors.push(FieldError {
                field: "spec.nodeName".into(),
                message: "Forbidden: cannot be set until all schedulingGates have been cleared".into(),
            });
        }
    }
}

fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    if let (Some(old), Some(new)) = (old.downcast_ref::<Pod>(), new.downcast_ref::<Pod>()) {
        validation::scheduling_gates_update(&old.spec, &new.spec, errors);
        validation::pod_spec_update(&old.spec, &new.spec, errors);
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(pod) = object.downcast_ref::<Pod>() else {
        return cells::from_paths(&POD, object, now);
    };
    let row = row_of(pod);
    // The latest restart, as kubectl shows it: `3 (5m ago)`.
    let restarts: Value = match row.last_restart {
        Some(at) if row.restarts > 0 => format!("{} ({} ago)", row.restarts, age_of(Some(&at), now)).into(),
        _ => row.restarts.into(),
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
        format!("{}/{}", row.ready, row.total).into(),
        row.status.into(),
        restarts,
        cells::age(object, now),
        or_none(text(&pod.status.pod_ip)),
        or_none(text(&pod.spec.node_name)),
        or_none(text(&pod.status.nominated_node_name)),
        gates,
    ]
}

/// A pod's READY, STATUS and RESTARTS cells, before formatting.
struct Row {
    ready: usize,
    /// The app containers and the sidecars (init containers with `restartPolicy: Always`).
    total: usize,
    status: String,
    restarts: i32,
    last_restart: Option<crate::meta::Time>,
}

/// Whether an init container is a sidecar: one that keeps running beside the app.
pub fn is_sidecar(container: &crate::objects::Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// The STATUS column, by kubectl's rules: while the pod initializes, the first init
/// container not through (`Init:1/2`, `Init:CrashLoopBackOff`, `Init:Error`); then a
/// container's waiting or terminated reason (the first container's wins) over the
/// pod's reason over its phase, and `Terminating` once deletion has begun.
pub fn pod_status(pod: &Pod) -> String {
    row_of(pod).status
}

/// The row as Kubernetes' printer computes it: restarts count the init containers'
/// while the pod initializes, the sidecars' and the app containers' after.
fn row_of(pod: &Pod) -> Row {
    let init_specs = pod.spec.init_containers.as_deref().unwrap_or_default();
    let sidecar = |name: &str| init_specs.iter().any(|c| c.name == name && is_sidecar(c));
    let mut row = Row {
        ready: 0,
        total: pod.spec.containers.len() + init_specs.iter().filter(|c| is_sidecar(c)).count(),
        status: match (text(&pod.status.reason), text(&pod.status.phase)) {
            ("", "") => "Pending".to_string(),
            ("", phase) => phase.to_string(),
            (reason, _) => reason.to_string(),
        },
        restarts: 0,
        last_restart: None,
    };
    let conditions = pod.status.conditions.iter().flatten();
    if conditions
        .filter(|c| c.type_ == "PodScheduled")
        .any(|c| c.reason.as_deref() == Some("SchedulingGated"))
    {
        row.status = "SchedulingGated".to_string();
    }
    let finished = |status: &crate::objects::ContainerStatus| state_of(&status.last_state).terminated?.finished_at;
    let (mut sidecar_restarts, mut sidecar_last_restart) = (0, None);
    let mut initializing = false;
    for (i, status) in pod.status.init_container_statuses.iter().flatten().enumerate() {
        row.restarts += status.restart_count;
        row.last_restart = row.last_restart.max(finished(status));
        if sidecar(&status.name) {
            sidecar_restarts += status.restart_count;
            sidecar_last_restart = sidecar_last_restart.max(finished(status));
        }
        let state = state_of(&status.state);
        let waiting = state.waiting.as_ref().map(|w| text(&w.reason)).unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar(&status.name) && status.started == Some(true) {
            row.ready += usize::from(status.ready);
            continue;
        }
        row.status = if let Some(terminated) = &state.terminated {
            match (text(&terminated.reason), terminated.signal) {
                ("", Some(signal)) if signal != 0 => format!("Init:Signal:{signal}"),
                ("", _) => format!("Init:ExitCode:{}", terminated.exit_code),
                (reason, _) => format!("Init:{reason}"),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }
    if !initializing || is_true(pod.status.conditions.as_ref(), "Initialized") {
        row.restarts = sidecar_restarts;
        row.last_restart = sidecar_last_restart;
        let mut has_running = false;
        for status in pod.status.container_statuses.iter().flatten().rev() {
            row.restarts += status.restart_count;
            row.last_restart = row.last_restart.max(finished(status));
            let state = state_of(&status.state);
            if let Some(waiting) = &state.waiting
                && !text(&waiting.reason).is_empty()
            {
                row.status = text(&waiting.reason).to_string();
            } else if let Some(terminated) = &state.terminated {
                row.status = match (text(&terminated.reason), terminated.signal) {
                    ("", Some(signal)) if signal != 0 => format!("Signal:{signal}"),
                    ("", _) => format!("ExitCode:{}", terminated.exit_code),
                    (reason, _) => reason.to_string(),
                };
            } else if status.ready && state.running.is_some() {
                has_running = true;
                row.ready += 1;
            }
        }
        if row.status == "Completed" && has_running {
            let is_ready = is_true(pod.status.conditions.as_ref(), "Ready");
            row.status = if is_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    if pod.metadata.is_deleting() {
        row.status = if text(&pod.status.reason) == "NodeLost" {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_string();
    }
    row
}
