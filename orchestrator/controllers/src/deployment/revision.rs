//! Revisions, as Kubernetes numbers a Deployment's rollouts: each ReplicaSet carries
//! `deployment.kubernetes.io/revision`, and the Deployment carries its newest
//! ReplicaSet's. A new template gets one more than the greatest revision of the old
//! ReplicaSets; an old ReplicaSet whose template comes back gets that next number too,
//! and remembers its earlier numbers in `deployment.kubernetes.io/revision-history`.
//! This is what `kubectl rollout history` lists and `kubectl rollout undo` picks from.
//!
//! The new ReplicaSet also receives the Deployment's annotations (so
//! `kubernetes.io/change-cause` names the cause of its revision), except the ones the
//! controller writes itself and kubectl's last applied configuration.

use berth_api::meta::MetaExt;
use berth_api::objects::{Deployment, ReplicaSet};

/// The revision of a ReplicaSet, and of a Deployment (its newest ReplicaSet's).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions of a ReplicaSet whose template came back, comma-separated.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The most pods the Deployment allowed then (`spec.replicas` + maxSurge; no surge
/// with Recreate).
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// When a rollout of the ReplicaSet's template completed (every pod updated and
/// available): a revision an auto-rollback may go back to. The controller's own,
/// never copied from the Deployment (where `kubectl rollout undo` may carry it).
pub const BECAME_AVAILABLE_ANNOTATION: &str = "berth.io/became-available";
/// The cause of a revision, as a user (or `kubectl --record`) wrote it.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// The Deployment's annotations a ReplicaSet does not receive: the controller's own,
/// kubectl's last applied configuration, and the rollback field of old API versions.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    BECAME_AVAILABLE_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

/// Kubernetes keeps the revision history annotation to this many characters.
const REVISION_HISTORY_MAX_CHARS: usize = 2000;

/// The revision of a ReplicaSet: 0 without the annotation, `None` when it is not a
/// number.
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match rs.metadata.annotations().get(REVISION_ANNOTATION) {
        None => Some(0),
        Some(text) => text.parse().ok(),
    }
}

/// The greatest revision among `replica_sets` (0 if none has one).
pub fn max_revision<'a>(replica_sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    replica_sets.into_iter().filter_map(revision).max().unwrap_or(0).max(0)
}

/// Gives the Deployment's new ReplicaSet its annotations: the Deployment's own
/// (but [`NOT_COPIED`]), `new_revision` unless it already has a greater one (an
/// old revision it had goes to the history), and, for a ReplicaSet about to be
/// created, the replicas annotations. Returns whether anything changed.
pub fn set_new_replica_set_annotations(
    deployment: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    is_being_created: bool,
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations_mut();
    for (key, value) in deployment.metadata.annotations() {
        if NOT_COPIED.contains(&key.as_str()) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    let old_text = annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision = match old_text.as_deref() {
        None | Some("") => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(revision) => revision,
            // Kubernetes leaves a ReplicaSet with a revision that is not a number alone.
            Err(_) => return changed,
        },
    };
    if old_revision < new_revision {
        annotations.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old_text) = old_text.filter(|t| !t.is_empty()) {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if let Some(history) = append_to_history(&history, &old_text) {
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), history);
            }
        }
    }
    if is_being_created {
        let replicas = crate::spec_replicas(deployment.spec.replicas);
        changed |= set_replicas_annotations(rs, replicas, replicas + super::strategy::max_surge(deployment));
    }
    changed
}

/// `history` with `revision` appended, dropping its oldest entries to stay within
/// the length limit; `None` if even that cannot make it fit.
fn append_to_history(history: &str, revision: &str) -> Option<String> {
    if history.is_empty() {
        return Some(revision.to_string());
    }
    let mut entries: Vec<&str> = history.split(',').collect();
    let mut length = history.len() + revision.len() + 1;
    let mut start = 0;
    while length > REVISION_HISTORY_MAX_CHARS && start < entries.len() {
        length -= entries[start].len() + 1;
        start += 1;
    }
    if length > REVISION_HISTORY_MAX_CHARS {
        return None;
    }
    entries.drain(..start);
    entries.push(revision);
    Some(entries.join(","))
}

/// Sets the desired and max replicas annotations; returns whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations_mut();
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS_ANNOTATION, desired), (MAX_REPLICAS_ANNOTATION, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// The Deployment's `spec.replicas` when the ReplicaSet was last scaled, if recorded.
pub fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    rs.metadata.annotations().get(DESIRED_REPLICAS_ANNOTATION)?.parse().ok()
}

/// The most pods the Deployment allowed when the ReplicaSet was last scaled, if recorded.
pub fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    rs.metadata.annotations().get(MAX_REPLICAS_ANNOTATION)?.parse().ok()
}

/// Sets the Deployment's revision annotation; returns whether it changed.
pub fn set_deployment_revision(deployment: &mut Deployment, revision: &str) -> bool {
    let annotations = deployment.metadata.annotations_mut();
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_revisions_within_its_limit() {
        assert_eq!(append_to_history("", "1").as_deref(), Some("1"));
        assert_eq!(append_to_history("1,3", "5").as_deref(), Some("1,3,5"));
        let long = vec!["9"; 1000].join(","); // 1999 characters
        let appended = append_to_history(&long, "12").unwrap();
        assert!(appended.len() <= REVISION_HISTORY_MAX_CHARS, "{}", appended.len());
        assert!(appended.ends_with(",9,12"), "{appended}");
        assert_eq!(append_to_history("1", &"7".repeat(2001)), None);
    }
}
