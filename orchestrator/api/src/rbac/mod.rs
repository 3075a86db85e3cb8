//! Role-based access control's shared rules (`rbac.authorization.k8s.io/v1`): the
//! checks of policy rules and binding subjects the four kinds share, names, whether a
//! rule allows a request ([`rule_allows`], pure), aggregation of ClusterRoles
//! (aggregation.rs) and the default roles and bindings (bootstrap.rs).

pub mod aggregation;
pub mod bootstrap;

pub use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::kinds::KindDescriptor;
use crate::validation::FieldError;

/// The API group of the four kinds, and of `User` and `Group` subjects.
pub const GROUP: &str = "rbac.authorization.k8s.io";
/// Matches every verb, group, resource or non-resource URL.
pub const ALL: &str = "*";
/// The annotation of a default role or binding the API server keeps up to date at
/// start (`"true"`); a user who sets it `"false"` keeps their changes.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
pub const USER: &str = "User";
pub const GROUP_KIND: &str = "Group";
pub const SERVICE_ACCOUNT: &str = "ServiceAccount";

/// Whether the kind's names are path segments (RBAC's names: `system:basic-user`)
/// rather than DNS subdomains.
pub fn names_are_path_segments(kind: &KindDescriptor) -> bool {
    kind.group == GROUP
}

/// Why a path segment name is refused (`.`, `..`, or containing `/` or `%`), as
/// Kubernetes' `ValidatePathSegmentName`.
pub fn path_segment_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name == "." || name == ".." {
        problems.push(format!("may not be '{name}'"));
    }
    for illegal in ["/", "%"] {
        if name.contains(illegal) {
            problems.push(format!("may not contain '{illegal}'"));
        }
    }
    problems
}

fn err(errors: &mut Vec<FieldError>, field: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

fn quoted_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// A rule of a Role (`namespaced`) or ClusterRole, as Kubernetes' `ValidatePolicyRule`.
pub fn validate_rule(rule: &PolicyRule, namespaced: bool, path: &str, errors: &mut Vec<FieldError>) {
    if rule.verbs.is_empty() {
        err(
            errors,
            format!("{path}.verbs"),
            "required: verbs must contain at least one value",
        );
    }
    let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
    let is_set = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if !urls.is_empty() {
        if namespaced {
            err(
                errors,
                format!("{path}.nonResourceURLs"),
                format!(
                    "{}: namespaced rules cannot apply to non-resource URLs",
                    quoted_list(urls)
                ),
            );
        }
        if is_set(&rule.api_groups) || is_set(&rule.resources) || is_set(&rule.resource_names) {
            err(
                errors,
                format!("{path}.nonResourceURLs"),
                format!(
                    "{}: rules cannot apply to both regular resources and non-resource URLs",
                    quoted_list(urls)
                ),
            );
        }
        return;
    }
    if !is_set(&rule.api_groups) {
        err(
            errors,
            format!("{path}.apiGroups"),
            "required: resource rules must supply at least one api group",
        );
    }
    if !is_set(&rule.resources) {
        err(
            errors,
            format!("{path}.resources"),
            "required: resource rules must supply at least one resource",
        );
    }
}

/// The rules of a Role or ClusterRole.
pub fn validate_rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool, errors: &mut Vec<FieldError>) {
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        validate_rule(rule, namespaced, &format!("rules[{i}]"), errors);
    }
}

/// A binding's `roleRef` (`kinds`: what it may name) and subjects (`namespaced`: a
/// RoleBinding's ServiceAccount subjects default to its namespace).
pub fn validate_binding(
    role_ref: &RoleRef,
    subjects: Option<&Vec<Subject>>,
    kinds: &[&str],
    namespaced: bool,
    errors: &mut Vec<FieldError>,
) {
    if role_ref.api_group != GROUP {
        err(
            errors,
            "roleRef.apiGroup",
            format!(
                "Unsupported value: {:?}: supported values: \"{GROUP}\"",
                role_ref.api_group
            ),
        );
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        let supported: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
        err(
            errors,
            "roleRef.kind",
            format!(
                "Unsupported value: {:?}: supported values: {}",
                role_ref.kind,
                supported.join(", ")
            ),
        );
    }
    if role_ref.name.is_empty() {
        err(errors, "roleRef.name", "required");
    } else {
        for problem in path_segment_problems(&role_ref.name) {
            err(errors, "roleRef.name", problem);
        }
    }
    for (i, subject) in subjects.into_iter().flatten().enumerate() {
        validate_subject(subject, namespaced, &format!("subjects[{i}]"), errors);
    }
}

/// One subject, as Kubernetes' `ValidateRoleBindingSubject`.
fn validate_subject(subject: &Subject, namespaced: bool, path: &str, errors: &mut Vec<FieldError>) {
    if subject.name.is_empty() {
        err(errors, format!("{path}.name"), "required");
    }
    let api_group = subject.api_group.as_deref().unwrap_or_default();
    match subject.kind.as_str() {
        SERVICE_ACCOUNT => {
            if !subject.name.is_empty() && !crate::validation::is_dns_subdomain(&subject.name) {
                err(
                    errors,
                    format!("{path}.name"),
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or \
                     '.', and must start and end with an alphanumeric character",
                );
            }
            if !api_group.is_empty() {
                err(
                    errors,
                    format!("{path}.apiGroup"),
                    format!("Unsupported value: {api_group:?}: supported values: \"\""),
                );
            }
            if !namespaced && subject.namespace.as_deref().unwrap_or_default().is_empty() {
                err(errors, format!("{path}.namespace"), "required");
            }
        }
        USER | GROUP_KIND => {
            if api_group != GROUP {
                err(
                    errors,
                    format!("{path}.apiGroup"),
                    format!("Unsupported value: {api_group:?}: supported values: \"{GROUP}\""),
                );
            }
        }
        other => err(
            errors,
            format!("{path}.kind"),
            format!(
                "Unsupported value: {other:?}: supported values: \"{SERVICE_ACCOUNT}\", \"{USER}\", \"{GROUP_KIND}\""
            ),
        ),
    }
}

/// What Kubernetes' v1 defaults fill in on a binding: the roleRef's group, and the
/// group of `User` and `Group` subjects.
pub fn default_binding(role_ref: &mut RoleRef, subjects: Option<&mut Vec<Subject>>) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = GROUP.into();
    }
    for subject in subjects.into_iter().flatten() {
        if subject.api_group.is_none() && matches!(subject.kind.as_str(), USER | GROUP_KIND) {
            subject.api_group = Some(GROUP.into());
        }
    }
}

/// The table cells a binding's wide columns show: users, groups and service
/// accounts (`ns/name`), comma-separated.
pub fn subject_cells(subjects: Option<&Vec<Subject>>) -> [String; 3] {
    let of = |kind: &str| -> String {
        let names: Vec<String> = subjects
            .into_iter()
            .flatten()
            .filter(|s| s.kind == kind)
            .map(|s| match (kind, s.namespace.as_deref()) {
                (SERVICE_ACCOUNT, Some(ns)) => format!("{ns}/{}", s.name),
                _ => s.name.clone(),
            })
            .collect();
        names.join(", ")
    };
    [of(USER), of(GROUP_KIND), of(SERVICE_ACCOUNT)]
}

/// Whether `rule` allows a resource request: the verb, the group, the resource
/// (`pods`, or with its subresource `pods/log`; `*` any resource, `*/scale` a
/// subresource of any) and the name (`resourceNames`; a rule that names some never
/// allows a request without a name, such as a list or a create).
pub fn rule_allows_resource(
    rule: &PolicyRule,
    verb: &str,
    group: &str,
    resource: &str,
    subresource: &str,
    name: &str,
) -> bool {
    verb_matches(rule, verb)
        && group_matches(rule, group)
        && resource_matches(rule, resource, subresource)
        && name_matches(rule, name)
}

/// Whether `rule` allows a request for a non-resource URL (`/healthz`; a rule's
/// trailing `*` matches any rest of the path).
pub fn rule_allows_path(rule: &PolicyRule, verb: &str, path: &str) -> bool {
    verb_matches(rule, verb)
        && rule
            .non_resource_urls
            .iter()
            .flatten()
            .any(|url| url_matches(url, path))
}

pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().flatten().any(|g| g == ALL || g == group)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    let combined = if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    };
    rule.resources
        .iter()
        .flatten()
        .any(|r| r == ALL || *r == combined || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource)))
}

fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.iter().any(|n| n == name),
    }
}

fn url_matches(rule_url: &str, path: &str) -> bool {
    if rule_url == ALL || rule_url == path {
        return true;
    }
    rule_url
        .strip_suffix('*')
        .is_some_and(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;
