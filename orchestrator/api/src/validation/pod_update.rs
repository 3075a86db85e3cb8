//! What an update may change in a pod's spec, as Kubernetes' `ValidatePodUpdate`
//! allows: the containers' images, `activeDeadlineSeconds`, added tolerations,
//! `terminationGracePeriodSeconds` set to 1 where it was negative, and removed
//! scheduling gates (checked in `scheduling_gates`). Anything else would slip past
//! what was checked at create: Pod Security, quotas, the scheduler's placement.

use crate::objects::PodSpec;

use super::{Errors, err};

/// Kubernetes' message (without the diff it appends).
pub const FORBIDDEN_POD_UPDATE: &str = "Forbidden: pod updates may not change fields other than \
`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` \
(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was \
previously negative)";

pub fn pod_spec_update(old: &PodSpec, new: &PodSpec, errors: &mut Errors) {
    let mut allowed = new.clone();
    if allowed.containers.len() == old.containers.len() {
        for (container, before) in allowed.containers.iter_mut().zip(&old.containers) {
            container.image.clone_from(&before.image);
        }
    }
    if let (Some(now), Some(before)) = (allowed.init_containers.as_mut(), old.init_containers.as_ref())
        && now.len() == before.len()
    {
        for (container, before) in now.iter_mut().zip(before) {
            container.image.clone_from(&before.image);
        }
    }
    allowed.active_deadline_seconds = old.active_deadline_seconds;
    let old_tolerations = old.tolerations.as_deref().unwrap_or_default();
    let new_tolerations = allowed.tolerations.as_deref().unwrap_or_default();
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        allowed.tolerations.clone_from(&old.tolerations);
    }
    if old.termination_grace_period_seconds.is_some_and(|s| s < 0)
        && allowed.termination_grace_period_seconds == Some(1)
    {
        allowed.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    allowed.scheduling_gates.clone_from(&old.scheduling_gates);
    if allowed != *old {
        err(errors, "spec", FORBIDDEN_POD_UPDATE);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    fn errors(old: &PodSpec, new: &PodSpec) -> Vec<String> {
        let mut errors = Vec::new();
        pod_spec_update(old, new, &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn images_deadlines_and_added_tolerations_may_change_and_nothing_else() {
        let old = spec(json!({"containers": [{"name": "c", "image": "busybox:1.35"}],
            "tolerations": [{"key": "a", "operator": "Exists"}]}));
        let new = spec(json!({"containers": [{"name": "c", "image": "busybox:1.36"}],
            "activeDeadlineSeconds": 30,
            "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}));
        assert_eq!(errors(&old, &new), Vec::<String>::new());

        let privileged = spec(json!({"containers": [{"name": "c", "image": "busybox:1.35",
            "securityContext": {"privileged": true}}],
            "tolerations": [{"key": "a", "operator": "Exists"}]}));
        assert_eq!(errors(&old, &privileged), [format!("spec: {FORBIDDEN_POD_UPDATE}")]);
        let fewer = spec(json!({"containers": [{"name": "c", "image": "busybox:1.35"}]}));
        assert_eq!(errors(&old, &fewer).len(), 1, "a toleration taken away");
    }
}
