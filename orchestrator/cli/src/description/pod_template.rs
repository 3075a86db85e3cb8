//! The `Pod Template:` block of the kinds that own pods (Deployment, ReplicaSet):
//! kubectl indents it one level and, unlike a pod's own lines, leaves out the node
//! selectors, tolerations and annotations when there are none.

use super::container::container;
use super::pod::tolerations;
use super::text::{Text, labels};
use berth_api::objects::PodTemplateSpec;

pub(super) fn pod_template(text: &mut Text, template: &PodTemplateSpec) {
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
