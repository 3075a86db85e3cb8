//! The `Node` authorization mode: what a node's agent (user `system:node:<name>` in
//! group `system:nodes`) may do, as Kubernetes' NodeAuthorizer (with the
//! NodeRestriction admission's checks of pods folded in, since the graph already
//! knows each pod's node). Asked before RBAC; a request it does not allow gets no
//! opinion, with its reason, and RBAC decides.
//!
//! ```text
//! nodes          get/list/watch its own (others: RBAC); create, update, patch,
//!                nodes/status update/patch: its own only
//! pods           get, delete, pods/status update/patch, pods/eviction create:
//!                pods bound to it; list/watch with fieldSelector spec.nodeName=<it>
//! secrets, configmaps   get (list/watch of one by name): named by a pod bound to it
//! persistentvolumeclaims get: named by a pod bound to it; persistentvolumes get:
//!                bound to such a claim
//! serviceaccounts/token create: the service account of a pod bound to it
//! anything else  what the `system:node` role allows (services, events, leases,
//!                runtime classes...), as Kubernetes' Node authorizer allows it to
//!                every node; otherwise no opinion
//! ```

use std::sync::LazyLock;

use berth_api::rbac::PolicyRule;
use berth_api::rbac::rule_allows_resource;

use super::Authorizer;
use super::attributes::{Attributes, ResourceAttributes};
use super::node_graph::{NodeGraph, Uses};
use crate::auth::user::UserInfo;
use crate::status::ApiError;
use berth_api::meta::MetaExt;

/// Nodes' user name prefix and group.
pub const NODE_USER_PREFIX: &str = "system:node:";
pub const NODES_GROUP: &str = "system:nodes";

/// The node a user is, as Kubernetes' NodeIdentifier has it: `system:node:<name>`
/// in `system:nodes`, with a name.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.in_group(NODES_GROUP)).then_some(name)
}

/// The Node mode's answer: `Ok` allows, `Err(reason)` is no opinion (the reason,
/// possibly empty, goes into the 403 if no later mode allows).
pub fn decide(graph: &NodeGraph, user: &UserInfo, attributes: &Attributes) -> Result<(), String> {
    let Some(node) = node_name(user) else {
        return Err(String::new());
    };
    let Some(r) = &attributes.resource else {
        return Err(String::new());
    };
    let verb = attributes.verb.as_str();
    match (r.group.as_str(), r.resource.as_str()) {
        ("", "nodes") => own_node(node, verb, r),
        ("", "pods") => pod(graph, node, verb, r, attributes),
        ("", "secrets") => read_named(graph, node, verb, r, Uses::Secret),
        ("", "configmaps") => read_named(graph, node, verb, r, Uses::ConfigMap),
        ("", "persistentvolumeclaims") => get_one(verb, r).and_then(|()| related(graph, node, Uses::Claim, r)),
        ("", "persistentvolumes") => get_one(verb, r).and_then(|()| {
            if graph.node_uses_volume(node, &r.name) {
                Ok(())
            } else {
                Err(no_relationship(node))
            }
        }),
        ("", "serviceaccounts") => create_token(graph, node, verb, r),
        _ => {
            static NODE_RULES: LazyLock<Vec<PolicyRule>> = LazyLock::new(berth_api::rbac::bootstrap::node_rules);
            let allowed = NODE_RULES
                .iter()
                .any(|rule| rule_allows_resource(rule, verb, &r.group, &r.resource, &r.subresource, &r.name));
            if allowed { Ok(()) } else { Err(String::new()) }
        }
    }
}

/// The pods whose binding decides `attributes` for a node, to read again before a
/// refusal: the pod named (namespace, Some(pod)), or those of the namespace of
/// a Secret, ConfigMap, claim or service account (namespace, None).
pub fn pods_concerned(attributes: &Attributes) -> Option<(&str, Option<&str>)> {
    let r = attributes.resource.as_ref()?;
    if !r.group.is_empty() || r.namespace.is_empty() || r.name.is_empty() {
        return None;
    }
    match r.resource.as_str() {
        "pods" => Some((&r.namespace, Some(&r.name))),
        "secrets" | "configmaps" | "persistentvolumeclaims" | "serviceaccounts" => Some((&r.namespace, None)),
        _ => None,
    }
}

fn no_relationship(node: &str) -> String {
    format!("no relationship found between node {node:?} and this object")
}

fn related(graph: &NodeGraph, node: &str, uses: Uses, r: &ResourceAttributes) -> Result<(), String> {
    if r.name.is_empty() {
        return Err("No Object name found".into());
    }
    if graph.node_uses(node, uses, &r.namespace, &r.name) {
        Ok(())
    } else {
        Err(no_relationship(node))
    }
}

/// Its own Node: read, and written (the object and its status). The reads of other
/// Nodes (a list, a watch) are RBAC's to allow.
fn own_node(node: &str, verb: &str, r: &ResourceAttributes) -> Result<(), String> {
    let own = r.name == node;
    match (r.subresource.as_str(), verb) {
        ("", "get" | "list" | "watch") if own => Ok(()),
        ("", "get" | "list" | "watch") if r.name.is_empty() => {
            Err(format!("node {node:?} cannot read all nodes, only its own Node object"))
        }
        ("", "get" | "list" | "watch") => Err(format!(
            "node {node:?} cannot read {:?}, only its own Node object",
            r.name
        )),
        // A create names its Node in the body: the write's own check looks there.
        ("", "create") if r.name.is_empty() || own => Ok(()),
        ("" | "status", "create" | "update" | "patch") if own => Ok(()),
        ("" | "status", "create" | "update" | "patch") => {
            Err(format!("node {node:?} is not allowed to modify node {:?}", r.name))
        }
        _ => Err(String::new()),
    }
}

/// Whether the pod the request names is bound to `node`.
fn bound_here(graph: &NodeGraph, node: &str, r: &ResourceAttributes) -> bool {
    !r.name.is_empty() && graph.pod_node(&r.namespace, &r.name).as_deref() == Some(node)
}

fn pod(graph: &NodeGraph, node: &str, verb: &str, r: &ResourceAttributes, a: &Attributes) -> Result<(), String> {
    let bound = || bound_here(graph, node, r);
    match (r.subresource.as_str(), verb) {
        ("", "get") if bound() => Ok(()),
        ("", "get") => Err(no_relationship(node)),
        ("", "list" | "watch") if a.selects_node(node) => Ok(()),
        ("", "list" | "watch") if !r.name.is_empty() && bound() => Ok(()),
        ("", "list" | "watch") => Err("can only list/watch pods with spec.nodeName field selector".into()),
        ("", "delete") if bound() => Ok(()),
        ("", "delete") => Err(format!(
            "node {node:?} can only delete pods with spec.nodeName set to itself"
        )),
        ("status", "update" | "patch") if bound() => Ok(()),
        ("status", "update" | "patch") => Err(format!(
            "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
        )),
        ("eviction", "create") if bound() => Ok(()),
        ("eviction", "create") => Err(format!(
            "node {node:?} can only evict pods with spec.nodeName set to itself"
        )),
        _ => Err(String::new()),
    }
}

/// Secrets and ConfigMaps: read one, by name, in a namespace.
fn read_named(graph: &NodeGraph, node: &str, verb: &str, r: &ResourceAttributes, uses: Uses) -> Result<(), String> {
    if !matches!(verb, "get" | "list" | "watch") {
        return Err("can only read resources of this type".into());
    }
    if !r.subresource.is_empty() {
        return Err("cannot read subresource".into());
    }
    if r.namespace.is_empty() {
        return Err("can only read namespaced object of this type".into());
    }
    related(graph, node, uses, r)
}

/// Claims and volumes: get one.
fn get_one(verb: &str, r: &ResourceAttributes) -> Result<(), String> {
    if verb != "get" {
        return Err("can only get individual resources of this type".into());
    }
    if !r.subresource.is_empty() {
        return Err("cannot get subresource".into());
    }
    Ok(())
}

fn create_token(graph: &NodeGraph, node: &str, verb: &str, r: &ResourceAttributes) -> Result<(), String> {
    if verb != "create" || r.name.is_empty() {
        return Err("can only create tokens for individual service accounts".into());
    }
    if r.subresource != "token" {
        return Err("can only create token subresource of serviceaccount".into());
    }
    related(graph, node, Uses::ServiceAccount, r)
}

/// NodeRestriction's check of a Node written by a node under the Node mode: its
/// own only. (A create names its Node in the body, which the authorizer does not
/// see; a status write keeps the spec, so it cannot change a pod's either.)
pub fn check_write(
    authorizer: &Authorizer,
    user: Option<&UserInfo>,
    object: &berth_api::kinds::Object,
) -> Result<(), ApiError> {
    let kind = object.descriptor();
    if authorizer.node_graph().is_none() || kind.plural != "nodes" || !kind.group.is_empty() {
        return Ok(());
    }
    let Some(node) = user.and_then(node_name) else {
        return Ok(());
    };
    let name = object.metadata().name();
    if name == node {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "Forbidden",
        format!("nodes {name:?} is forbidden: node {node:?} is not allowed to modify node {name:?}"),
    )
    .with_details(serde_json::json!({"name": name, "group": "", "kind": "nodes"})))
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
