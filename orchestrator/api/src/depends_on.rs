//! Start order across workloads, berth's own: a Deployment, ReplicaSet or
//! StatefulSet annotated `berth.io/depends-on: "db,cache"` has its pods held Pending
//! until every Service it names (in its own namespace) has a ready endpoint.
//!
//! The hold is a Kubernetes scheduling gate (`spec.schedulingGates`), so nothing new
//! is asked of the scheduler or of clients: the workload's controller creates each pod
//! with the gate `berth.io/depends-on` and the annotation copied onto it; the
//! dependencies controller (berth-controllers `depends_on`) removes the gate once the
//! Services are ready and, until then, says what the pod waits for in its
//! `berth.io/DependenciesReady` condition and in an Event. The scheduler shows a
//! gated pod as `SchedulingGated`, as kube-scheduler does.
//!
//! The gate is only ever removed (Kubernetes allows no other change to a pod's
//! gates), so a released pod is never held again: dependencies order starts; they do
//! not stop what already runs when a Service later loses its endpoints.

use crate::meta::{MetaExt, ObjectMeta};
use crate::objects::{Pod, PodSchedulingGate, PodSpec};
use crate::validation::{FieldError, is_dns_label};

/// The annotation on a workload (and copied onto its pods) naming the Services its
/// pods wait for.
pub const ANNOTATION: &str = "berth.io/depends-on";
/// The scheduling gate that holds a pod while its dependencies are not ready.
pub const GATE: &str = "berth.io/depends-on";
/// The pod condition that says what the pod waits for.
pub const CONDITION: &str = "berth.io/DependenciesReady";

/// The Service names of an annotation's value: comma-separated, blanks around names
/// ignored, each a DNS-1035 label as Service names are; duplicates once.
pub fn services(value: &str) -> Result<Vec<&str>, String> {
    let mut names: Vec<&str> = Vec::new();
    for name in value.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(format!(
                "{value:?}: must be a comma-separated list of Service names, without empty entries"
            ));
        }
        if !is_dns_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(format!(
                "{name:?} is not a Service name: a DNS-1035 label must consist of lower case alphanumeric \
                 characters or '-', start with an alphabetic character, and end with an alphanumeric character"
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Checks the annotation on a workload's metadata.
pub fn validate(meta: &ObjectMeta, errors: &mut Vec<FieldError>) {
    if let Some(value) = meta.annotations().get(ANNOTATION)
        && let Err(message) = services(value)
    {
        errors.push(FieldError {
            field: format!("metadata.annotations[{ANNOTATION}]"),
            message,
        });
    }
}

/// Holds a new pod of a workload whose metadata is `owner`: when the owner names
/// dependencies, the pod gets the gate and the annotation (what the dependencies
/// controller reads). A pod of an owner without the annotation is left as it is.
pub fn hold(owner: &ObjectMeta, pod: &mut Pod) {
    let Some(value) = owner.annotations().get(ANNOTATION) else {
        return;
    };
    pod.metadata
        .annotations_mut()
        .insert(ANNOTATION.to_string(), value.clone());
    let gates = pod.spec.scheduling_gates.get_or_insert_default();
    if !gates.iter().any(|g| g.name == GATE) {
        gates.push(PodSchedulingGate { name: GATE.into() });
    }
}

/// Whether the pod is held by the dependencies gate.
pub fn is_held(spec: &PodSpec) -> bool {
    spec.scheduling_gates.iter().flatten().any(|g| g.name == GATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Resource;

    fn annotated(value: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            annotations: Some([(ANNOTATION.to_string(), value.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_value_is_a_list_of_service_names() {
        assert_eq!(services("db").unwrap(), ["db"]);
        assert_eq!(services("db, cache ,db").unwrap(), ["db", "cache"]);
        assert!(services("").unwrap_err().contains("without empty entries"));
        assert!(services("db,,cache").unwrap_err().contains("without empty entries"));
        assert!(services("Db").unwrap_err().contains("\"Db\" is not a Service name"));
        assert!(
            services("1db")
                .unwrap_err()
                .contains("start with an alphabetic character")
        );
        assert!(
            services("ns/db")
                .unwrap_err()
                .contains("\"ns/db\" is not a Service name")
        );
    }

    #[test]
    fn a_bad_annotation_is_refused_by_name() {
        let mut errors = Vec::new();
        validate(&annotated("db;cache"), &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "metadata.annotations[berth.io/depends-on]");
        let mut errors = Vec::new();
        validate(&annotated("db,cache"), &mut errors);
        validate(&ObjectMeta::default(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn pods_of_an_annotated_owner_are_held_once() {
        let mut pod: Pod = Resource::new(ObjectMeta::default(), PodSpec::default());
        hold(&ObjectMeta::default(), &mut pod);
        assert!(!is_held(&pod.spec));
        assert!(pod.metadata.annotations.is_none());

        hold(&annotated("db"), &mut pod);
        hold(&annotated("db"), &mut pod);
        assert!(is_held(&pod.spec));
        assert_eq!(pod.spec.scheduling_gates.as_ref().unwrap().len(), 1);
        assert_eq!(pod.metadata.annotations()[ANNOTATION], "db");
    }
}
