//! Pods: containers that run together on one node.

use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{Pod, PodSpec, PodStatus, Spec};
use crate::validation::{self, FieldError};

pub static POD: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    namespaced: true,
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
        PrinterColumn::new("IP", "string", ".status.hostIP", "The IP address of the pod's node.").wide(),
        PrinterColumn::new("Node", "string", ".spec.nodeName", "The node the pod is bound to.").wide(),
    ],
    status_on_create: StatusOnCreate::Phase("Pending"),
    decode: Object::decode::<PodSpec>,
    defaults: |_| {},
    validate,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::Pod>(),
};

impl Spec for PodSpec {
    type Status = PodStatus;
    const DESCRIPTOR: &'static KindDescriptor = &POD;
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(pod) = object.downcast_ref::<Pod>() {
        validation::pod_spec(&pod.spec, "spec", errors);
    }
}
