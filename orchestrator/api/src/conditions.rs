//! Status conditions (`Ready`, `PodScheduled`, `Available`, ...) and what a pod's
//! phase and conditions say about it.

use crate::objects::{Condition, Pod};

/// Ended for good: `Succeeded` or `Failed`.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.phase.as_str(), "Succeeded" | "Failed")
}

/// Counts toward a ReplicaSet: not ended and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    condition(&pod.status.conditions, "Ready").is_some_and(|c| c.status == "True")
}

/// Sets a condition (keeping its lastTransitionTime when the status is unchanged);
/// returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &str) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status && old.reason == new.reason && old.message == new.message {
                return false;
            }
            new.last_transition_time = if old.status == new.status && !old.last_transition_time.is_empty() {
                old.last_transition_time.clone()
            } else {
                now.to_string()
            };
            *old = new;
            true
        }
        None => {
            new.last_transition_time = now.to_string();
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_transition_time_when_only_the_message_changes() {
        let mut conditions = Vec::new();
        let c = |status: &str, message: &str| Condition {
            type_: "PodScheduled".into(),
            status: status.into(),
            message: message.into(),
            ..Default::default()
        };
        assert!(set_condition(&mut conditions, c("False", "a"), "t1"));
        assert!(!set_condition(&mut conditions, c("False", "a"), "t2"));
        assert!(set_condition(&mut conditions, c("False", "b"), "t3"));
        assert_eq!(conditions[0].last_transition_time, "t1");
        assert!(set_condition(&mut conditions, c("True", ""), "t4"));
        assert_eq!(conditions[0].last_transition_time, "t4");
        assert_eq!(conditions.len(), 1);
    }
}
