//! Deployments: roll a pod template out through ReplicaSets.

use std::time::SystemTime;

use super::cells::{self, Cells, desired_replicas};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{Deployment, DeploymentSpec, DeploymentStatus, IntOrString, Spec};
use crate::validation::{self, FieldError};

pub static DEPLOYMENT: KindDescriptor = KindDescriptor {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    short_names: &["deploy"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &["all"],
    subresources: Subresources {
        status: true,
        scale: true,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Ready",
            "string",
            "",
            "The number of ready pods out of the number wanted.",
        ),
        PrinterColumn::new(
            "Up-to-date",
            "integer",
            ".status.updatedReplicas",
            "The number of pods of the current template.",
        ),
        PrinterColumn::new(
            "Available",
            "integer",
            ".status.availableReplicas",
            "The number of pods available to serve.",
        ),
        PrinterColumn::AGE,
        PrinterColumn::new(
            "Containers",
            "string",
            "",
            "The names of the containers of the pod template.",
        )
        .wide(),
        PrinterColumn::new(
            "Images",
            "string",
            "",
            "The images of the containers of the pod template.",
        )
        .wide(),
        PrinterColumn::new("Selector", "string", "", "The label selector of the pods.").wide(),
    ],
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<DeploymentSpec>,
    defaults,
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>(),
};

/// `spec.revisionHistoryLimit` when a client leaves it out: how many old ReplicaSets
/// a Deployment keeps (scaled to 0) for rollbacks.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// `spec.progressDeadlineSeconds` when a client leaves it out: how long a rollout may
/// go without progress before its `Progressing` condition says it timed out.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

impl Spec for DeploymentSpec {
    type Status = DeploymentStatus;
    const DESCRIPTOR: &'static KindDescriptor = &DEPLOYMENT;
}

/// Kubernetes' defaults for the fields berth acts on: among them the RollingUpdate
/// strategy, with a quarter of the replicas as surge and as unavailability.
fn defaults(object: &mut Object) {
    if let Some(object) = object.downcast_mut::<Deployment>() {
        let spec = &mut object.spec;
        spec.replicas.get_or_insert(1);
        if let Some(pod) = &mut spec.template.spec {
            crate::probes::set_defaults(pod);
        }
        spec.revision_history_limit
            .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
        spec.progress_deadline_seconds
            .get_or_insert(DEFAULT_PROGRESS_DEADLINE_SECONDS);
        let strategy = spec.strategy.get_or_insert_default();
        if strategy.type_.as_deref().is_none_or(str::is_empty) {
            strategy.type_ = Some(ROLLING_UPDATE.to_string());
        }
        if strategy.type_.as_deref() == Some(ROLLING_UPDATE) {
            let rolling = strategy.rolling_update.get_or_insert_default();
            let quarter = || IntOrString::String(DEFAULT_MAX_SURGE_AND_UNAVAILABLE.to_string());
            rolling.max_unavailable.get_or_insert_with(quarter);
            rolling.max_surge.get_or_insert_with(quarter);
        }
    }
}

/// The strategy that replaces every pod at once: the old ones go before any new one
/// starts.
pub const RECREATE: &str = "Recreate";
/// The strategy that replaces pods a few at a time, within `maxSurge` extra pods and
/// `maxUnavailable` missing ones (the default).
pub const ROLLING_UPDATE: &str = "RollingUpdate";
/// `maxSurge` and `maxUnavailable` of a rolling update when a client leaves them out.
pub const DEFAULT_MAX_SURGE_AND_UNAVAILABLE: &str = "25%";

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(object) = object.downcast_ref::<Deployment>() {
        validation::replicas(object.spec.replicas, errors);
        validation::template(&object.spec.selector, Some(&object.spec.template), errors);
        validation::deployment_strategy(&object.spec, errors);
        validation::deployment_progress(&object.spec, errors);
        crate::depends_on::validate(&object.metadata, errors);
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(d) = object.downcast_ref::<Deployment>() else {
        return cells::from_paths(&DEPLOYMENT, object, now);
    };
    let status = &d.status;
    let mut row = vec![
        cells::name(object),
        format!(
            "{}/{}",
            status.ready_replicas.unwrap_or_default(),
            desired_replicas(d.spec.replicas)
        )
        .into(),
        status.updated_replicas.unwrap_or_default().into(),
        status.available_replicas.unwrap_or_default().into(),
        cells::age(object, now),
    ];
    row.extend(cells::template(Some(&d.spec.template), &d.spec.selector));
    row
}
