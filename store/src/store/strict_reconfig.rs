//! `--strict-reconfig-check` (on by default, as in etcd): the leader refuses a
//! membership change that would leave the cluster without a quorum of started
//! members, or without a quorum of members it can reach.
//!
//! etcd's rules, with its errors: adding a voter needs a quorum of the grown voting
//! set started (a member is started once it has published its name); removing a
//! voter needs a quorum of the rest started, and, unless the member removed is down
//! already, a quorum of the rest reachable; promoting a learner counts it as started;
//! adding any member needs every voter reachable. Learners are not counted.
//!
//! openraft changes the membership through a joint configuration, which commits only
//! with a quorum of the old voters and of the new ones: a change that would lose the
//! quorum waits (and times out) instead of committing. The check turns that wait into
//! etcd's immediate refusal, before anything is proposed.
//!
//! "Reachable" is the leader's view: a voter that answered one of its Raft RPCs within
//! an election timeout (etcd asks for a connection up for five seconds).

use std::time::{Duration, Instant};

use super::*;

/// A voting member as the check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Voter {
    pub id: NodeId,
    /// It has published its name: it ran at least once.
    pub is_started: bool,
    /// The leader heard from it lately (the leader counts itself).
    pub is_reachable: bool,
}

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Adding a member (a voter unless `is_learner`).
pub(super) fn may_add(voters: &[Voter], is_learner: bool) -> Result<()> {
    if !is_learner {
        let members = voters.len() + 1;
        let started = voters.iter().filter(|v| v.is_started).count();
        // etcd's exception: a second member for a cluster of one being restored.
        let is_restore = started == 1 && members == 2;
        if !is_restore && started < quorum(members) {
            return Err(StoreError::NotEnoughStartedMembers);
        }
    }
    if let Some(down) = voters.iter().find(|v| !v.is_reachable) {
        return Err(StoreError::Unhealthy(format!(
            "the leader has not heard from voting member {:x} lately",
            down.id
        )));
    }
    Ok(())
}

/// Removing voting member `id` (removing a learner is never refused).
pub(super) fn may_remove(voters: &[Voter], id: NodeId, me: NodeId) -> Result<()> {
    let Some(removed) = voters.iter().find(|v| v.id == id) else {
        return Ok(());
    };
    let rest: Vec<&Voter> = voters.iter().filter(|v| v.id != id).collect();
    if rest.iter().filter(|v| v.is_started).count() < quorum(rest.len()) {
        return Err(StoreError::NotEnoughStartedMembers);
    }
    // A member that is down is not part of the quorum that is up: safe to remove.
    if id != me && !removed.is_reachable {
        return Ok(());
    }
    let reachable = rest.iter().filter(|v| v.is_reachable).count();
    if reachable < quorum(rest.len()) {
        return Err(StoreError::Unhealthy(format!(
            "removing {id:x} would leave {reachable} reachable voting members of {}, fewer than a quorum",
            rest.len()
        )));
    }
    Ok(())
}

/// Promoting a learner to a voter: it counts as started.
pub(super) fn may_promote(voters: &[Voter]) -> Result<()> {
    let started = voters.iter().filter(|v| v.is_started).count() + 1;
    if started < quorum(voters.len() + 1) {
        return Err(StoreError::NotEnoughStartedMembers);
    }
    Ok(())
}

impl Store {
    /// The voting members, started and reachable as this replica (the leader) sees them.
    pub(super) fn voters_for_reconfig(&self, members: &[Member]) -> Vec<Voter> {
        let fresh = self.inner.config.election_timeout.max(Duration::from_millis(100));
        let network = self.inner.peers.network();
        members
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| Voter {
                id: m.id,
                is_started: !m.name.is_empty(),
                is_reachable: m.id == self.inner.id
                    || network
                        .last_contact(m.id)
                        .is_some_and(|at| Instant::now().saturating_duration_since(at) <= fresh),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voter(id: NodeId, is_started: bool, is_reachable: bool) -> Voter {
        Voter {
            id,
            is_started,
            is_reachable,
        }
    }

    #[test]
    fn a_voter_is_added_only_with_a_quorum_of_started_members_all_reachable() {
        let three = [voter(1, true, true), voter(2, true, true), voter(3, true, true)];
        assert_eq!(may_add(&three, false), Ok(()));
        // Five voters of which two never started: a sixth would need four started.
        let five = [
            voter(1, true, true),
            voter(2, true, true),
            voter(3, true, true),
            voter(4, false, true),
            voter(5, false, true),
        ];
        assert_eq!(may_add(&five, false), Err(StoreError::NotEnoughStartedMembers));
        assert_eq!(may_add(&five, true), Ok(()), "learners do not count");
        // Restoring a cluster of one.
        assert_eq!(may_add(&[voter(1, true, true)], false), Ok(()));
        let one_down = [voter(1, true, true), voter(2, true, true), voter(3, true, false)];
        assert!(matches!(may_add(&one_down, true), Err(StoreError::Unhealthy(_))));
    }

    #[test]
    fn a_removal_that_leaves_too_few_reachable_voters_is_refused() {
        let one_down = [voter(1, true, true), voter(2, true, true), voter(3, true, false)];
        // Removing a live member leaves 1 and the one that is down: no quorum up.
        assert!(matches!(may_remove(&one_down, 2, 1), Err(StoreError::Unhealthy(_))));
        // Removing the one that is down is safe, and so is removing from a healthy cluster.
        assert_eq!(may_remove(&one_down, 3, 1), Ok(()));
        let healthy = [voter(1, true, true), voter(2, true, true), voter(3, true, true)];
        assert_eq!(may_remove(&healthy, 2, 1), Ok(()));
        // A member that is not a voter is not checked.
        assert_eq!(may_remove(&one_down, 9, 1), Ok(()));
        // Two of four never started: without member 1, one started of three.
        let unstarted = [
            voter(1, true, true),
            voter(2, true, true),
            voter(3, false, true),
            voter(4, false, true),
        ];
        assert_eq!(may_remove(&unstarted, 1, 1), Err(StoreError::NotEnoughStartedMembers));
    }

    #[test]
    fn a_promoted_learner_counts_as_started() {
        // Three voters, two started: with the learner, three started of four.
        let two_of_three = [voter(1, true, true), voter(2, true, true), voter(3, false, true)];
        assert_eq!(may_promote(&two_of_three), Ok(()));
        let one_of_four = [
            voter(1, true, true),
            voter(2, false, true),
            voter(3, false, true),
            voter(4, false, true),
        ];
        assert_eq!(may_promote(&one_of_four), Err(StoreError::NotEnoughStartedMembers));
    }
}
