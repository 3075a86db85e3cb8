//! The RBAC objects the authorizer reads, kept in memory by four reflectors (list,
//! then watch) so that no request reads the store to be authorized. A change to a
//! role or binding takes effect once its watch event arrives here, as in
//! Kubernetes, whose authorizer reads informers too.
//!
//! [`RbacCache::rules_for`] is Kubernetes' rule resolver: the rules of the
//! ClusterRoleBindings whose subjects include the user, then (in a namespace) those
//! of the namespace's RoleBindings, each rule with the binding that grants it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_api::kinds::cluster_role::CLUSTER_ROLE;
use berth_api::kinds::cluster_role_binding::CLUSTER_ROLE_BINDING;
use berth_api::kinds::role::ROLE;
use berth_api::kinds::role_binding::ROLE_BINDING;
use berth_api::rbac::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use berth_client::kv::{Event, Kv, Record};
use berth_client::reflector::{Sink, reflect};
use serde::de::DeserializeOwned;

use crate::auth::user::{SERVICE_ACCOUNT_USER_PREFIX, UserInfo};

#[derive(Default)]
struct Objects {
    roles: BTreeMap<String, Role>,
    cluster_roles: BTreeMap<String, ClusterRole>,
    role_bindings: BTreeMap<String, RoleBinding>,
    cluster_role_bindings: BTreeMap<String, ClusterRoleBinding>,
}

/// The four kinds' objects by store key, and how many of the four have been listed.
pub struct RbacCache {
    objects: RwLock<Objects>,
    listed: tokio::sync::watch::Sender<u8>,
}

#[derive(Clone, Copy)]
enum Which {
    Roles,
    ClusterRoles,
    RoleBindings,
    ClusterRoleBindings,
}

struct KindSink {
    cache: Arc<RbacCache>,
    which: Which,
    listed: std::sync::atomic::AtomicBool,
}

fn parse<T: DeserializeOwned>(record: &Record) -> Option<T> {
    match serde_json::from_slice(&record.value) {
        Ok(object) => Some(object),
        Err(e) => {
            tracing::warn!(key = %record.key, error = %e, "an RBAC object the authorizer cannot read is ignored");
            None
        }
    }
}

fn put<T: DeserializeOwned>(map: &mut BTreeMap<String, T>, record: &Record) {
    match parse(record) {
        Some(object) => map.insert(record.key.clone(), object),
        None => map.remove(&record.key),
    };
}

impl KindSink {
    fn put(&self, objects: &mut Objects, record: &Record) {
        match self.which {
            Which::Roles => put(&mut objects.roles, record),
            Which::ClusterRoles => put(&mut objects.cluster_roles, record),
            Which::RoleBindings => put(&mut objects.role_bindings, record),
            Which::ClusterRoleBindings => put(&mut objects.cluster_role_bindings, record),
        }
    }

    fn remove(&self, objects: &mut Objects, key: &str) {
        match self.which {
            Which::Roles => drop(objects.roles.remove(key)),
            Which::ClusterRoles => drop(objects.cluster_roles.remove(key)),
            Which::RoleBindings => drop(objects.role_bindings.remove(key)),
            Which::ClusterRoleBindings => drop(objects.cluster_role_bindings.remove(key)),
        }
    }
}

impl Sink for KindSink {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        {
            let mut objects = self.cache.objects.write().unwrap_or_else(|e| e.into_inner());
            match self.which {
                Which::Roles => objects.roles.clear(),
                Which::ClusterRoles => objects.cluster_roles.clear(),
                Which::RoleBindings => objects.role_bindings.clear(),
                Which::ClusterRoleBindings => objects.cluster_role_bindings.clear(),
            }
            for record in &records {
                self.put(&mut objects, record);
            }
        }
        if !self.listed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.cache.listed.send_modify(|n| *n += 1);
        }
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut objects = self.cache.objects.write().unwrap_or_else(|e| e.into_inner());
        for event in &events {
            match event {
                Event::Put(record) => self.put(&mut objects, record),
                Event::Delete { prev, .. } => self.remove(&mut objects, &prev.key),
            }
        }
    }
}

/// Which binding gives a rule, as Kubernetes' reasons name it:
/// `ClusterRoleBinding "x" of ClusterRole "y" to User "alice"`.
fn describe(binding_kind: &str, binding: &str, role_ref: &RoleRef, subject: &Subject, namespace: &str) -> String {
    let subject = match subject.kind.as_str() {
        berth_api::rbac::SERVICE_ACCOUNT => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            format!("{} {:?}", subject.kind, format!("{}/{ns}", subject.name))
        }
        _ => format!("{} {:?}", subject.kind, subject.name),
    };
    format!(
        "{binding_kind} {binding:?} of {} {:?} to {subject}",
        role_ref.kind, role_ref.name
    )
}

/// Whether a binding's subject is the user, as Kubernetes' `appliesToUser`
/// (a ServiceAccount without a namespace is of the binding's).
fn applies_to(subject: &Subject, user: &UserInfo, namespace: &str) -> bool {
    match subject.kind.as_str() {
        berth_api::rbac::USER => user.name == subject.name,
        berth_api::rbac::GROUP_KIND => user.in_group(&subject.name),
        berth_api::rbac::SERVICE_ACCOUNT => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.name == format!("{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{}", subject.name)
        }
        _ => false,
    }
}

impl RbacCache {
    /// An empty cache; [`start`](Self::start) fills it.
    pub fn new() -> Arc<RbacCache> {
        Arc::new(RbacCache {
            objects: Default::default(),
            listed: tokio::sync::watch::channel(0).0,
        })
    }

    /// Lists and watches the four kinds for as long as the process runs.
    pub fn start(self: &Arc<Self>, kv: &Kv) {
        for (kind, which) in [
            (&ROLE, Which::Roles),
            (&CLUSTER_ROLE, Which::ClusterRoles),
            (&ROLE_BINDING, Which::RoleBindings),
            (&CLUSTER_ROLE_BINDING, Which::ClusterRoleBindings),
        ] {
            let sink = Arc::new(KindSink {
                cache: self.clone(),
                which,
                listed: Default::default(),
            });
            tokio::spawn(reflect(kv.clone(), kind.prefix(None), sink, None));
        }
    }

    /// Waits until all four kinds have been listed once, for at most `limit`;
    /// whether they have.
    pub async fn wait_listed(&self, limit: Duration) -> bool {
        let mut listed = self.listed.subscribe();
        tokio::time::timeout(limit, listed.wait_for(|n| *n >= 4))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Calls `visit` with each rule the user holds in `namespace` ("" for cluster
    /// scope only) and a description of the binding that grants it, until `visit`
    /// says it has seen enough (`true`).
    pub fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        visit: &mut dyn FnMut(&dyn Fn() -> String, &PolicyRule) -> bool,
    ) {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        for binding in objects.cluster_role_bindings.values() {
            let Some(subject) = binding.subjects.iter().flatten().find(|s| applies_to(s, user, "")) else {
                continue;
            };
            if binding.role_ref.kind != "ClusterRole" {
                continue;
            }
            let Some(role) = objects.cluster_roles.get(&CLUSTER_ROLE.key("", &binding.role_ref.name)) else {
                continue;
            };
            let name = binding.metadata.name.as_deref().unwrap_or_default();
            for rule in role.rules.iter().flatten() {
                if visit(
                    &|| describe("ClusterRoleBinding", name, &binding.role_ref, subject, ""),
                    rule,
                ) {
                    return;
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        let prefix = ROLE_BINDING.prefix(Some(namespace));
        for (_, binding) in objects
            .role_bindings
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            let Some(subject) = binding
                .subjects
                .iter()
                .flatten()
                .find(|s| applies_to(s, user, namespace))
            else {
                continue;
            };
            let rules = match binding.role_ref.kind.as_str() {
                "Role" => objects
                    .roles
                    .get(&ROLE.key(namespace, &binding.role_ref.name))
                    .and_then(|r| r.rules.as_ref()),
                "ClusterRole" => objects
                    .cluster_roles
                    .get(&CLUSTER_ROLE.key("", &binding.role_ref.name))
                    .and_then(|r| r.rules.as_ref()),
                _ => None,
            };
            let name = format!("{}/{namespace}", binding.metadata.name.as_deref().unwrap_or_default());
            for rule in rules.into_iter().flatten() {
                if visit(
                    &|| describe("RoleBinding", &name, &binding.role_ref, subject, namespace),
                    rule,
                ) {
                    return;
                }
            }
        }
    }

    /// Every rule the user holds in `namespace` (cluster-wide ones included).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        self.visit_rules(user, namespace, &mut |_, rule| {
            rules.push(rule.clone());
            false
        });
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(str::to_string),
            api_group: None,
        }
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let alice = UserInfo::authenticated("alice", ["devs".to_string()]);
        assert!(applies_to(&subject("User", "alice", None), &alice, ""));
        assert!(!applies_to(&subject("User", "bob", None), &alice, ""));
        assert!(applies_to(&subject("Group", "devs", None), &alice, ""));
        assert!(applies_to(&subject("Group", "system:authenticated", None), &alice, ""));
        assert!(!applies_to(
            &subject("Group", "alice", None),
            &alice,
            "a user is not a group"
        ));
        let builder = UserInfo::authenticated("system:serviceaccount:team-a:builder", []);
        let sa = subject("ServiceAccount", "builder", None);
        assert!(applies_to(&sa, &builder, "team-a"), "a RoleBinding's own namespace");
        assert!(!applies_to(&sa, &builder, "team-b"));
        assert!(!applies_to(&sa, &builder, ""), "no namespace, no service account");
        assert!(applies_to(
            &subject("ServiceAccount", "builder", Some("team-a")),
            &builder,
            "team-b"
        ));
        assert!(!applies_to(&subject("Robot", "alice", None), &alice, ""));
    }

    #[test]
    fn a_grant_is_described_as_kubernetes_reasons_name_it() {
        let role_ref = RoleRef {
            api_group: berth_api::rbac::GROUP.into(),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        };
        assert_eq!(
            describe(
                "RoleBinding",
                "b/team-a",
                &role_ref,
                &subject("ServiceAccount", "builder", None),
                "team-a"
            ),
            "RoleBinding \"b/team-a\" of ClusterRole \"edit\" to ServiceAccount \"builder/team-a\""
        );
        assert_eq!(
            describe(
                "ClusterRoleBinding",
                "b",
                &role_ref,
                &subject("Group", "devs", None),
                ""
            ),
            "ClusterRoleBinding \"b\" of ClusterRole \"edit\" to Group \"devs\""
        );
    }
}
