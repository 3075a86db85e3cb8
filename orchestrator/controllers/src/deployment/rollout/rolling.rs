//! The RollingUpdate strategy, as Kubernetes' `rolloutRolling`: each pass either
//! scales the new ReplicaSet up (within `spec.replicas + maxSurge` pods in all) or
//! the old ones down (keeping `spec.replicas - maxUnavailable` available, old pods
//! that are not available going first), and once the new one has every pod
//! available the old ones are at 0 and the history limit applies.

use super::{Rollout, Which};
use crate::deployment::{status, strategy};
use crate::spec_replicas;
use berth_api::objects::ReplicaSet;

/// The pods of a ReplicaSet that count as available: its status's, but never more
/// than it wants (pods beyond that are on their way out, even if its status does
/// not say so yet), so a stale status cannot make room for more scaling down.
fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .available_replicas
        .unwrap_or_default()
        .min(spec_replicas(rs.spec.replicas).max(0))
}

impl Rollout<'_> {
    pub(super) fn rolling(&mut self) {
        if self.new.is_none() {
            self.create_new_replica_set();
        }
        if self.reconcile_new() || self.reconcile_old() {
            self.sync_rollout_status();
            return;
        }
        if status::is_complete(self.read, &self.read.status) {
            self.delete_beyond_history_limit();
        }
        self.sync_rollout_status();
    }

    fn pods_wanted(&self) -> i32 {
        self.all().iter().map(|rs| spec_replicas(rs.spec.replicas)).sum()
    }

    /// How many pods the new ReplicaSet may have now: more, up to `spec.replicas`,
    /// while all of them together stay within `spec.replicas + maxSurge`.
    pub(super) fn new_replica_set_replicas(&self) -> i32 {
        let current = self.new.as_ref().map_or(0, |rs| spec_replicas(rs.spec.replicas));
        let replicas = self.replicas();
        let max_total = replicas + strategy::max_surge(self.read);
        let wanted = self.pods_wanted();
        if wanted >= max_total {
            return current;
        }
        current + (max_total - wanted).min(replicas - current).max(0)
    }

    /// Scales the new ReplicaSet towards `spec.replicas`; whether it changed.
    fn reconcile_new(&mut self) -> bool {
        let replicas = self.replicas();
        let current = self.new.as_ref().map_or(0, |rs| spec_replicas(rs.spec.replicas));
        if current == replicas {
            return false;
        }
        let target = if current > replicas {
            replicas
        } else {
            self.new_replica_set_replicas()
        };
        self.scale_replica_set(Which::New, target)
    }

    /// Scales old ReplicaSets down as far as availability allows; whether any changed.
    fn reconcile_old(&mut self) -> bool {
        let old_wanted: i32 = self.old.iter().map(|rs| spec_replicas(rs.spec.replicas)).sum();
        if old_wanted == 0 {
            return false;
        }
        let min_available = self.replicas() - strategy::max_unavailable(self.read);
        let new_unavailable = self
            .new
            .as_ref()
            .map_or(0, |rs| (spec_replicas(rs.spec.replicas) - available(rs)).max(0));
        let max_scaled_down = self.pods_wanted() - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.clean_up_unhealthy(max_scaled_down);
        let scaled = self.scale_down_old(min_available);
        cleaned + scaled > 0
    }

    /// Old pods that are not available go first, oldest ReplicaSet first, at most
    /// `max`: removing them costs no availability. Returns how many went.
    fn clean_up_unhealthy(&mut self, max: i32) -> i32 {
        let mut total = 0;
        for i in 0..self.old.len() {
            if total >= max {
                break;
            }
            let rs = &self.old[i];
            let wanted = spec_replicas(rs.spec.replicas);
            let unhealthy = wanted - available(rs);
            if wanted <= 0 || unhealthy <= 0 {
                continue;
            }
            let count = unhealthy.min(max - total);
            self.scale_replica_set(Which::Old(i), wanted - count);
            total += count;
        }
        total
    }

    /// Old ReplicaSets down, oldest first, by as many pods as are available beyond
    /// `min_available`. Returns how many went.
    fn scale_down_old(&mut self, min_available: i32) -> i32 {
        let available_now: i32 = self.all().iter().map(|rs| available(rs)).sum();
        if available_now <= min_available {
            return 0;
        }
        let to_scale_down = available_now - min_available;
        let mut total = 0;
        for i in 0..self.old.len() {
            if total >= to_scale_down {
                break;
            }
            let wanted = spec_replicas(self.old[i].spec.replicas);
            if wanted <= 0 {
                continue;
            }
            let count = wanted.min(to_scale_down - total);
            self.scale_replica_set(Which::Old(i), wanted - count);
            total += count;
        }
        total
    }
}
