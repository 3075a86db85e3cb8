//! Where a request goes: Kubernetes' REST paths, parsed without I/O into the kind,
//! namespace, name and subresource they name.
//!
//! ```text
//! /api/v1/namespaces[/{name}[/status]]                 cluster-scoped kinds
//! /api/v1/nodes[/{name}[/status]]
//! /api/v1/pods                                         every namespace
//! /api/v1/namespaces/{ns}/pods[/{name}[/status|/log|/eviction]]  namespaced kinds
//! /apis/apps/v1/namespaces/{ns}/{deployments|replicasets}[/{name}[/status|/scale]]
//! /apis/apps/v1/{deployments|replicasets}              every namespace
//! ```
//!
//! Which kinds are served, in which group version, with which subresources, is
//! read from `berth_api::kinds::KINDS`.

pub use berth_api::kinds::KindDescriptor as Kind;
use berth_api::kinds::{self, namespace::NAMESPACE, pod::POD};

/// The Namespace kind, which namespaced creates and namespace deletion consult.
pub fn namespaces() -> &'static Kind {
    &NAMESPACE
}

/// Whether the kind is Pod, the one kind with a `log` subresource and selectable
/// fields of its own.
pub fn is_pods(kind: &Kind) -> bool {
    *kind == POD
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    Log,
    /// `pods/{name}/eviction`: POST an Eviction to delete the pod.
    Eviction,
    /// `pods/{name}/exec`, `attach`, `portforward`: upgraded to a stream, proxied to
    /// the agent (see `streaming`).
    Exec,
    Attach,
    PortForward,
    /// `serviceaccounts/{name}/token`: POST a TokenRequest for a signed token.
    Token,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Version,
    /// `/metrics`: the server's counters in Prometheus' text format.
    ServerMetrics,
    /// `/openapi/v3`: the OpenAPI documents, one per group version.
    OpenApiIndex,
    /// `/openapi/v2`: one Swagger 2.0 document of every kind.
    OpenApiV2,
    /// `/openapi/v3/apis/apps/v1`: one group version's OpenAPI document.
    OpenApiDocument(String),
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: the named groups.
    Groups,
    /// `/api/v1`, `/apis/apps/v1`: the resources of one group version (`""` is the
    /// core group).
    Resources {
        group: &'static str,
        version: &'static str,
    },
    /// A collection: in one namespace, or (`None`) in all of them or cluster-scoped.
    Collection {
        kind: &'static Kind,
        namespace: Option<String>,
    },
    /// `/apis/metrics.k8s.io/v1beta1/...`: resource metrics, made from the agents'
    /// reports rather than stored (see `metrics`).
    Metrics(super::metrics::MetricsPath),
    /// `/apis/authorization.k8s.io/v1/selfsubjectaccessreviews` and the other reviews:
    /// created to be answered, never stored (see `auth::reviews`).
    Review(super::auth::reviews::Review),
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
        "/metrics" => return Some(Route::ServerMetrics),
        // kubectl and the Python client ask for `/version/`.
        "/version" | "/version/" => return Some(Route::Version),
        "/api" | "/api/" => return Some(Route::CoreVersions),
        "/apis" | "/apis/" => return Some(Route::Groups),
        "/openapi/v3" | "/openapi/v3/" => return Some(Route::OpenApiIndex),
        "/openapi/v2" => return Some(Route::OpenApiV2),
        _ => {}
    }
    if let Some(review) = super::auth::reviews::parse(path) {
        return Some(Route::Review(review));
    }
    if let Some((group, version)) = super::discovery::review_group_version(path) {
        return Some(Route::Resources { group, version });
    }
    if let Some(metrics) = super::metrics::parse(path) {
        return Some(Route::Metrics(metrics));
    }
    if let Some(document) = path.strip_prefix("/openapi/v3/") {
        return super::openapi::is_document(document).then(|| Route::OpenApiDocument(document.to_string()));
    }
    let (group, version, rest) = if let Some(rest) = path.strip_prefix("/api/") {
        let (version, rest) = rest.split_once('/').unwrap_or((rest, ""));
        ("", version, rest)
    } else {
        let (group, rest) = path.strip_prefix("/apis/")?.split_once('/')?;
        if group.is_empty() {
            return None; // the core group is served under `/api` only
        }
        let (version, rest) = rest.split_once('/').unwrap_or((rest, ""));
        (group, version, rest)
    };
    let (group, version) = kinds::group_versions()
        .iter()
        .copied()
        .find(|served| *served == (group, version))?;
    if rest.is_empty() {
        return Some(Route::Resources { group, version });
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let served_here = |resource: &str| kinds::served(group, version, resource);
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
                "status" if kind.subresources.status => Subresource::Status,
                "scale" if kind.subresources.scale => Subresource::Scale,
                "log" if is_pods(kind) => Subresource::Log,
                "eviction" if is_pods(kind) => Subresource::Eviction,
                "exec" if is_pods(kind) => Subresource::Exec,
                "attach" if is_pods(kind) => Subresource::Attach,
                "portforward" if is_pods(kind) => Subresource::PortForward,
                "token" if *kind == berth_api::kinds::service_account::SERVICE_ACCOUNT => Subresource::Token,
                _ => return None,
            }),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::kind;

    fn object(resource: &str, namespace: Option<&str>, name: &str, subresource: Option<Subresource>) -> Option<Route> {
        Some(Route::Object {
            kind: kind(resource),
            namespace: namespace.map(str::to_string),
            name: name.into(),
            subresource,
        })
    }

    #[test]
    fn every_kind_is_served_where_its_paths_say() {
        for kind in kinds::KINDS {
            let collection = Some(Route::Collection { kind, namespace: None });
            assert_eq!(parse(&kind.collection_path(None)), collection);
            let object = Some(Route::Object {
                kind,
                namespace: kind.namespaced.then(|| "dev".to_string()),
                name: "x".into(),
                subresource: None,
            });
            assert_eq!(parse(&kind.object_path("dev", "x")), object);
            let status = format!("{}/status", kind.object_path("dev", "x"));
            assert_eq!(parse(&status).is_some(), kind.subresources.status, "{status}");
            let scale = format!("{}/scale", kind.object_path("dev", "x"));
            assert_eq!(parse(&scale).is_some(), kind.subresources.scale, "{scale}");
        }
        assert_eq!(namespaces().kind, "Namespace");
        assert!(is_pods(kind("pods")) && !is_pods(kind("nodes")));
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
        assert_eq!(
            parse("/api/v1/namespaces/dev/pods/p/eviction"),
            object("pods", Some("dev"), "p", Some(Subresource::Eviction))
        );
        assert_eq!(parse("/api/v1/pods"), collection("pods", None));
        assert_eq!(parse("/api/v1/nodes/n1"), object("nodes", None, "n1", None));
        assert_eq!(
            parse("/apis/apps/v1/namespaces/default/deployments/web/scale"),
            object("deployments", Some("default"), "web", Some(Subresource::Scale))
        );
        assert_eq!(parse("/apis/apps/v1/replicasets"), collection("replicasets", None));
        assert_eq!(
            parse("/api/v1"),
            Some(Route::Resources {
                group: "",
                version: "v1"
            })
        );
        assert_eq!(
            parse("/apis/apps/v1/"),
            Some(Route::Resources {
                group: "apps",
                version: "v1"
            })
        );
        assert_eq!(parse("/healthz"), Some(Route::Healthz));
        assert_eq!(parse("/version"), Some(Route::Version));
        assert_eq!(parse("/version/"), Some(Route::Version));
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
            "/api/v1/nodes/n1/eviction",
            "/apis/apps/v1/namespaces/dev/deployments/web/eviction",
            "/api/v1/namespaces/dev/pods/p/status/x",
            "/api/v1/namespaces//pods",
            "/api/v1/namespaces/dev/widgets",
            "/apis//v1/pods",
            "/apis/apps",
            "/api/apps/v1/deployments",
        ] {
            assert_eq!(parse(path), None, "{path}");
        }
    }
}
