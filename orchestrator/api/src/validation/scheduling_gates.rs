//! A pod's `schedulingGates`, as Kubernetes checks them: qualified names, each
//! once, and an update may only remove them.

use std::collections::BTreeSet;

use super::{Errors, err, service};
use crate::objects::PodSpec;

/// `schedulingGates`: qualified names, each once.
pub(super) fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        let at = format!("{path}.schedulingGates[{i}].name");
        for problem in service::qualified_name_problems(&gate.name) {
            err(errors, &at, format!("Invalid value: {:?}: {problem}", gate.name));
        }
        if !seen.insert(gate.name.as_str()) {
            err(errors, &at, format!("Duplicate value: {:?}", gate.name));
        }
    }
}

/// What a pod's update may do to its scheduling gates: remove some (Kubernetes
/// allows no other change).
pub fn scheduling_gates_update(old: &PodSpec, new: &PodSpec, errors: &mut Errors) {
    let old_gates = old.scheduling_gates.as_deref().unwrap_or_default();
    for gate in new.scheduling_gates.iter().flatten() {
        if !old_gates.iter().any(|g| g.name == gate.name) {
            err(
                errors,
                "spec.schedulingGates",
                format!(
                    "Forbidden: only deletion is allowed, but found new scheduling gate '{}'",
                    gate.name
                ),
            );
        }
    }
}
