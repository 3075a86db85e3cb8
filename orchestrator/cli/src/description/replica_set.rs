//! `berth describe replicaset`, with its pods counted by phase.

use super::pod_template::pod_template;
use super::text::{Text, controlled_by, meta_lines};
use crate::table::{desired_replicas, selector_text, text as field};
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, ReplicaSet};

/// `pods`: those the ReplicaSet owns.
pub fn replica_set(rs: &ReplicaSet, pods: &[Pod]) -> String {
    let mut text = Text::default();
    text.line(0, format!("Name:\t{}", rs.metadata.name()));
    text.line(0, format!("Namespace:\t{}", rs.metadata.namespace()));
    text.line(0, format!("Selector:\t{}", selector_text(&rs.spec.selector)));
    meta_lines(&mut text, &rs.metadata);
    if let Some(owner) = controlled_by(&rs.metadata) {
        text.line(0, format!("Controlled By:\t{owner}"));
    }
    text.line(
        0,
        format!(
            "Replicas:\t{} current / {} desired",
            rs.status.replicas,
            desired_replicas(rs.spec.replicas)
        ),
    );
    let count = |phase: &str| pods.iter().filter(|p| field(&p.status.phase) == phase).count();
    text.line(
        0,
        format!(
            "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed",
            count("Running"),
            pods.iter()
                .filter(|p| matches!(field(&p.status.phase), "Pending" | ""))
                .count(),
            count("Succeeded"),
            count("Failed")
        ),
    );
    pod_template(&mut text, rs.spec.template.as_ref());
    text.finish()
}
