//! The revision history a Deployment keeps: its old ReplicaSets, scaled to 0, up to
//! `spec.revisionHistoryLimit` (default 10), so that `kubectl rollout undo` has
//! templates to go back to. Beyond the limit the oldest revisions are deleted, but
//! only ReplicaSets that are done scaling down: no pods, `spec.replicas` 0, and
//! their last change observed by the ReplicaSet controller.

use berth_api::kinds::deployment::DEFAULT_REVISION_HISTORY_LIMIT;
use berth_api::meta::MetaExt;
use berth_api::objects::{Deployment, ReplicaSet};

use super::revision::revision;
use crate::spec_replicas;

/// `spec.revisionHistoryLimit`, or `None` for no limit (Kubernetes reads the largest
/// i32 so); absent reads as the default.
fn limit(deployment: &Deployment) -> Option<usize> {
    match deployment.spec.revision_history_limit {
        Some(i32::MAX) => None,
        Some(limit) => Some(usize::try_from(limit).unwrap_or(0)),
        None => Some(DEFAULT_REVISION_HISTORY_LIMIT as usize),
    }
}

/// The old ReplicaSets to delete so that at most the limit remain, oldest revision
/// first (a ReplicaSet still scaling down is skipped, and counts).
pub fn beyond_limit<'a>(deployment: &Deployment, old: &[&'a ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let Some(limit) = limit(deployment) else {
        return Vec::new();
    };
    let mut kept: Vec<&ReplicaSet> = old.iter().copied().filter(|rs| !rs.metadata.is_deleting()).collect();
    let Some(excess) = kept.len().checked_sub(limit).filter(|n| *n > 0) else {
        return Vec::new();
    };
    kept.sort_by_key(|rs| {
        (
            revision(rs).unwrap_or(0),
            rs.metadata.creation_timestamp.clone(),
            rs.metadata.name().to_string(),
        )
    });
    kept.into_iter()
        .take(excess)
        .filter(|rs| {
            rs.status.replicas == 0
                && spec_replicas(rs.spec.replicas) == 0
                && rs.metadata.generation() <= rs.status.observed_generation.unwrap_or_default()
        })
        .collect()
}
