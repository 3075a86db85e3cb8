//! The cells of a kind's table row, one per printer column, as kube-apiserver's
//! printers compute them: the same values for a server-side `Table` (what kubectl
//! prints) and for berth's own CLI. Each kind's file has its row function; this
//! file has what the rows share.

use std::time::SystemTime;

use serde_json::Value;

use super::{KindDescriptor, Object, PrinterColumn};
use crate::meta::{LabelSelector, MetaExt};
use crate::objects::{ContainerState, PodTemplateSpec};
use crate::time::age_of;

/// What a row function returns: one value per printer column, wide ones included,
/// in the order of [`KindDescriptor::printer_columns`].
pub type Cells = Vec<Value>;

/// `<none>` for an empty cell, as kubectl prints one.
pub fn or_none(s: &str) -> Value {
    if s.is_empty() { "<none>".into() } else { s.into() }
}

/// A string field as Kubernetes reads it: absent is empty.
pub fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or_default()
}

/// The replicas a ReplicaSet or Deployment asks for: absent is 1, Kubernetes' default.
pub fn desired_replicas(replicas: Option<i32>) -> i32 {
    replicas.unwrap_or(1)
}

/// A container's state as Kubernetes reads it: absent is none of the three.
pub fn state_of(state: &Option<ContainerState>) -> ContainerState {
    state.clone().unwrap_or_default()
}

/// The object's name cell.
pub fn name(object: &Object) -> Value {
    object.metadata().name().into()
}

/// The object's age cell (`5m`), as of `now`.
pub fn age(object: &Object, now: SystemTime) -> Value {
    age_of(object.metadata().creation_timestamp.as_ref(), now).into()
}

/// `app=web,tier in (a,b)`, or `<none>`.
pub fn selector(selector: &LabelSelector) -> Value {
    or_none(&crate::meta::selector_text(selector))
}

/// The wide CONTAINERS, IMAGES and SELECTOR cells of a kind with a pod template.
pub fn template(template: Option<&PodTemplateSpec>, labels: &LabelSelector) -> [Value; 3] {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|spec| spec.containers.as_slice())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| match text(&c.image) {
            "" => "<none>",
            image => image,
        })
        .collect();
    [names.join(",").into(), images.join(",").into(), selector(labels)]
}

/// The cells of a kind without a row function of its own, read from its printer
/// columns' JSONPaths (simple ones: `.status.phase`), as Kubernetes prints a custom
/// resource.
pub fn from_paths(kind: &KindDescriptor, object: &Object, now: SystemTime) -> Cells {
    let value = object.to_value();
    kind.printer_columns()
        .iter()
        .map(|column| match column {
            c if *c == PrinterColumn::NAME => name(object),
            c if *c == PrinterColumn::AGE => age(object, now),
            PrinterColumn { json_path: "", .. } => "<unknown>".into(),
            PrinterColumn { json_path, .. } => {
                let found = json_path.split('.').skip(1).try_fold(&value, |at, field| at.get(field));
                match found {
                    None | Some(Value::Null) => "<none>".into(),
                    Some(other) => other.clone(),
                }
            }
        })
        .collect()
}
