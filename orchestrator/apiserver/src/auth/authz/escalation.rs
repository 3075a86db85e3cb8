//! Escalation prevention, as Kubernetes' RBAC storage has it: a user may write a
//! Role or ClusterRole only with every permission it grants (or with `escalate` on
//! it), and a binding only to a role whose every permission they hold where the
//! binding applies (or with `bind` on that role). Members of `system:masters` are
//! never checked.
//!
//! "Holds" is Kubernetes' `Covers`: each grant broken down to one verb on one
//! resource of one group (and one name) or one non-resource URL, and each of those
//! allowed by some rule the user has.

use berth_api::kinds::cluster_role::CLUSTER_ROLE;
use berth_api::kinds::cluster_role_binding::CLUSTER_ROLE_BINDING;
use berth_api::kinds::role::ROLE;
use berth_api::kinds::role_binding::ROLE_BINDING;
use berth_api::kinds::{KindDescriptor, Object};
use berth_api::meta::MetaExt;
use berth_api::rbac::{self, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef};

use super::{Attributes, Authorizer, ResourceAttributes};
use crate::ApiServer;
use crate::auth::user::{MASTERS, UserInfo};
use crate::status::ApiError;

/// One permission: a single verb on one (group, resource, name) or one URL.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |v: &str| vec![v.to_string()];
    let mut atoms = Vec::new();
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.iter().flatten() {
            atoms.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: Some(one(url)),
                ..Default::default()
            });
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                match rule.resource_names.as_deref() {
                    None | Some([]) => atoms.push(PolicyRule {
                        verbs: one(verb),
                        api_groups: Some(one(group)),
                        resources: Some(one(resource)),
                        ..Default::default()
                    }),
                    Some(names) => atoms.extend(names.iter().map(|name| PolicyRule {
                        verbs: one(verb),
                        api_groups: Some(one(group)),
                        resources: Some(one(resource)),
                        resource_names: Some(one(name)),
                        ..Default::default()
                    })),
                }
            }
        }
    }
    atoms
}

fn has(set: Option<&Vec<String>>, value: &str) -> bool {
    set.into_iter().flatten().any(|v| v == value)
}

/// Whether `owner` allows the one permission `atom` (whose wildcards only wildcards cover).
fn covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let verb = &atom.verbs[0];
    if !(has(Some(&owner.verbs), rbac::ALL) || has(Some(&owner.verbs), verb)) {
        return false;
    }
    if let Some(url) = atom.non_resource_urls.as_ref().and_then(|u| u.first()) {
        return owner.non_resource_urls.iter().flatten().any(|own| {
            own == rbac::ALL || own == url || own.strip_suffix('*').is_some_and(|prefix| url.starts_with(prefix))
        });
    }
    let group = &atom.api_groups.as_ref().expect("a resource atom has a group")[0];
    let resource = &atom.resources.as_ref().expect("a resource atom has a resource")[0];
    let groups = owner.api_groups.as_ref();
    let resources = owner.resources.as_ref();
    let group_ok = has(groups, rbac::ALL) || has(groups, group);
    let resource_ok = has(resources, rbac::ALL)
        || has(resources, resource)
        || resource
            .split_once('/')
            .is_some_and(|(_, sub)| has(resources, &format!("*/{sub}")));
    let name_ok = match owner.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => atom
            .resource_names
            .as_ref()
            .and_then(|n| n.first())
            .is_some_and(|name| names.contains(name)),
    };
    group_ok && resource_ok && name_ok
}

/// The permissions of `wanted` that no rule of `owner` covers.
pub fn missing(owner: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing: Vec<PolicyRule> = Vec::new();
    for atom in wanted.iter().flat_map(breakdown) {
        if !owner.iter().any(|rule| covers(rule, &atom)) && !missing.contains(&atom) {
            missing.push(atom);
        }
    }
    compact(missing)
}

/// Joins the verbs of permissions on the same resource of a group (without names),
/// as Kubernetes' `CompactRules` does for its message.
fn compact(atoms: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut rules: Vec<PolicyRule> = Vec::new();
    for atom in atoms {
        let simple = atom.resource_names.is_none() && atom.non_resource_urls.is_none();
        if simple
            && let Some(same) = rules.iter_mut().find(|r| {
                r.resource_names.is_none()
                    && r.non_resource_urls.is_none()
                    && r.api_groups == atom.api_groups
                    && r.resources == atom.resources
            })
        {
            if !same.verbs.contains(&atom.verbs[0]) {
                same.verbs.push(atom.verbs[0].clone());
            }
            continue;
        }
        rules.push(atom);
    }
    rules
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Kubernetes' `CompactString` of a rule: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}`.
pub fn compact_string(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (name, values) in [
        ("APIGroups", rule.api_groups.as_deref()),
        ("Resources", rule.resources.as_deref()),
        ("NonResourceURLs", rule.non_resource_urls.as_deref()),
        ("ResourceNames", rule.resource_names.as_deref()),
        ("Verbs", Some(rule.verbs.as_slice())),
    ] {
        if let Some(values) = values.filter(|v| !v.is_empty()) {
            parts.push(format!("{name}:{}", go_quoted(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

fn rbac_resource(kind: &KindDescriptor, namespace: &str, name: &str) -> ResourceAttributes {
    ResourceAttributes {
        group: rbac::GROUP.into(),
        version: "v1".into(),
        resource: kind.plural.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// Refuses the write unless `user` holds `rules` in `namespace`.
fn confirm_no_escalation(
    authorizer: &Authorizer,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
    kind: &KindDescriptor,
    name: &str,
) -> Result<(), ApiError> {
    let owned = authorizer
        .rbac()
        .map(|cache| cache.rules_for(user, namespace))
        .unwrap_or_default();
    let missing = missing(&owned, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = missing.iter().map(compact_string).collect();
    let why = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        lines.join("\n")
    );
    Err(ApiError::forbidden(kind, name, &why))
}

/// The rules of the role `role_ref` names, read from the store (a binding written
/// just after its role finds it).
async fn role_rules(api: &ApiServer, role_ref: &RoleRef, namespace: &str) -> Result<Vec<PolicyRule>, ApiError> {
    let (kind, namespace) = if role_ref.kind == "Role" {
        (&ROLE, namespace)
    } else {
        (&CLUSTER_ROLE, "")
    };
    let stored = crate::rest::get(api, kind, namespace, &role_ref.name).await?;
    let rules = if role_ref.kind == "Role" {
        serde_json::from_value::<Role>(stored).map(|r| r.rules)
    } else {
        serde_json::from_value::<ClusterRole>(stored).map(|r| r.rules)
    };
    rules
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::internal(format!("reading {} {:?}: {e}", role_ref.kind, role_ref.name)))
}

/// Checks a create or update of an RBAC object by `user`; other kinds pass.
pub async fn check_write(api: &ApiServer, user: Option<&UserInfo>, object: &Object) -> Result<(), ApiError> {
    let authorizer = &api.authorizer;
    let kind = object.descriptor();
    if kind.group != rbac::GROUP || authorizer.allows_all() {
        return Ok(());
    }
    let anonymous = UserInfo::anonymous();
    let user = user.unwrap_or(&anonymous);
    if user.in_group(MASTERS) {
        return Ok(());
    }
    let (namespace, name) = (object.metadata().namespace(), object.metadata().name());
    let allowed = |verb: &str, attributes: ResourceAttributes| {
        authorizer
            .authorize(user, &Attributes::resource(verb, attributes))
            .allowed
    };
    if let Some(role) = object.downcast_ref::<Role>() {
        if allowed("escalate", rbac_resource(&ROLE, namespace, name)) {
            return Ok(());
        }
        return confirm_no_escalation(
            authorizer,
            user,
            namespace,
            role.rules.as_deref().unwrap_or_default(),
            kind,
            name,
        );
    }
    if let Some(role) = object.downcast_ref::<ClusterRole>() {
        if allowed("escalate", rbac_resource(&CLUSTER_ROLE, "", name)) {
            return Ok(());
        }
        return confirm_no_escalation(
            authorizer,
            user,
            "",
            role.rules.as_deref().unwrap_or_default(),
            kind,
            name,
        );
    }
    let (role_ref, binding_namespace) = if let Some(binding) = object.downcast_ref::<RoleBinding>() {
        (&binding.role_ref, namespace)
    } else if let Some(binding) = object.downcast_ref::<ClusterRoleBinding>() {
        (&binding.role_ref, "")
    } else {
        return Ok(());
    };
    let role_kind = if role_ref.kind == "Role" { &ROLE } else { &CLUSTER_ROLE };
    if allowed("bind", rbac_resource(role_kind, binding_namespace, &role_ref.name)) {
        return Ok(());
    }
    let rules = role_rules(api, role_ref, binding_namespace).await?;
    let binding_kind = if binding_namespace.is_empty() {
        &CLUSTER_ROLE_BINDING
    } else {
        &ROLE_BINDING
    };
    confirm_no_escalation(authorizer, user, binding_namespace, &rules, binding_kind, name)
}

#[cfg(test)]
mod tests {
    use berth_api::rbac::bootstrap::{rule, url_rule};

    use super::*;

    #[test]
    fn what_a_user_does_not_hold_is_named_compactly() {
        let owner = [
            rule(&["get", "list"], &[""], &["pods"]),
            url_rule(&["get"], &["/apis/*"]),
        ];
        assert!(missing(&owner, &[rule(&["get"], &[""], &["pods"])]).is_empty());
        assert!(missing(&owner, &[url_rule(&["get"], &["/apis/apps"])]).is_empty());
        let wanted = [rule(&["get", "create", "delete"], &["", "apps"], &["pods"])];
        let lines: Vec<String> = missing(&owner, &wanted).iter().map(compact_string).collect();
        assert_eq!(
            lines,
            [
                "{APIGroups:[\"apps\"], Resources:[\"pods\"], Verbs:[\"get\" \"create\" \"delete\"]}",
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\" \"delete\"]}"
            ]
        );
        assert_eq!(
            missing(&owner, &[rule(&["*"], &[""], &["pods"])]).len(),
            1,
            "a wildcard is held only as a wildcard"
        );
        let mut named = rule(&["get"], &[""], &["configmaps"]);
        named.resource_names = Some(vec!["a".into()]);
        assert!(missing(&[named.clone()], &[named.clone()]).is_empty());
        assert_eq!(
            missing(&[named], &[rule(&["get"], &[""], &["configmaps"])]).len(),
            1,
            "one name does not give them all"
        );
        let any_status = rule(&["get"], &["apps"], &["*/status"]);
        assert!(missing(&[any_status], &[rule(&["get"], &["apps"], &["deployments/status"])]).is_empty());
    }
}
