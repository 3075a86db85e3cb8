//! The user a request is made as, as Kubernetes' authenticators describe it: a name,
//! a uid, groups and extra attributes. Authorization and the audit log read it; the
//! reviews (`TokenReview`, `SubjectAccessReview`) carry it on the wire.

use std::collections::BTreeMap;

/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group whose members may do anything, whatever RBAC says (Kubernetes'
/// superuser group, as in kubeadm's and k3s's admin certificates).
pub const MASTERS: &str = "system:masters";
/// The group of every node's agent; its user is `system:node:<node name>`.
pub const NODES: &str = "system:nodes";
/// The prefix of agents' user names.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The prefix of ServiceAccounts' user names: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// The group of every ServiceAccount.
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// An authenticated user in `groups` (and in `system:authenticated`, which every
    /// authenticated user is in, as Kubernetes adds it).
    pub fn authenticated(name: impl Into<String>, groups: impl IntoIterator<Item = String>) -> UserInfo {
        let mut groups: Vec<String> = groups.into_iter().collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        UserInfo {
            name: name.into(),
            groups,
            ..UserInfo::default()
        }
    }

    /// The user of a request that brought no credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: ANONYMOUS.to_string(),
            groups: vec![UNAUTHENTICATED.to_string()],
            ..UserInfo::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node an agent's user speaks for (`system:node:<name>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        self.name
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|_| self.in_group(NODES))
    }

    /// The (namespace, name) of a ServiceAccount's user.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        self.name.strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)?.split_once(':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_service_accounts_are_told_by_name_and_group() {
        let agent = UserInfo::authenticated("system:node:n1", [NODES.to_string()]);
        assert_eq!(agent.node_name(), Some("n1"));
        assert!(agent.in_group(AUTHENTICATED));
        let pretender = UserInfo::authenticated("system:node:n1", []);
        assert_eq!(pretender.node_name(), None, "the name alone is not a node");
        let sa = UserInfo::authenticated("system:serviceaccount:team-a:builder", [SERVICE_ACCOUNTS.to_string()]);
        assert_eq!(sa.service_account(), Some(("team-a", "builder")));
        assert!(!UserInfo::anonymous().in_group(AUTHENTICATED));
    }
}
