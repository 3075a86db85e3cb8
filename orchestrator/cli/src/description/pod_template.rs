//! The `Pod Template:` block of the kinds that own pods (Deployment, ReplicaSet):
//! kubectl indents it one level and, unlike a pod's own lines, leaves out the node
//! selectors, tolerations and annotations when there are none.

use super::container::container;
use super::pod::tolerations;
use super::text::{Text, labels};
use berth_api::meta::MetaExt;
use berth_api::objects::PodTemplateSpec;

/// `template`: absent (or without metadata or spec) reads as empty.
pub(super) fn pod_template(text: &mut Text, template: Option<&PodTemplateSpec>) {
    let template = template.cloned().unwrap_or_default();
    let (metadata, spec) = (template.metadata.unwrap_or_default(), template.spec.unwrap_or_default());
    text.line(0, "Pod Template:");
    labels(text, "Labels", "  ", metadata.labels(), "=");
    if !metadata.annotations().is_empty() {
        labels(text, "Annotations", "  ", metadata.annotations(), ": ");
    }
    text.line(1, "Containers:");
    for c in &spec.containers {
        container(text, c, None, true);
    }
    let node_selector = spec.node_selector.unwrap_or_default();
    if !node_selector.is_empty() {
        labels(text, "Node-Selectors", "  ", &node_selector, "=");
    }
    let spec_tolerations = spec.tolerations.unwrap_or_default();
    if !spec_tolerations.is_empty() {
        tolerations(text, "  ", &spec_tolerations);
    }
}
