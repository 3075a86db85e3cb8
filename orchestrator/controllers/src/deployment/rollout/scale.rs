//! Scaling without a rollout (a paused Deployment, or `spec.replicas` changed), as
//! Kubernetes' `scale`: the one active ReplicaSet takes the new size; with several
//! (a rollout under way), the old ones go to 0 once the new one is saturated, else
//! every active ReplicaSet grows or shrinks in proportion to its size, so a rollout
//! scaled midway keeps its ratio of new to old pods.

use std::cmp::Reverse;

use berth_api::meta::MetaExt;
use berth_api::objects::ReplicaSet;

use super::{Rollout, Which};
use crate::deployment::{revision, strategy};
use crate::spec_replicas;

/// `rs`'s share of `to_add` more pods (negative: fewer), as Kubernetes'
/// `GetProportion`: its size times the Deployment's new maximum over the maximum
/// it was last scaled for, bounded by what is left to add.
fn proportion(rs: &ReplicaSet, replicas: i32, new_max: i32, recorded_pods: i32, to_add: i32, added: i32) -> i32 {
    let size = spec_replicas(rs.spec.replicas);
    if size == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas == 0 {
        -size
    } else {
        let before = revision::max_replicas(rs)
            .filter(|max| *max != 0)
            .unwrap_or(recorded_pods);
        if before == 0 {
            0
        } else {
            let scaled = (f64::from(size) * f64::from(new_max) / f64::from(before)).round();
            scaled as i32 - size
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

impl Rollout<'_> {
    pub(super) fn scale(&mut self) {
        let replicas = self.replicas();
        let active = self.active();
        let target = match active.as_slice() {
            [] if self.new.is_some() => Some(Which::New),
            [] => self.old.len().checked_sub(1).map(Which::Old),
            [only] => Some(*only),
            _ => None,
        };
        if let Some(target) = target {
            self.scale_replica_set(target, replicas);
        } else if self.is_new_saturated() {
            for which in active.into_iter().filter(|w| *w != Which::New) {
                self.scale_replica_set(which, 0);
            }
        } else if strategy::is_rolling_update(self.read) {
            self.scale_proportionally(active);
        }
    }

    fn scale_proportionally(&mut self, mut active: Vec<Which>) {
        let replicas = self.replicas();
        let new_max = if replicas > 0 {
            replicas + strategy::max_surge(self.read)
        } else {
            0
        };
        let size = |rollout: &Self, which: Which| rollout.get(which).map_or(0, |rs| spec_replicas(rs.spec.replicas));
        let current: i32 = active.iter().map(|w| size(self, *w)).sum();
        let to_add = new_max - current;
        // Largest first; on a tie, the newer when adding, the older when removing.
        let created = |rollout: &Self, which: Which| {
            rollout
                .get(which)
                .map(|rs| (rs.metadata.creation_timestamp.clone(), rs.metadata.name().to_string()))
        };
        if to_add > 0 {
            active.sort_by_key(|w| (Reverse(size(self, *w)), Reverse(created(self, *w))));
        } else if to_add < 0 {
            active.sort_by_key(|w| (Reverse(size(self, *w)), created(self, *w)));
        }
        let recorded_pods = self.read.status.replicas.unwrap_or_default();
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
        for which in &active {
            let rs = self.get(*which).expect("active ReplicaSets exist");
            let share = proportion(rs, replicas, new_max, recorded_pods, to_add, added);
            sizes.push(size(self, *which) + share);
            added += share;
        }
        // What rounding left over goes to (or comes from) the largest.
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
        for (which, size) in active.into_iter().zip(sizes) {
            self.resize_replica_set(which, size);
        }
    }
}
