//! A pod's placement rules as Kubernetes validates them: `affinity` (node
//! affinity's selector terms and preferences, pod affinity and anti-affinity terms)
//! and `topologySpreadConstraints`, with Kubernetes' field paths and messages.
//! Every field they have is implemented; none is refused.

use std::collections::BTreeSet;

use super::{Errors, err, is_dns_label, service::qualified_name_problems};
use crate::meta::LabelSelector;
use crate::objects::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, PodSpec, TopologySpreadConstraint,
    WeightedPodAffinityTerm,
};

const NAMESPACE_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
                                 '-', and must start and end with an alphanumeric character";
const WEIGHT_RANGE: &str = "must be in the range 1-100";

pub(super) fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    if let Some(affinity) = &spec.affinity {
        let at = format!("{path}.affinity");
        if let Some(node) = &affinity.node_affinity {
            let at = format!("{at}.nodeAffinity");
            if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
                node_selector(
                    required,
                    &format!("{at}.requiredDuringSchedulingIgnoredDuringExecution"),
                    errors,
                );
            }
            let preferred = node
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten();
            for (i, term) in preferred.enumerate() {
                let at = format!("{at}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
                weight(term.weight, &at, errors);
                node_selector_term(&term.preference, &format!("{at}.preference"), errors);
            }
        }
        let pod_terms = [
            (
                "podAffinity",
                affinity.pod_affinity.as_ref().map(|a| {
                    (
                        &a.required_during_scheduling_ignored_during_execution,
                        &a.preferred_during_scheduling_ignored_during_execution,
                    )
                }),
            ),
            (
                "podAntiAffinity",
                affinity.pod_anti_affinity.as_ref().map(|a| {
                    (
                        &a.required_during_scheduling_ignored_during_execution,
                        &a.preferred_during_scheduling_ignored_during_execution,
                    )
                }),
            ),
        ];
        for (name, terms) in pod_terms {
            let Some((required, preferred)) = terms else { continue };
            let at = format!("{at}.{name}");
            for (i, term) in required.iter().flatten().enumerate() {
                pod_affinity_term(
                    term,
                    &format!("{at}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"),
                    errors,
                );
            }
            for (i, term) in preferred.iter().flatten().enumerate() {
                weighted_pod_affinity_term(
                    term,
                    &format!("{at}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"),
                    errors,
                );
            }
        }
    }
    topology_spread_constraints(
        spec.topology_spread_constraints.as_deref().unwrap_or_default(),
        path,
        errors,
    );
}

fn weight(weight: i32, at: &str, errors: &mut Errors) {
    if !(1..=100).contains(&weight) {
        err(
            errors,
            format!("{at}.weight"),
            format!("Invalid value: {weight}: {WEIGHT_RANGE}"),
        );
    }
}

fn label_name(key: &str, at: &str, errors: &mut Errors) {
    for problem in qualified_name_problems(key) {
        err(errors, at, format!("Invalid value: {key:?}: {problem}"));
    }
}

fn node_selector(selector: &NodeSelector, at: &str, errors: &mut Errors) {
    if selector.node_selector_terms.is_empty() {
        err(
            errors,
            format!("{at}.nodeSelectorTerms"),
            "Required value: must have at least one node selector term",
        );
    }
    for (i, term) in selector.node_selector_terms.iter().enumerate() {
        node_selector_term(term, &format!("{at}.nodeSelectorTerms[{i}]"), errors);
    }
}

fn node_selector_term(term: &NodeSelectorTerm, at: &str, errors: &mut Errors) {
    for (i, requirement) in term.match_expressions.iter().flatten().enumerate() {
        node_selector_requirement(requirement, &format!("{at}.matchExpressions[{i}]"), errors);
    }
    for (i, requirement) in term.match_fields.iter().flatten().enumerate() {
        node_field_requirement(requirement, &format!("{at}.matchFields[{i}]"), errors);
    }
}

/// A label requirement on nodes. Kubernetes leaves a `Gt`/`Lt` bound that is not an
/// integer to the scheduler, which then matches no node; berth refuses it.
fn node_selector_requirement(requirement: &NodeSelectorRequirement, at: &str, errors: &mut Errors) {
    let values = requirement.values.as_deref().unwrap_or_default();
    let values_at = format!("{at}.values");
    match requirement.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => err(
            errors,
            values_at,
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ),
        "Exists" | "DoesNotExist" if !values.is_empty() => err(
            errors,
            values_at,
            "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        "Gt" | "Lt" if values.len() != 1 => err(
            errors,
            values_at,
            "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
        ),
        "Gt" | "Lt" if values[0].parse::<i64>().is_err() => err(
            errors,
            format!("{values_at}[0]"),
            format!(
                "Invalid value: {:?}: must be an integer for `operator` 'Lt' or 'Gt'",
                values[0]
            ),
        ),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        other => err(
            errors,
            format!("{at}.operator"),
            format!("Invalid value: {other:?}: not a valid selector operator"),
        ),
    }
    label_name(&requirement.key, &format!("{at}.key"), errors);
}

/// A field requirement on nodes: `metadata.name` alone, `In` or `NotIn` one name.
fn node_field_requirement(requirement: &NodeSelectorRequirement, at: &str, errors: &mut Errors) {
    let values = requirement.values.as_deref().unwrap_or_default();
    match requirement.operator.as_str() {
        "In" | "NotIn" if values.len() != 1 => err(
            errors,
            format!("{at}.values"),
            "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
        ),
        "In" | "NotIn" => {}
        other => err(
            errors,
            format!("{at}.operator"),
            format!("Invalid value: {other:?}: not a valid selector operator"),
        ),
    }
    if requirement.key != "metadata.name" {
        err(
            errors,
            format!("{at}.key"),
            format!("Invalid value: {:?}: not a valid field selector key", requirement.key),
        );
    }
}

/// A label selector: keys that are label names, operators with the values they take.
fn label_selector(selector: &LabelSelector, at: &str, errors: &mut Errors) {
    for (key, value) in selector.match_labels.iter().flatten() {
        label_name(key, &format!("{at}.matchLabels"), errors);
        let is_edge_alphanumeric = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
        let is_valid = value.len() <= 63
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && is_edge_alphanumeric(value.chars().next())
            && is_edge_alphanumeric(value.chars().last());
        if !is_valid {
            err(
                errors,
                format!("{at}.matchLabels"),
                format!(
                    "Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric \
                     characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ),
            );
        }
    }
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{at}.matchExpressions[{i}]");
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => err(
                errors,
                format!("{at}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => err(
                errors,
                format!("{at}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => err(
                errors,
                format!("{at}.operator"),
                format!("Invalid value: {other:?}: not a valid selector operator"),
            ),
        }
        label_name(&requirement.key, &format!("{at}.key"), errors);
    }
}

fn pod_affinity_term(term: &PodAffinityTerm, at: &str, errors: &mut Errors) {
    if let Some(selector) = &term.label_selector {
        label_selector(selector, &format!("{at}.labelSelector"), errors);
    }
    if let Some(selector) = &term.namespace_selector {
        label_selector(selector, &format!("{at}.namespaceSelector"), errors);
    }
    for (i, namespace) in term.namespaces.iter().flatten().enumerate() {
        if !is_dns_label(namespace) {
            err(
                errors,
                format!("{at}.namespaces[{i}]"),
                format!("Invalid value: {namespace:?}: {NAMESPACE_MESSAGE}"),
            );
        }
    }
    if term.topology_key.is_empty() {
        err(errors, format!("{at}.topologyKey"), "Required value: can not be empty");
    } else {
        label_name(&term.topology_key, &format!("{at}.topologyKey"), errors);
    }
    let match_keys = term.match_label_keys.as_deref().unwrap_or_default();
    let mismatch_keys = term.mismatch_label_keys.as_deref().unwrap_or_default();
    let selector = term.label_selector.as_ref();
    label_keys(match_keys, selector, true, &format!("{at}.matchLabelKeys"), errors);
    label_keys(
        mismatch_keys,
        selector,
        false,
        &format!("{at}.mismatchLabelKeys"),
        errors,
    );
    for (i, key) in match_keys.iter().enumerate() {
        if mismatch_keys.contains(key) {
            err(
                errors,
                format!("{at}.matchLabelKeys[{i}]"),
                format!("Invalid value: {key:?}: exists in both matchLabelKeys and mismatchLabelKeys"),
            );
        }
    }
}

/// `matchLabelKeys` or `mismatchLabelKeys` of a pod affinity term: label names, and
/// only with a `labelSelector`; a key of `matchLabelKeys` may not be one the
/// selector already selects by. (Kubernetes merges the keys into the stored
/// selector on create; berth keeps them apart and the scheduler applies them, to
/// the same effect.)
fn label_keys(keys: &[String], selector: Option<&LabelSelector>, is_match: bool, at: &str, errors: &mut Errors) {
    if keys.is_empty() {
        return;
    }
    let Some(selector) = selector else {
        err(
            errors,
            at,
            "Forbidden: must not be specified when labelSelector is not set",
        );
        return;
    };
    for (i, key) in keys.iter().enumerate() {
        let at = format!("{at}[{i}]");
        label_name(key, &at, errors);
        let in_selector = selector.match_labels.iter().flatten().any(|(k, _)| k == key)
            || selector.match_expressions.iter().flatten().any(|r| &r.key == key);
        if is_match && in_selector {
            err(
                errors,
                at,
                format!("Invalid value: {key:?}: exists in both matchLabelKeys and labelSelector"),
            );
        }
    }
}

fn weighted_pod_affinity_term(term: &WeightedPodAffinityTerm, at: &str, errors: &mut Errors) {
    weight(term.weight, at, errors);
    pod_affinity_term(&term.pod_affinity_term, &format!("{at}.podAffinityTerm"), errors);
}

fn topology_spread_constraints(constraints: &[TopologySpreadConstraint], path: &str, errors: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, c) in constraints.iter().enumerate() {
        let at = format!("{path}.topologySpreadConstraints[{i}]");
        if c.max_skew <= 0 {
            err(
                errors,
                format!("{at}.maxSkew"),
                format!("Invalid value: {}: must be greater than zero", c.max_skew),
            );
        }
        if c.topology_key.is_empty() {
            err(errors, format!("{at}.topologyKey"), "Required value: can not be empty");
        } else {
            label_name(&c.topology_key, &format!("{at}.topologyKey"), errors);
        }
        let when = c.when_unsatisfiable.as_str();
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&when) {
            err(
                errors,
                format!("{at}.whenUnsatisfiable"),
                format!("Unsupported value: {when:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\""),
            );
        }
        if !seen.insert((c.topology_key.as_str(), when)) {
            err(
                errors,
                format!("{at}.{{topologyKey, whenUnsatisfiable}}"),
                format!("Duplicate value: \"{{{}, {when}}}\"", c.topology_key),
            );
        }
        if let Some(min_domains) = c.min_domains {
            let at = format!("{at}.minDomains");
            if min_domains <= 0 {
                err(
                    errors,
                    &at,
                    format!("Invalid value: {min_domains}: must be greater than zero"),
                );
            }
            if when != "DoNotSchedule" {
                err(
                    errors,
                    &at,
                    format!(
                        "Invalid value: {min_domains}: can only use minDomains if whenUnsatisfiable=DoNotSchedule, \
                         not {when}"
                    ),
                );
            }
        }
        if let Some(selector) = &c.label_selector {
            label_selector(selector, &format!("{at}.labelSelector"), errors);
        }
        match_label_keys(c, &format!("{at}.matchLabelKeys"), errors);
        for (field, policy) in [
            ("nodeAffinityPolicy", &c.node_affinity_policy),
            ("nodeTaintsPolicy", &c.node_taints_policy),
        ] {
            if let Some(policy) = policy.as_deref()
                && !["Honor", "Ignore"].contains(&policy)
            {
                err(
                    errors,
                    format!("{at}.{field}"),
                    format!("Unsupported value: {policy:?}: supported values: \"Honor\", \"Ignore\""),
                );
            }
        }
    }
}

/// `matchLabelKeys`: label names, with a `labelSelector`, none of its keys.
fn match_label_keys(c: &TopologySpreadConstraint, at: &str, errors: &mut Errors) {
    let keys = c.match_label_keys.as_deref().unwrap_or_default();
    if keys.is_empty() {
        return;
    }
    let mut selector_keys = BTreeSet::new();
    match &c.label_selector {
        Some(selector) => {
            selector_keys.extend(selector.match_labels.iter().flatten().map(|(k, _)| k.as_str()));
            selector_keys.extend(selector.match_expressions.iter().flatten().map(|r| r.key.as_str()));
        }
        None => err(
            errors,
            at,
            "Forbidden: must not be specified when labelSelector is not set",
        ),
    }
    for (i, key) in keys.iter().enumerate() {
        let at = format!("{at}[{i}]");
        label_name(key, &at, errors);
        if selector_keys.contains(key.as_str()) {
            err(
                errors,
                at,
                format!("Invalid value: {key:?}: exists in both matchLabelKeys and labelSelector"),
            );
        }
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
