//! Authorization: whether the user of a request may do what it asks. The modes of
//! `--authorization-mode` are asked in order, as kube-apiserver asks its
//! authorizers: `AlwaysAllow` allows everything; `Node` allows a node's agent what
//! its node needs (node.rs) and has no opinion otherwise; `RBAC` allows what a role
//! bound to the user allows (members of `system:masters` may do anything) and
//! otherwise has no opinion. A request no mode allows is refused (403), with
//! Kubernetes' words, and the reasons the modes gave after a colon:
//!
//! ```text
//! pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team-b"
//! nodes "n1" is forbidden: User "alice" cannot get resource "nodes" in API group "" at the cluster scope
//! forbidden: User "system:anonymous" cannot get path "/apis"
//! secrets "s" is forbidden: User "system:node:n2" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node "n2" and this object
//! ```
//!
//! A request without a [`UserInfo`] is `system:anonymous` in `system:unauthenticated`.

pub mod attributes;
pub mod cache;
pub mod escalation;
pub mod node;
pub mod node_graph;

use std::sync::Arc;
use std::time::Duration;

use berth_api::kinds::qualify;
use berth_api::rbac::{rule_allows_path, rule_allows_resource};
use serde_json::json;

pub use attributes::{Attributes, ResourceAttributes};
pub use cache::RbacCache;
pub use node_graph::NodeGraph;

use super::user::{MASTERS, UserInfo};
use crate::status::ApiError;

/// One of `--authorization-mode`'s modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    Node,
    Rbac,
}

/// kube-apiserver's default is `AlwaysAllow` when nothing is configured; berth keeps
/// it until requests carry credentials.
pub const DEFAULT_MODES: &[Mode] = &[Mode::AlwaysAllow];

/// What `berth server` and `berth up` use once requests carry credentials.
pub const SECURE_MODES: &[Mode] = &[Mode::Node, Mode::Rbac];

/// Parses `--authorization-mode` (`RBAC`, `Node,RBAC`, `AlwaysAllow,RBAC`).
pub fn parse_modes(text: &str) -> Result<Vec<Mode>, String> {
    let mut modes = Vec::new();
    for word in text.split(',').map(str::trim) {
        let mode = match word {
            "AlwaysAllow" => Mode::AlwaysAllow,
            "RBAC" => Mode::Rbac,
            "Node" => Mode::Node,
            "ABAC" | "Webhook" | "AlwaysDeny" => {
                return Err(format!(
                    "authorization mode {word:?} is not implemented by berth yet: supported modes: \"AlwaysAllow\", \"Node\", \"RBAC\""
                ));
            }
            "" => return Err("authorization modes must not be empty".into()),
            other => {
                return Err(format!(
                    "authorization mode {other:?} is not a valid mode: supported modes: \"AlwaysAllow\", \"Node\", \"RBAC\""
                ));
            }
        };
        if modes.contains(&mode) {
            return Err(format!("authorization mode {word:?} is given twice"));
        }
        modes.push(mode);
    }
    Ok(modes)
}

/// What the authorizer decides, and why (a review's `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The API server's authorizer: its modes and the caches they read (RBAC's roles
/// and bindings, Node's pods and claims).
#[derive(Clone)]
pub struct Authorizer {
    modes: Vec<Mode>,
    rbac: Option<Arc<RbacCache>>,
    node: Option<Arc<NodeGraph>>,
}

/// How long a request waits for the cache's first lists before it is refused 503.
const LIST_WAIT: Duration = Duration::from_secs(10);

impl Authorizer {
    pub fn new(modes: &[Mode]) -> Authorizer {
        Authorizer {
            modes: modes.to_vec(),
            rbac: modes.contains(&Mode::Rbac).then(RbacCache::new),
            node: modes.contains(&Mode::Node).then(NodeGraph::new),
        }
    }

    /// The modes, in the order they are asked.
    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }

    /// Whether RBAC is one of the modes (its escalation checks apply then).
    pub fn rbac(&self) -> Option<&Arc<RbacCache>> {
        self.rbac.as_ref()
    }

    /// The Node mode's graph, if Node is one of the modes.
    pub fn node_graph(&self) -> Option<&Arc<NodeGraph>> {
        self.node.as_ref()
    }

    /// Whether every request is allowed without looking (the first mode allows all).
    pub fn allows_all(&self) -> bool {
        self.modes.first() == Some(&Mode::AlwaysAllow)
    }

    /// Starts the cache's reflectors.
    pub fn start(&self, kv: &berth_client::kv::Kv) {
        if let Some(cache) = &self.rbac {
            cache.start(kv);
        }
        if let Some(graph) = &self.node {
            graph.start(kv);
        }
    }

    /// Waits for the cache's first lists (the first requests after a start).
    pub async fn ready(&self) -> Result<(), ApiError> {
        if self.allows_all() {
            return Ok(());
        }
        if let Some(cache) = &self.rbac
            && !cache.wait_listed(LIST_WAIT).await
        {
            return Err(ApiError::unavailable(
                "the authorizer has not read the roles and bindings from the store yet",
            ));
        }
        if let Some(graph) = &self.node
            && !graph.wait_listed(LIST_WAIT).await
        {
            return Err(ApiError::unavailable(
                "the authorizer has not read the pods and claims from the store yet",
            ));
        }
        Ok(())
    }

    /// Asks each mode in order; a refusal's reason is the modes' reasons, one a line.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        let mut reasons = Vec::new();
        for mode in &self.modes {
            match mode {
                Mode::AlwaysAllow => {
                    return Decision {
                        allowed: true,
                        reason: String::new(),
                    };
                }
                Mode::Node => match self.node.as_ref().map(|g| node::decide(g, user, attributes)) {
                    Some(Ok(())) => {
                        return Decision {
                            allowed: true,
                            reason: String::new(),
                        };
                    }
                    Some(Err(reason)) if !reason.is_empty() => reasons.push(reason),
                    _ => {}
                },
                Mode::Rbac => {
                    if user.in_group(MASTERS) {
                        return Decision {
                            allowed: true,
                            reason: String::new(),
                        };
                    }
                    if let Some(reason) = self.rbac.as_ref().and_then(|c| rbac_allows(c, user, attributes)) {
                        return Decision { allowed: true, reason };
                    }
                }
            }
        }
        Decision {
            allowed: false,
            reason: reasons.join("\n"),
        }
    }

    /// `Ok` if every one of `attributes` is allowed, else the 403 of the first that
    /// is not. A node refused something about pods is asked again after the pods
    /// concerned are read from the store (`kv`), in case the graph lags.
    pub async fn check(
        &self,
        kv: &berth_client::kv::Kv,
        user: &UserInfo,
        attributes: &[Attributes],
    ) -> Result<(), ApiError> {
        for attributes in attributes {
            let mut decision = self.authorize(user, attributes);
            if !decision.allowed
                && let Some(graph) = &self.node
                && node::node_name(user).is_some()
                && let Some((namespace, pod)) = node::pods_concerned(attributes)
            {
                graph.refresh(kv, namespace, pod).await;
                decision = self.authorize(user, attributes);
            }
            if !decision.allowed {
                return Err(forbidden_because(user, attributes, &decision.reason));
            }
        }
        Ok(())
    }
}

/// The reason RBAC allows the request (`RBAC: allowed by ...`), if it does.
fn rbac_allows(cache: &RbacCache, user: &UserInfo, attributes: &Attributes) -> Option<String> {
    let mut reason = None;
    cache.visit_rules(user, attributes.namespace(), &mut |source, rule| {
        let allows = match &attributes.resource {
            Some(r) => rule_allows_resource(rule, &attributes.verb, &r.group, &r.resource, &r.subresource, &r.name),
            None => rule_allows_path(rule, &attributes.verb, &attributes.path),
        };
        if allows {
            reason = Some(format!("RBAC: allowed by {}", source()));
        }
        allows
    });
    reason
}

/// Kubernetes' `forbiddenMessage`, without the final period as of 1.14.
pub fn forbidden_message(user: &UserInfo, attributes: &Attributes) -> String {
    let Some(r) = &attributes.resource else {
        return format!(
            "User {:?} cannot {} path {:?}",
            user.name, attributes.verb, attributes.path
        );
    };
    let resource = if r.subresource.is_empty() {
        r.resource.clone()
    } else {
        format!("{}/{}", r.resource, r.subresource)
    };
    let scope = if r.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", r.namespace)
    };
    format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.name, attributes.verb, r.group
    )
}

/// The 403 of a refused request, as `apierrors.NewForbidden` words it.
pub fn forbidden(user: &UserInfo, attributes: &Attributes) -> ApiError {
    forbidden_because(user, attributes, "")
}

/// The 403 of a request refused with the authorizers' `reason` (none: "").
pub fn forbidden_because(user: &UserInfo, attributes: &Attributes, reason: &str) -> ApiError {
    let mut why = forbidden_message(user, attributes);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    match &attributes.resource {
        None => ApiError::new(403, "Forbidden", format!("forbidden: {why}")).with_details(json!({})),
        Some(r) => {
            let resource = qualify(&r.resource, &r.group);
            let message = if r.name.is_empty() {
                format!("{resource} is forbidden: {why}")
            } else {
                format!("{resource} {:?} is forbidden: {why}", r.name)
            };
            let mut details = json!({"group": r.group, "kind": r.resource});
            if !r.name.is_empty() {
                details["name"] = r.name.clone().into();
            }
            ApiError::new(403, "Forbidden", message).with_details(details)
        }
    }
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
