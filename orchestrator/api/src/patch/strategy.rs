//! How a strategic merge patch treats each field: the facts Kubernetes keeps in the
//! `patchStrategy` and `patchMergeKey` struct tags of its API types (the same facts its
//! OpenAPI publishes as `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`).
//! kube-apiserver applies strategic merge patches to built-in kinds with exactly these
//! tags, so the table below is one line per tagged field, keyed by the OpenAPI definition
//! that holds the field.
//!
//! Source: Kubernetes 1.33 (k8s.io/api v0.33, k8s.io/apimachinery v0.33):
//! `core/v1/types.go`, `apps/v1/types.go`, `pkg/apis/meta/v1/types.go`. Every tagged
//! field of those three files is here, so every kind they define (not only the ones berth
//! serves today) patches as in Kubernetes. Fields that `EphemeralContainerCommon` declares
//! appear under `EphemeralContainer`, which inlines it. The test in `schema.rs` checks
//! that every line names a field of the right shape in the `k8s-openapi` definitions.
//!
//! Fields not in the table have no strategy: a map merges member by member, a list is
//! replaced whole (e.g. `tolerations`, `args`, an Endpoints' `subsets`).

/// One tagged field: `strategy` is spelled as in the tag (`merge`, `retainKeys`,
/// `merge,retainKeys`); `merge_key` is the key of lists of objects merged element-wise,
/// `None` for lists of scalars merged as sets and for maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrategyFact {
    pub definition: &'static str,
    pub field: &'static str,
    pub strategy: &'static str,
    pub merge_key: Option<&'static str>,
}

const fn fact(
    definition: &'static str,
    field: &'static str,
    strategy: &'static str,
    merge_key: Option<&'static str>,
) -> StrategyFact {
    StrategyFact {
        definition,
        field,
        strategy,
        merge_key,
    }
}

/// Every tagged field, grouped by the type that declares it. (Kept one line per fact, a
/// table to read against the tags, hence no rustfmt.)
#[rustfmt::skip]
pub const PATCH_STRATEGIES: &[StrategyFact] = &[
    // k8s.io/apimachinery/pkg/apis/meta/v1: ObjectMeta
    fact("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", None),
    fact("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", Some("uid")),
    // k8s.io/api/core/v1: PodSpec
    fact("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", Some("name")),
    fact("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", Some("name")),
    fact("io.k8s.api.core.v1.PodSpec", "containers", "merge", Some("name")),
    fact("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", Some("name")),
    fact("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", Some("name")),
    fact("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", Some("ip")),
    fact("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "merge", Some("topologyKey")),
    fact("io.k8s.api.core.v1.PodSpec", "schedulingGates", "merge", Some("name")),
    fact("io.k8s.api.core.v1.PodSpec", "resourceClaims", "merge,retainKeys", Some("name")),
    // Container, and EphemeralContainer (EphemeralContainerCommon, inlined)
    fact("io.k8s.api.core.v1.Container", "ports", "merge", Some("containerPort")),
    fact("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    fact("io.k8s.api.core.v1.Container", "volumeMounts", "merge", Some("mountPath")),
    fact("io.k8s.api.core.v1.Container", "volumeDevices", "merge", Some("devicePath")),
    fact("io.k8s.api.core.v1.EphemeralContainer", "ports", "merge", Some("containerPort")),
    fact("io.k8s.api.core.v1.EphemeralContainer", "env", "merge", Some("name")),
    fact("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", "merge", Some("mountPath")),
    fact("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", "merge", Some("devicePath")),
    // PodStatus and ContainerStatus
    fact("io.k8s.api.core.v1.PodStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.core.v1.PodStatus", "hostIPs", "merge", Some("ip")),
    fact("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", Some("ip")),
    fact("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", "merge,retainKeys", Some("name")),
    fact("io.k8s.api.core.v1.ContainerStatus", "volumeMounts", "merge", Some("mountPath")),
    fact("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus", "merge", Some("name")),
    // Node
    fact("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    fact("io.k8s.api.core.v1.NodeStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", Some("type")),
    // Namespace, Service, ServiceAccount, and the rest of core/v1's status conditions
    fact("io.k8s.api.core.v1.NamespaceStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", Some("port")),
    fact("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.core.v1.ServiceAccount", "secrets", "merge", Some("name")),
    fact("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.core.v1.ComponentStatus", "conditions", "merge", Some("type")),
    // k8s.io/api/apps/v1
    fact("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", None),
    fact("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", Some("type")),
    fact("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", Some("type")),
];

/// A field's strategy, parsed. The default (nothing set) is "no strategy".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldStrategy {
    /// Lists: merge (by `merge_key` for objects, as a set for scalars) instead of replace.
    pub merge: bool,
    /// `$retainKeys` is meant for this field. Applying a patch honours `$retainKeys`
    /// wherever it appears, as Kubernetes does; the flag matters to patch authors.
    pub retain_keys: bool,
    /// Maps: replace instead of merge. No built-in field has it; kept for completeness.
    pub replace: bool,
    pub merge_key: Option<&'static str>,
}

impl FieldStrategy {
    /// Parses a tag's strategy list, e.g. `merge,retainKeys`; `None` for an unknown word.
    pub fn parse(strategy: &str, merge_key: Option<&'static str>) -> Option<Self> {
        let mut parsed = FieldStrategy {
            merge_key,
            ..FieldStrategy::default()
        };
        for word in strategy.split(',').filter(|word| !word.is_empty()) {
            match word {
                "merge" => parsed.merge = true,
                "retainKeys" => parsed.retain_keys = true,
                "replace" => parsed.replace = true,
                _ => return None,
            }
        }
        Some(parsed)
    }
}

/// The strategy of `field` in the definition named `definition`.
pub(crate) fn strategy_of(definition: &str, field: &str) -> FieldStrategy {
    PATCH_STRATEGIES
        .iter()
        .find(|fact| fact.definition == definition && fact.field == field)
        .and_then(|fact| FieldStrategy::parse(fact.strategy, fact.merge_key))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_strategy_parses() {
        for fact in PATCH_STRATEGIES {
            let parsed = FieldStrategy::parse(fact.strategy, fact.merge_key);
            assert!(parsed.is_some(), "{fact:?}");
        }
        assert_eq!(FieldStrategy::parse("merge,sideways", None), None);
    }

    #[test]
    fn no_field_is_listed_twice() {
        let mut seen = BTreeSet::new();
        for fact in PATCH_STRATEGIES {
            assert!(seen.insert((fact.definition, fact.field)), "{fact:?} twice");
        }
    }

    #[test]
    fn definitions_are_spelled_as_openapi_names() {
        for fact in PATCH_STRATEGIES {
            assert!(
                fact.definition.starts_with("io.k8s.api.core.v1.")
                    || fact.definition.starts_with("io.k8s.api.apps.v1.")
                    || fact.definition.starts_with("io.k8s.apimachinery.pkg.apis.meta.v1."),
                "{fact:?}"
            );
        }
    }

    #[test]
    fn lookups_find_the_facts() {
        let containers = strategy_of("io.k8s.api.core.v1.PodSpec", "containers");
        assert!(containers.merge);
        assert_eq!(containers.merge_key, Some("name"));
        let volumes = strategy_of("io.k8s.api.core.v1.PodSpec", "volumes");
        assert!(volumes.merge && volumes.retain_keys);
        let strategy = strategy_of("io.k8s.api.apps.v1.DeploymentSpec", "strategy");
        assert!(strategy.retain_keys && !strategy.merge);
        assert_eq!(
            strategy_of("io.k8s.api.core.v1.PodSpec", "tolerations"),
            FieldStrategy::default()
        );
        assert_eq!(
            strategy_of("io.k8s.api.core.v1.Container", "containers"),
            FieldStrategy::default()
        );
    }
}
