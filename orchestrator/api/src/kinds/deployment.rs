//! Deployments: roll a pod template out through ReplicaSets.

use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{Deployment, DeploymentSpec, DeploymentStatus, Spec};
use crate::validation::{self, FieldError};

pub static DEPLOYMENT: KindDescriptor = KindDescriptor {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    short_names: &["deploy"],
    namespaced: true,
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
        PrinterColumn::new("Images", "string", "", "The images of the containers of the pod template.").wide(),
        PrinterColumn::new("Selector", "string", "", "The label selector of the pods.").wide(),
    ],
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<DeploymentSpec>,
    validate,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>(),
};

impl Spec for DeploymentSpec {
    type Status = DeploymentStatus;
    const DESCRIPTOR: &'static KindDescriptor = &DEPLOYMENT;
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(object) = object.downcast_ref::<Deployment>() {
        validation::replicas(object.spec.replicas, errors);
        validation::template(&object.spec.selector, Some(&object.spec.template), errors);
        validation::deployment_strategy(&object.spec, errors);
    }
}
