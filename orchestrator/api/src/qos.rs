//! A pod's quality-of-service class (`status.qosClass`), by Kubernetes' rules. The
//! API server sets it when a pod is created and it never changes after; the agent
//! keeps it (and fills it in for a pod that came without one).
//!
//! Only cpu and memory count, and only amounts above zero; the containers and the
//! init containers are summed per resource:
//!
//! - BestEffort: no container requests or limits anything;
//! - Guaranteed: every container limits both cpu and memory, and the summed requests
//!   equal the summed limits, resource by resource;
//! - Burstable: anything else.
//!
//! A request left out counts as its limit: Kubernetes' defaulting copies the limit
//! into the request before it computes the class, so a container that only limits
//! cpu and memory is Guaranteed. (Pod-level `spec.resources`, an alpha feature off by
//! default in Kubernetes 1.33, is not considered.)

use std::collections::BTreeMap;

use crate::objects::{Container, PodSpec, Quantity};
use crate::quantity::{QuantityError, parse_cpu_millis, parse_memory_bytes};

pub const GUARANTEED: &str = "Guaranteed";
pub const BURSTABLE: &str = "Burstable";
pub const BEST_EFFORT: &str = "BestEffort";

/// The QoS class of a pod with this spec.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, u128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, u128> = BTreeMap::new();
    let mut is_guaranteed = true;
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    for container in containers {
        let container_limits = amounts(container, Section::Limits);
        for (name, amount) in amounts(container, Section::Requests) {
            *requests.entry(name).or_default() += u128::from(amount);
        }
        for (name, amount) in &container_limits {
            *limits.entry(name).or_default() += u128::from(*amount);
        }
        if !(container_limits.contains_key("cpu") && container_limits.contains_key("memory")) {
            is_guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return BEST_EFFORT;
    }
    if is_guaranteed && requests == limits {
        GUARANTEED
    } else {
        BURSTABLE
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Requests,
    Limits,
}

/// A container's cpu (millicores) and memory (bytes) amounts above zero, in one
/// section; a request not given is the limit, as defaulting makes it. A quantity that
/// does not parse counts as none (validation refuses it before any pod is stored).
fn amounts(container: &Container, section: Section) -> BTreeMap<&'static str, u64> {
    let resources = container.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let mut found = BTreeMap::new();
    type Parse = fn(&str) -> Result<u64, QuantityError>;
    for (name, parse) in [("cpu", parse_cpu_millis as Parse), ("memory", parse_memory_bytes)] {
        let quantity: Option<&Quantity> = match section {
            Section::Limits => limits.and_then(|l| l.get(name)),
            Section::Requests => requests
                .and_then(|r| r.get(name))
                .or_else(|| limits.and_then(|l| l.get(name))),
        };
        if let Some(amount) = quantity.and_then(|q| parse(&q.0).ok()).filter(|a| *a > 0) {
            found.insert(name, amount);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::ResourceRequirements;

    /// A container with `requests` and `limits` given as `name=quantity` lists.
    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(name, q)| (name.to_string(), Quantity(q.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            ..Default::default()
        }
    }

    #[test]
    fn classes_by_kubernetes_rules() {
        let cpu_mem = [("cpu", "500m"), ("memory", "128Mi")];
        // (case, containers, class)
        let table: Vec<(&str, Vec<Container>, &str)> = vec![
            ("nothing asked", vec![container(&[], &[])], BEST_EFFORT),
            ("no resources at all", vec![Container::default()], BEST_EFFORT),
            (
                "zero amounts do not count",
                vec![container(&[("cpu", "0"), ("memory", "0")], &[])],
                BEST_EFFORT,
            ),
            (
                "requests equal to limits",
                vec![container(&cpu_mem, &cpu_mem)],
                GUARANTEED,
            ),
            (
                "the same amounts written differently",
                vec![container(
                    &[("cpu", "0.5"), ("memory", "134217728")],
                    &[("cpu", "500m"), ("memory", "128Mi")],
                )],
                GUARANTEED,
            ),
            (
                "limits alone: the requests default to them",
                vec![container(&[], &cpu_mem)],
                GUARANTEED,
            ),
            (
                "a request below its limit",
                vec![container(&[("cpu", "250m"), ("memory", "128Mi")], &cpu_mem)],
                BURSTABLE,
            ),
            ("only a cpu limit", vec![container(&[], &[("cpu", "1")])], BURSTABLE),
            ("requests without limits", vec![container(&cpu_mem, &[])], BURSTABLE),
            (
                "one guaranteed container beside a best-effort one",
                vec![container(&cpu_mem, &cpu_mem), container(&[], &[])],
                BURSTABLE,
            ),
            (
                "two guaranteed containers",
                vec![
                    container(&cpu_mem, &cpu_mem),
                    container(&[], &[("cpu", "1"), ("memory", "1Gi")]),
                ],
                GUARANTEED,
            ),
        ];
        for (case, containers, class) in table {
            assert_eq!(qos_class(&spec(containers)), class, "{case}");
        }
    }

    #[test]
    fn init_containers_count_too() {
        let cpu_mem = [("cpu", "500m"), ("memory", "128Mi")];
        let mut pod = spec(vec![container(&cpu_mem, &cpu_mem)]);
        pod.init_containers = Some(vec![container(&[("memory", "64Mi")], &[])]);
        assert_eq!(qos_class(&pod), BURSTABLE);
        pod.init_containers = Some(vec![container(&cpu_mem, &cpu_mem)]);
        assert_eq!(qos_class(&pod), GUARANTEED);
        let mut only_init = spec(vec![container(&[], &[])]);
        only_init.init_containers = Some(vec![container(&[("cpu", "100m")], &[])]);
        assert_eq!(qos_class(&only_init), BURSTABLE);
    }
}
