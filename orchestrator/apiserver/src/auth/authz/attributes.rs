//! What a request asks to do, as Kubernetes' authorizers see it (its `RequestInfo`):
//! a verb on a resource (its group, subresource, namespace and name), or a verb on a
//! path that names no resource (`/healthz`, `/api`, `/openapi/v2`).
//!
//! ```text
//! collection  GET list (watch with ?watch), POST create, DELETE deletecollection
//! object      GET get, PUT update, PATCH patch, DELETE delete, POST create (eviction)
//! pods/exec, attach, portforward   POST create; GET (a WebSocket) get, and create too
//! paths       the method, lower-cased (get, post, put, patch, delete)
//! ```
//!
//! A Namespace object's namespace is itself (`/api/v1/namespaces/a` is in `a`).
//! A list or watch whose field selector is `metadata.name=<name>` alone names that
//! object (`kubectl get pod p --watch`), so a rule of resourceNames can allow it.

use axum::http::Method;

use crate::metrics::MetricsPath;
use crate::route::{Route, Subresource};

/// A resource request's target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    /// Empty: cluster-scoped, or every namespace.
    pub namespace: String,
    /// Empty: the request names no object (a list, a create).
    pub name: String,
}

/// One thing a request asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// `None`: a non-resource request, named by [`path`](Self::path).
    pub resource: Option<ResourceAttributes>,
    pub path: String,
    /// A list's or watch's field selector, as given (the Node mode reads
    /// `spec.nodeName=<node>` in it).
    pub field_selector: String,
}

impl Attributes {
    pub fn resource(verb: &str, resource: ResourceAttributes) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(resource),
            path: String::new(),
            field_selector: String::new(),
        }
    }

    pub fn path(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: None,
            path: path.into(),
            field_selector: String::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        self.resource.as_ref().map_or("", |r| r.namespace.as_str())
    }

    /// Whether the field selector requires `spec.nodeName` to be `node`.
    pub fn selects_node(&self, node: &str) -> bool {
        self.field_selector.split(',').any(|term| {
            term.split_once("==")
                .or_else(|| term.split_once('='))
                .is_some_and(|(field, value)| {
                    field.trim() == "spec.nodeName" && !field.ends_with('!') && value.trim() == node
                })
        })
    }
}

fn method_verb(method: &Method) -> String {
    if method == Method::HEAD {
        "get".into()
    } else {
        method.as_str().to_ascii_lowercase()
    }
}

/// The name a field selector of `metadata.name` alone picks.
fn selected_name(field_selector: &str) -> Option<&str> {
    let (field, value) = field_selector
        .split_once("==")
        .or_else(|| field_selector.split_once('='))?;
    (field.trim() == "metadata.name" && !value.contains(',') && !field.ends_with('!')).then(|| value.trim())
}

/// What a routed request asks: usually one thing; a WebSocket to a pod's streams
/// asks to `get` and to `create` (as Kubernetes 1.30 and later check both).
pub fn of_route(method: &Method, path: &str, route: &Route, watch: bool, field_selector: &str) -> Vec<Attributes> {
    match route {
        Route::Collection { kind, namespace } => {
            let verb = match *method {
                Method::GET | Method::HEAD if watch => "watch",
                Method::GET | Method::HEAD => "list",
                Method::POST => "create",
                Method::DELETE => "deletecollection",
                _ => {
                    return vec![Attributes::resource(
                        &method_verb(method),
                        resource(kind, namespace, "", ""),
                    )];
                }
            };
            let name = match verb {
                "watch" | "list" => selected_name(field_selector).unwrap_or_default(),
                _ => "",
            };
            let mut asks = Attributes::resource(verb, resource(kind, namespace, name, ""));
            if matches!(verb, "watch" | "list") {
                asks.field_selector = field_selector.into();
            }
            vec![asks]
        }
        Route::Object {
            kind,
            namespace,
            name,
            subresource,
        } => {
            let sub = match subresource {
                None => "",
                Some(Subresource::Status) => "status",
                Some(Subresource::Scale) => "scale",
                Some(Subresource::Log) => "log",
                Some(Subresource::Eviction) => "eviction",
                Some(Subresource::Exec) => "exec",
                Some(Subresource::Attach) => "attach",
                Some(Subresource::PortForward) => "portforward",
                Some(Subresource::Token) => "token",
            };
            // A namespace is in itself, as Kubernetes' RequestInfo has it: a
            // RoleBinding there may let its subjects read it.
            let namespace = match kind.plural {
                "namespaces" if kind.group.is_empty() => &Some(name.clone()),
                _ => namespace,
            };
            let target = resource(kind, namespace, name, sub);
            let streams = matches!(
                subresource,
                Some(Subresource::Exec | Subresource::Attach | Subresource::PortForward)
            );
            match *method {
                Method::GET | Method::HEAD if streams => vec![
                    Attributes::resource("get", target.clone()),
                    Attributes::resource("create", target),
                ],
                Method::GET | Method::HEAD => vec![Attributes::resource("get", target)],
                Method::PUT => vec![Attributes::resource("update", target)],
                Method::POST => vec![Attributes::resource("create", target)],
                _ => vec![Attributes::resource(&method_verb(method), target)],
            }
        }
        Route::Metrics(metrics) => {
            let (resource, namespace, name) = match metrics {
                MetricsPath::Resources => return vec![Attributes::path(&method_verb(method), path)],
                MetricsPath::Nodes { name } => ("nodes", None, name.clone()),
                MetricsPath::Pods { namespace, name } => ("pods", namespace.clone(), name.clone()),
            };
            let verb = if name.is_some() { "get" } else { "list" };
            vec![Attributes::resource(
                verb,
                ResourceAttributes {
                    group: berth_api::metrics::GROUP.into(),
                    version: berth_api::metrics::VERSION.into(),
                    resource: resource.into(),
                    namespace: namespace.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                    ..Default::default()
                },
            )]
        }
        Route::Review(review) if *method == Method::POST => vec![review.attributes()],
        _ => vec![Attributes::path(&method_verb(method), path)],
    }
}

fn resource(
    kind: &berth_api::kinds::KindDescriptor,
    namespace: &Option<String>,
    name: &str,
    sub: &str,
) -> ResourceAttributes {
    ResourceAttributes {
        group: kind.group.into(),
        version: kind.version.into(),
        resource: kind.plural.into(),
        subresource: sub.into(),
        namespace: namespace.clone().unwrap_or_default(),
        name: name.into(),
    }
}

#[cfg(test)]
#[path = "attributes_tests.rs"]
mod tests;
