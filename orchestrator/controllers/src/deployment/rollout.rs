//! One pass over one Deployment, as Kubernetes' deployment controller makes it: the
//! Deployment and its ReplicaSets are copied, changed step by step (the new
//! ReplicaSet's revision, scaling, Recreate, the history limit, the status), and the
//! copies that differ from what was read become the [`Plan`]'s writes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use berth_api::meta::{MetaExt, Time};
use berth_api::objects::{Deployment, ReplicaSet};
use berth_api::time::from_system_time;
use berth_controller_runtime::{Requeue, sooner};

use super::revision::{
    self, REVISION_ANNOTATION, max_revision, set_deployment_revision, set_new_replica_set_annotations,
};
use super::status::{self, PROGRESSING, condition, new_condition, progress_deadline, set_condition};
use super::{Action, Plan, TEMPLATE_HASH_LABEL, desired_replica_set, history, strategy, template_hash};

mod auto_rollback;
mod rolling;
mod scale;

use crate::spec_replicas;
pub use auto_rollback::{AUTO_ROLLBACK_ANNOTATION, AUTO_ROLLBACK_REASON};

/// One of the ReplicaSets of a [`Rollout`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Which {
    New,
    Old(usize),
}

/// A pass over one Deployment: the Deployment and its ReplicaSets as they will be
/// written, changed step by step as Kubernetes' controller changes them.
pub(in crate::deployment) struct Rollout<'a> {
    read: &'a Deployment,
    /// The ReplicaSets as read, by name.
    read_sets: BTreeMap<&'a str, &'a ReplicaSet>,
    /// The Deployment as it will be written (annotations and status change).
    deployment: Deployment,
    /// The ReplicaSet of the current template, if there is one (or will be).
    new: Option<ReplicaSet>,
    /// The other ReplicaSets, oldest first.
    old: Vec<ReplicaSet>,
    /// Old ReplicaSets to delete (beyond the history limit).
    deletes: Vec<ReplicaSet>,
    now: SystemTime,
    now_time: Time,
    requeue: Requeue,
    /// Why the template was rolled back, if this pass did (see `auto_rollback`).
    rollback_message: Option<String>,
    /// Pods still terminating, by the uid of their ReplicaSet.
    terminating: &'a BTreeMap<String, i32>,
}

impl<'a> Rollout<'a> {
    pub(super) fn new(
        deployment: &'a Deployment,
        owned: &[&'a ReplicaSet],
        terminating: &'a BTreeMap<String, i32>,
        now: SystemTime,
    ) -> Self {
        let hash = template_hash(&deployment.spec.template);
        let mut sets: Vec<&ReplicaSet> = owned.to_vec();
        sets.sort_by_key(|rs| (rs.metadata.creation_timestamp.clone(), rs.metadata.name().to_string()));
        // The oldest with the template's hash is the new one (there is one, by name).
        let new_index = sets
            .iter()
            .position(|rs| rs.metadata.labels().get(TEMPLATE_HASH_LABEL) == Some(&hash));
        let new = new_index.map(|i| sets.remove(i).clone());
        Rollout {
            read: deployment,
            read_sets: owned.iter().map(|rs| (rs.metadata.name(), *rs)).collect(),
            deployment: deployment.clone(),
            new,
            old: sets.into_iter().cloned().collect(),
            deletes: Vec::new(),
            now,
            now_time: from_system_time(now),
            requeue: None,
            rollback_message: None,
            terminating,
        }
    }

    pub(super) fn run(&mut self) {
        status::set_paused_condition(self.read, &mut self.deployment.status, &self.now_time);
        self.sync_new_replica_set();
        if self.read.spec.paused == Some(true) {
            // The template waits; scaling still applies.
            self.scale();
            self.delete_beyond_history_limit();
            self.sync_status();
        } else if self.is_scaling_event() {
            self.scale();
            self.sync_status();
        } else if strategy::is_rolling_update(self.read) {
            self.rolling();
        } else {
            self.recreate();
        }
        self.mark_available();
        self.auto_rollback();
    }

    fn replicas(&self) -> i32 {
        spec_replicas(self.read.spec.replicas).max(0)
    }

    fn get(&self, which: Which) -> Option<&ReplicaSet> {
        match which {
            Which::New => self.new.as_ref(),
            Which::Old(i) => self.old.get(i),
        }
    }

    fn all(&self) -> Vec<&ReplicaSet> {
        self.old.iter().chain(self.new.as_ref()).collect()
    }

    /// The revision a new template (or a template come back) gets.
    fn next_revision(&self) -> i64 {
        max_revision(&self.old) + 1
    }

    /// The existing new ReplicaSet gets the Deployment's annotations, the next
    /// revision if it has an older one, and its minReadySeconds; the Deployment
    /// gets its revision.
    fn sync_new_replica_set(&mut self) {
        let next_revision = self.next_revision();
        let Some(rs) = self.new.as_mut() else {
            return;
        };
        let had_revision = rs.metadata.annotations().get(REVISION_ANNOTATION).cloned();
        set_new_replica_set_annotations(self.read, rs, next_revision, false);
        // A template come back (a rollback) starts a rollout whose deadline counts from
        // now. Kubernetes keeps the condition it had, so a rollback past a deadline
        // whose pod counts happen not to move would read as timed out at once.
        let came_back = had_revision.as_ref().is_some_and(|r| !r.is_empty())
            && rs.metadata.annotations().get(REVISION_ANNOTATION) != had_revision.as_ref();
        if rs.spec.min_ready_seconds.unwrap_or_default() != self.read.spec.min_ready_seconds.unwrap_or_default() {
            rs.spec.min_ready_seconds = self.read.spec.min_ready_seconds;
        }
        let revision = rs
            .metadata
            .annotations()
            .get(REVISION_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let name = rs.metadata.name().to_string();
        set_deployment_revision(&mut self.deployment, &revision);
        let current = condition(&self.deployment.status, PROGRESSING).cloned();
        let resumed_rollout = came_back && self.read.spec.paused != Some(true);
        if progress_deadline(self.read).is_some() && (current.is_none() || resumed_rollout) {
            let message = format!("Found new replica set {name:?}");
            let mut found = new_condition(
                PROGRESSING,
                "True",
                status::FOUND_NEW_REPLICA_SET,
                message,
                &self.now_time,
            );
            // Replaced even when the reason is the same, for its lastUpdateTime.
            if let Some(current) = current.filter(|c| c.status == found.status) {
                found.last_transition_time = current.last_transition_time;
            }
            status::remove_condition(&mut self.deployment.status, PROGRESSING);
            set_condition(&mut self.deployment.status, found);
        }
    }

    fn create_new_replica_set(&mut self) {
        let next_revision = self.next_revision();
        let mut rs = desired_replica_set(self.read, &template_hash(&self.read.spec.template));
        set_new_replica_set_annotations(self.read, &mut rs, next_revision, true);
        if strategy::is_rolling_update(self.read) {
            // As many pods as the surge allows next to the old ones (Recreate
            // creates it only once they are gone, at full size).
            rs.spec.replicas = Some(0);
            self.new = Some(rs);
            let replicas = self.new_replica_set_replicas();
            rs = self.new.take().expect("just set");
            rs.spec.replicas = Some(replicas);
        }
        set_deployment_revision(&mut self.deployment, &next_revision.to_string());
        if progress_deadline(self.read).is_some() {
            let message = format!("Created new replica set {:?}", rs.metadata.name());
            let created = new_condition(
                PROGRESSING,
                "True",
                status::NEW_REPLICA_SET_CREATED,
                message,
                &self.now_time,
            );
            set_condition(&mut self.deployment.status, created);
        }
        self.new = Some(rs);
    }

    /// Sets a ReplicaSet's replicas, and records the Deployment's size and most
    /// pods in its annotations; nothing when the size is already that. Returns
    /// whether it changed.
    fn scale_replica_set(&mut self, which: Which, replicas: i32) -> bool {
        if self
            .get(which)
            .is_none_or(|rs| spec_replicas(rs.spec.replicas) == replicas)
        {
            return false;
        }
        self.resize_replica_set(which, replicas);
        true
    }

    /// Sets a ReplicaSet's replicas and its annotations of the Deployment's size,
    /// even when only the annotations change (a proportional scaling records the new
    /// size on every active ReplicaSet, or it would look like a scaling event again).
    fn resize_replica_set(&mut self, which: Which, replicas: i32) {
        let desired = self.replicas();
        let max = desired + strategy::max_surge(self.read);
        let rs = match which {
            Which::New => self.new.as_mut(),
            Which::Old(i) => self.old.get_mut(i),
        };
        let Some(rs) = rs else {
            return;
        };
        rs.spec.replicas = Some(replicas);
        revision::set_replicas_annotations(rs, desired, max);
    }

    fn is_active(&self, which: Which) -> bool {
        self.get(which).is_some_and(|rs| spec_replicas(rs.spec.replicas) > 0)
    }

    /// Every ReplicaSet with replicas wanted: the old ones newest first, then the new.
    fn active(&self) -> Vec<Which> {
        let mut old: Vec<usize> = (0..self.old.len()).collect();
        old.reverse();
        old.into_iter()
            .map(Which::Old)
            .chain(self.new.is_some().then_some(Which::New))
            .filter(|which| self.is_active(*which))
            .collect()
    }

    /// Whether `spec.replicas` changed since an active ReplicaSet was last scaled.
    fn is_scaling_event(&self) -> bool {
        let replicas = self.replicas();
        self.active()
            .into_iter()
            .filter_map(|which| self.get(which).and_then(revision::desired_replicas))
            .any(|desired| desired != replicas)
    }

    /// The new ReplicaSet has all the pods wanted, available.
    fn is_new_saturated(&self) -> bool {
        let replicas = self.replicas();
        self.new.as_ref().is_some_and(|rs| {
            spec_replicas(rs.spec.replicas) == replicas
                && revision::desired_replicas(rs) == Some(replicas)
                && rs.status.available_replicas.unwrap_or_default() == replicas
        })
    }

    /// Recreate: old ReplicaSets to 0; once their pods are gone, the new one is
    /// created (or scaled) to `spec.replicas`.
    fn recreate(&mut self) {
        let mut scaled_down = false;
        for i in 0..self.old.len() {
            if self.is_active(Which::Old(i)) {
                self.scale_replica_set(Which::Old(i), 0);
                scaled_down = true;
            }
        }
        let old_pods: i32 = self.old.iter().map(|rs| rs.status.replicas).sum();
        let old_terminating: i32 = self
            .old
            .iter()
            .filter_map(|rs| self.terminating.get(rs.metadata.uid()))
            .sum();
        if scaled_down || old_pods > 0 || old_terminating > 0 {
            self.sync_rollout_status();
            if old_terminating > 0 {
                self.requeue = sooner(self.requeue, Some(Duration::from_secs(1)));
            }
            return;
        }
        if self.new.is_none() {
            self.create_new_replica_set();
        }
        self.scale_replica_set(Which::New, self.replicas());
        if status::is_complete(self.read, &self.read.status) {
            self.delete_beyond_history_limit();
        }
        self.sync_rollout_status();
    }

    /// Moves the old ReplicaSets beyond the history limit to the deletes; only ones
    /// this pass leaves unchanged qualify.
    fn delete_beyond_history_limit(&mut self) {
        let unchanged: Vec<&ReplicaSet> = self
            .old
            .iter()
            .filter(|rs| self.read_sets.get(rs.metadata.name()) == Some(rs))
            .collect();
        let doomed: Vec<String> = history::beyond_limit(self.read, &unchanged)
            .into_iter()
            .map(|rs| rs.metadata.name().to_string())
            .collect();
        let (deletes, kept) = std::mem::take(&mut self.old)
            .into_iter()
            .partition(|rs| doomed.iter().any(|name| name == rs.metadata.name()));
        self.old = kept;
        self.deletes = deletes;
    }

    /// The counts and `Available`, without estimating progress (paused, scaling).
    fn sync_status(&mut self) {
        let status = status::calculate_status(
            self.read,
            &self.deployment.status,
            &self.all(),
            self.new.as_ref(),
            &self.now_time,
        );
        self.deployment.status = status;
    }

    /// The counts, `Available` and `Progressing`, and when to check the deadline.
    fn sync_rollout_status(&mut self) {
        let status = status::rollout_status(
            self.read,
            &self.deployment.status,
            &self.all(),
            self.new.as_ref(),
            self.now,
        );
        self.requeue = status::deadline_check(self.read, &status, self.now);
        self.deployment.status = status;
    }

    pub(super) fn into_plan(self) -> Plan {
        let is_changed = |rs: &ReplicaSet| self.read_sets.get(rs.metadata.name()) != Some(&rs);
        let mut actions: Vec<Action> = self
            .old
            .iter()
            .filter(|rs| is_changed(rs))
            .map(|rs| Action::UpdateReplicaSet(rs.clone()))
            .collect();
        if let Some(rs) = self.new.as_ref().filter(|rs| is_changed(rs)) {
            actions.push(if self.read_sets.contains_key(rs.metadata.name()) {
                Action::UpdateReplicaSet(rs.clone())
            } else {
                Action::CreateReplicaSet(rs.clone())
            });
        }
        actions.extend(self.deletes.iter().cloned().map(Action::DeleteReplicaSet));
        if let Some(message) = self.rollback_message {
            actions.push(Action::RollBackDeployment(self.deployment, message));
        } else if self.deployment != *self.read {
            actions.push(Action::UpdateDeployment(self.deployment));
        }
        Plan {
            actions,
            requeue: self.requeue,
        }
    }
}
