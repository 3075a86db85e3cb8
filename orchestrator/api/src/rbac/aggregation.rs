//! Aggregated ClusterRoles: a ClusterRole with an `aggregationRule` gets, as its
//! `rules`, the rules of every other ClusterRole whose labels one of its selectors
//! matches (selector by selector, those roles by name), each rule once, as
//! Kubernetes' clusterrole-aggregation controller writes them.

use super::{ClusterRole, PolicyRule};
use crate::meta::{MetaExt, selector_matches};

/// The rules `role` aggregates from `roles` (every ClusterRole), or `None` when it
/// has no aggregation rule.
pub fn aggregated_rules<'a>(
    role: &ClusterRole,
    roles: impl IntoIterator<Item = &'a ClusterRole> + Clone,
) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in rule.cluster_role_selectors.iter().flatten() {
        let mut matching: Vec<&ClusterRole> = roles
            .clone()
            .into_iter()
            .filter(|other| other.metadata.name() != role.metadata.name())
            .filter(|other| selector_matches(selector, other.metadata.labels()))
            .collect();
        matching.sort_by(|a, b| a.metadata.name().cmp(b.metadata.name()));
        for other in matching {
            for rule in other.rules.iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}
