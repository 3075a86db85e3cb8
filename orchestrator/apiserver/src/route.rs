//! Where a request goes: Kubernetes' REST paths, parsed without I/O into the kind,
//! namespace, name and subresource they name.
//!
//! ```text
//! /api/v1/namespaces[/{name}[/status]]                 cluster-scoped kinds
//! /api/v1/nodes[/{name}[/status]]
//! /api/v1/pods                                         every namespace
//! /api/v1/namespaces/{ns}/pods[/{name}[/status|/log]]  namespaced kinds
//! /apis/apps/v1/namespaces/{ns}/{deployments|replicasets}[/{name}[/status|/scale]]
//! /apis/apps/v1/{deployments|replicasets}              every namespace
//! ```

use berth_api::objects::{DeploymentSpec, NamespaceSpec, NodeSpec, PodSpec, ReplicaSetSpec, Spec, key, prefix};

/// What the API server knows about one kind: its names and where it is stored.
#[derive(Debug)]
pub struct Kind {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// The plural resource name in URLs and store keys.
    pub resource: &'static str,
    pub namespaced: bool,
    /// The store key of one object (the namespace is ignored for cluster-scoped kinds).
    pub key: fn(&str, &str) -> String,
    /// The key prefix of the objects in one namespace, or (`None`) in all.
    pub prefix: fn(Option<&str>) -> String,
}

// Fn pointers do not compare reliably; a kind is named by its version and resource.
impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        self.api_version == other.api_version && self.resource == other.resource
    }
}

impl Eq for Kind {}

const fn served<S: Spec>() -> Kind {
    Kind {
        kind: S::KIND,
        api_version: S::API_VERSION,
        resource: S::RESOURCE,
        namespaced: S::NAMESPACED,
        key: key::<S>,
        prefix: prefix::<S>,
    }
}

/// Every kind the API server serves (the same as `api::objects::KINDS`; a test checks).
pub static SERVED: [Kind; 5] = [
    served::<NamespaceSpec>(),
    served::<NodeSpec>(),
    served::<PodSpec>(),
    served::<ReplicaSetSpec>(),
    served::<DeploymentSpec>(),
];

/// The Namespace kind, which namespaced creates and namespace deletion consult.
pub fn namespaces() -> &'static Kind {
    &SERVED[0]
}

impl Kind {
    /// The API group: `""` for the core group, `apps` for `apps/v1`.
    pub fn group(&self) -> &'static str {
        self.api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }

    /// The resource as Kubernetes names it in messages: `pods`, `deployments.apps`.
    pub fn qualified_resource(&self) -> String {
        qualify(self.resource, self.group())
    }

    /// `PodList`, `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether the kind has a `scale` subresource.
    pub fn is_scalable(&self) -> bool {
        matches!(self.resource, "deployments" | "replicasets")
    }
}

/// `name` qualified by its group, as Kubernetes prints it (`Deployment.apps`; core kinds alone).
pub fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    Log,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Version,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: the named groups.
    Groups,
    /// `/api/v1`, `/apis/apps/v1`: the resources of one group version.
    Resources {
        group_version: &'static str,
    },
    /// A collection: in one namespace, or (`None`) in all of them or cluster-scoped.
    Collection {
        kind: &'static Kind,
        namespace: Option<String>,
    },
    /// One object (`namespace` is `None` for cluster-scoped kinds), or a subresource of it.
    Object {
        kind: &'static Kind,
        namespace: Option<String>,
        name: String,
        subresource: Option<Subresource>,
    },
}

/// The route a path names; `None` for a path the server does not serve.
pub fn parse(path: &str) -> Option<Route> {
    match path {
        "/healthz" | "/livez" => return Some(Route::Healthz),
        "/readyz" => return Some(Route::Readyz),
        "/version" => return Some(Route::Version),
        "/api" | "/api/" => return Some(Route::CoreVersions),
        "/apis" | "/apis/" => return Some(Route::Groups),
        _ => {}
    }
    let (group_version, rest) = if let Some(rest) = path.strip_prefix("/api/v1") {
        ("v1", rest)
    } else if let Some(rest) = path.strip_prefix("/apis/apps/v1") {
        ("apps/v1", rest)
    } else {
        return None;
    };
    if rest.is_empty() || rest == "/" {
        return Some(Route::Resources { group_version });
    }
    let segments: Vec<&str> = rest.strip_prefix('/')?.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let served_here = |resource: &str| {
        SERVED
            .iter()
            .find(|k| k.resource == resource && k.api_version == group_version)
    };
    // `namespaces/{ns}/{resource}...` when the third segment is a namespaced kind;
    // otherwise `namespaces/{name}[/status]` is the Namespace object itself.
    if let ["namespaces", namespace, resource, tail @ ..] = &segments[..]
        && let Some(kind) = served_here(resource).filter(|k| k.namespaced)
    {
        return object_or_collection(kind, Some(*namespace), tail);
    }
    let (resource, tail) = segments.split_first()?;
    let kind = served_here(resource)?;
    if kind.namespaced && !tail.is_empty() {
        return None; // `/api/v1/pods/x` names nothing: a pod lives in a namespace
    }
    object_or_collection(kind, None, tail)
}

fn object_or_collection(kind: &'static Kind, namespace: Option<&str>, tail: &[&str]) -> Option<Route> {
    let namespace = namespace.map(str::to_string);
    match tail {
        [] => Some(Route::Collection { kind, namespace }),
        [name] => Some(Route::Object {
            kind,
            namespace,
            name: name.to_string(),
            subresource: None,
        }),
        [name, subresource] => Some(Route::Object {
            kind,
            namespace,
            name: name.to_string(),
            subresource: Some(match *subresource {
                "status" => Subresource::Status,
                "scale" if kind.is_scalable() => Subresource::Scale,
                "log" if kind.resource == "pods" => Subresource::Log,
                _ => return None,
            }),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::objects::KINDS;

    fn kind(resource: &str) -> &'static Kind {
        SERVED.iter().find(|k| k.resource == resource).unwrap()
    }

    fn object(resource: &str, namespace: Option<&str>, name: &str, subresource: Option<Subresource>) -> Option<Route> {
        Some(Route::Object {
            kind: kind(resource),
            namespace: namespace.map(str::to_string),
            name: name.into(),
            subresource,
        })
    }

    #[test]
    fn serves_every_kind_the_api_knows() {
        let served: Vec<_> = SERVED
            .iter()
            .map(|k| (k.kind, k.api_version, k.resource, k.namespaced))
            .collect();
        assert_eq!(served, KINDS.to_vec());
        assert_eq!(namespaces().kind, "Namespace");
        assert_eq!(
            (kind("deployments").key)("default", "web"),
            "/registry/deployments/default/web"
        );
        assert_eq!((kind("nodes").key)("ignored", "n1"), "/registry/nodes/n1");
        assert_eq!((kind("pods").prefix)(None), "/registry/pods/");
    }

    #[test]
    fn names_as_kubernetes_prints_them() {
        assert_eq!(kind("pods").qualified_resource(), "pods");
        assert_eq!(kind("deployments").qualified_resource(), "deployments.apps");
        assert_eq!(kind("deployments").group(), "apps");
        assert_eq!(kind("nodes").group(), "");
        assert_eq!(kind("replicasets").list_kind(), "ReplicaSetList");
        assert_eq!(qualify("Scale", "autoscaling"), "Scale.autoscaling");
    }

    #[test]
    fn parses_the_rest_layout() {
        let collection = |resource, namespace: Option<&str>| {
            Some(Route::Collection {
                kind: kind(resource),
                namespace: namespace.map(str::to_string),
            })
        };
        assert_eq!(parse("/api/v1/namespaces"), collection("namespaces", None));
        assert_eq!(parse("/api/v1/namespaces/dev"), object("namespaces", None, "dev", None));
        assert_eq!(
            parse("/api/v1/namespaces/dev/status"),
            object("namespaces", None, "dev", Some(Subresource::Status))
        );
        assert_eq!(parse("/api/v1/namespaces/dev/pods"), collection("pods", Some("dev")));
        assert_eq!(
            parse("/api/v1/namespaces/dev/pods/p"),
            object("pods", Some("dev"), "p", None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/dev/pods/p/log"),
            object("pods", Some("dev"), "p", Some(Subresource::Log))
        );
        assert_eq!(parse("/api/v1/pods"), collection("pods", None));
        assert_eq!(parse("/api/v1/nodes/n1"), object("nodes", None, "n1", None));
        assert_eq!(
            parse("/apis/apps/v1/namespaces/default/deployments/web/scale"),
            object("deployments", Some("default"), "web", Some(Subresource::Scale))
        );
        assert_eq!(parse("/apis/apps/v1/replicasets"), collection("replicasets", None));
        assert_eq!(parse("/api/v1"), Some(Route::Resources { group_version: "v1" }));
        assert_eq!(parse("/healthz"), Some(Route::Healthz));
    }

    #[test]
    fn unknown_paths_name_nothing() {
        for path in [
            "/",
            "/api/v2/pods",
            "/api/v1/deployments",
            "/apis/apps/v1/pods",
            "/apis/apps/v1/namespaces/default",
            "/api/v1/pods/p",
            "/api/v1/namespaces/dev/pods/p/scale",
            "/api/v1/namespaces/dev/pods/p/status/x",
            "/api/v1/namespaces//pods",
            "/api/v1/namespaces/dev/widgets",
        ] {
            assert_eq!(parse(path), None, "{path}");
        }
    }
}
