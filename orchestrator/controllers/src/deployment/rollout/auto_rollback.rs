//! `berth.io/auto-rollback: "true"`, berth's answer to Nomad's `auto_revert`: when
//! the Deployment's new revision exceeds its progress deadline, its template goes
//! back to that of the newest revision that ever became available, with a Warning
//! Event (`AutoRollback`) saying why. The controller marks each ReplicaSet whose
//! rollout completed ([`BECAME_AVAILABLE_ANNOTATION`]); a rollback goes only from a
//! revision never marked to one marked, so it happens once per bad revision and
//! never flaps (a good revision that later stalls, say for want of capacity, is
//! left as it is).

use berth_api::meta::MetaExt;
use berth_api::time::format_rfc3339;

use super::Rollout;
use crate::deployment::TEMPLATE_HASH_LABEL;
use crate::deployment::revision::{BECAME_AVAILABLE_ANNOTATION, CHANGE_CAUSE_ANNOTATION, revision};
use crate::deployment::status::{self, PROGRESS_DEADLINE_EXCEEDED, PROGRESSING};

/// On a Deployment: roll back by itself when a rollout exceeds its deadline.
pub const AUTO_ROLLBACK_ANNOTATION: &str = "berth.io/auto-rollback";
/// The reason of the Warning Event a rollback records.
pub const AUTO_ROLLBACK_REASON: &str = "AutoRollback";

impl Rollout<'_> {
    /// Marks the new ReplicaSet once the rollout is complete.
    pub(super) fn mark_available(&mut self) {
        if !status::is_complete(self.read, &self.deployment.status) {
            return;
        }
        let now = format_rfc3339(self.now);
        if let Some(rs) = self.new.as_mut()
            && !rs.metadata.annotations().contains_key(BECAME_AVAILABLE_ANNOTATION)
        {
            rs.metadata
                .annotations_mut()
                .insert(BECAME_AVAILABLE_ANNOTATION.to_string(), now);
        }
    }

    /// Puts the template of the newest revision that became available back, when
    /// asked for and the current one (never available) exceeded its deadline.
    pub(super) fn auto_rollback(&mut self) {
        if self
            .read
            .metadata
            .annotations()
            .get(AUTO_ROLLBACK_ANNOTATION)
            .map(String::as_str)
            != Some("true")
        {
            return;
        }
        let timed_out = status::condition(&self.deployment.status, PROGRESSING)
            .is_some_and(|c| c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED));
        let Some(new) = self.new.as_ref() else {
            return;
        };
        if !timed_out || new.metadata.annotations().contains_key(BECAME_AVAILABLE_ANNOTATION) {
            return;
        }
        let target = self
            .old
            .iter()
            .filter(|rs| rs.metadata.annotations().contains_key(BECAME_AVAILABLE_ANNOTATION))
            .filter(|rs| rs.spec.template.is_some())
            .max_by_key(|rs| revision(rs).unwrap_or(0));
        let Some(target) = target else {
            tracing::info!(
                deployment = %self.read.key(),
                "progress deadline exceeded, but no earlier revision became available: no rollback"
            );
            return;
        };
        let mut template = target.spec.template.clone().expect("filtered");
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(TEMPLATE_HASH_LABEL);
        }
        let to = revision(target).unwrap_or(0);
        let from = revision(new).unwrap_or(0);
        self.rollback_message = Some(format!(
            "Rolled back deployment {:?} to revision {to}: replica set {:?} (revision {from}) exceeded its \
             progress deadline",
            self.read.metadata.name(),
            new.metadata.name(),
        ));
        // The revision's recorded cause comes back with it (kubectl rollout history).
        let cause = target.metadata.annotations().get(CHANGE_CAUSE_ANNOTATION).cloned();
        let annotations = self.deployment.metadata.annotations_mut();
        match cause {
            Some(cause) => annotations.insert(CHANGE_CAUSE_ANNOTATION.to_string(), cause),
            None => annotations.remove(CHANGE_CAUSE_ANNOTATION),
        };
        self.deployment.spec.template = template;
    }
}
