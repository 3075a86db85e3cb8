//! Status conditions (`Ready`, `PodScheduled`, `Available`, ...) and what a pod's
//! phase and conditions say about it.
//!
//! Each kind has its own condition type in Kubernetes (`PodCondition`,
//! `NodeCondition`, `DeploymentCondition`, ...); [`Condition`] is what they share.

use k8s_openapi::api::apps::v1::{DeploymentCondition, ReplicaSetCondition};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerCondition;
use k8s_openapi::api::core::v1::{NamespaceCondition, NodeCondition, PodCondition};

use crate::meta::{MetaExt, Time};
use crate::objects::Pod;

/// What every kind's condition type has: `type`, `status`, `reason`, `message` and
/// `lastTransitionTime`.
pub trait Condition: Clone {
    fn type_(&self) -> &str;
    /// `True`, `False` or `Unknown`.
    fn status(&self) -> &str;
    fn reason(&self) -> &str;
    fn message(&self) -> &str;
    fn last_transition_time(&self) -> Option<&Time>;
    fn set_last_transition_time(&mut self, time: Option<Time>);
    /// A condition of this type with the given status, reason and message.
    fn new(type_: &str, status: &str, reason: &str, message: &str) -> Self;
}

macro_rules! condition_type {
    ($($ty:ty),*) => {$(
        impl Condition for $ty {
            fn type_(&self) -> &str {
                &self.type_
            }

            fn status(&self) -> &str {
                &self.status
            }

            fn reason(&self) -> &str {
                self.reason.as_deref().unwrap_or_default()
            }

            fn message(&self) -> &str {
                self.message.as_deref().unwrap_or_default()
            }

            fn last_transition_time(&self) -> Option<&Time> {
                self.last_transition_time.as_ref()
            }

            fn set_last_transition_time(&mut self, time: Option<Time>) {
                self.last_transition_time = time;
            }

            fn new(type_: &str, status: &str, reason: &str, message: &str) -> Self {
                Self {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    reason: (!reason.is_empty()).then(|| reason.to_string()),
                    message: (!message.is_empty()).then(|| message.to_string()),
                    ..Default::default()
                }
            }
        }
    )*};
}

condition_type!(
    PodCondition,
    NodeCondition,
    DeploymentCondition,
    ReplicaSetCondition,
    NamespaceCondition,
    HorizontalPodAutoscalerCondition
);

/// Ended for good: `Succeeded` or `Failed`.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"))
}

/// Counts toward a ReplicaSet: not ended and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !pod.metadata.is_deleting()
}

pub fn condition<'a, C: Condition>(conditions: &'a [C], type_: &str) -> Option<&'a C> {
    conditions.iter().find(|c| c.type_() == type_)
}

/// Whether the condition of `type_` is there and `True`.
pub fn is_true<C: Condition>(conditions: Option<&Vec<C>>, type_: &str) -> bool {
    conditions.is_some_and(|all| condition(all, type_).is_some_and(|c| c.status() == "True"))
}

/// The pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    is_true(pod.status.conditions.as_ref(), "Ready")
}

/// Sets a condition (keeping its lastTransitionTime when the status is unchanged);
/// returns whether anything changed.
pub fn set_condition<C: Condition>(conditions: &mut Vec<C>, mut new: C, now: &Time) -> bool {
    match conditions.iter_mut().find(|c| c.type_() == new.type_()) {
        Some(old) => {
            if old.status() == new.status() && old.reason() == new.reason() && old.message() == new.message() {
                return false;
            }
            let kept = old
                .last_transition_time()
                .filter(|_| old.status() == new.status())
                .cloned();
            new.set_last_transition_time(Some(kept.unwrap_or_else(|| now.clone())));
            *old = new;
            true
        }
        None => {
            new.set_last_transition_time(Some(now.clone()));
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::time::from_system_time;

    #[test]
    fn conditions_keep_their_transition_time_when_only_the_message_changes() {
        let t = |s: u64| from_system_time(UNIX_EPOCH + Duration::from_secs(s));
        let mut conditions = Vec::new();
        let c = |status: &str, message: &str| PodCondition::new("PodScheduled", status, "", message);
        assert!(set_condition(&mut conditions, c("False", "a"), &t(1)));
        assert!(!set_condition(&mut conditions, c("False", "a"), &t(2)));
        assert!(set_condition(&mut conditions, c("False", "b"), &t(3)));
        assert_eq!(conditions[0].last_transition_time, Some(t(1)));
        assert!(set_condition(&mut conditions, c("True", ""), &t(4)));
        assert_eq!(conditions[0].last_transition_time, Some(t(4)));
        assert_eq!(conditions.len(), 1);
        assert!(is_true(Some(&conditions), "PodScheduled"));
        assert!(!is_true(Some(&conditions), "Ready"));
    }
}
