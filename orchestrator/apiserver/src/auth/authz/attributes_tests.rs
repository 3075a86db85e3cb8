use super::*;
use crate::route::parse;

fn of(method: Method, path_and_query: &str) -> Vec<(String, String)> {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let route = parse(path).unwrap();
    let watch = query.contains("watch=true");
    let selector = query.strip_prefix("fieldSelector=").unwrap_or_default();
    of_route(&method, path, &route, watch, selector)
        .into_iter()
        .map(|a| {
            let target = match &a.resource {
                Some(r) => format!(
                    "{}|{}|{}|{}|{}",
                    r.group, r.resource, r.subresource, r.namespace, r.name
                ),
                None => a.path.clone(),
            };
            (a.verb, target)
        })
        .collect()
}

fn one(verb: &str, target: &str) -> Vec<(String, String)> {
    vec![(verb.to_string(), target.to_string())]
}

#[test]
fn collections_list_watch_create_and_deletecollection() {
    assert_eq!(of(Method::GET, "/api/v1/namespaces/a/pods"), one("list", "|pods||a|"));
    assert_eq!(
        of(Method::GET, "/api/v1/pods"),
        one("list", "|pods|||"),
        "-A is cluster-wide"
    );
    assert_eq!(of(Method::GET, "/api/v1/pods?watch=true"), one("watch", "|pods|||"));
    assert_eq!(
        of(Method::POST, "/apis/apps/v1/namespaces/a/deployments"),
        one("create", "apps|deployments||a|")
    );
    assert_eq!(
        of(Method::DELETE, "/api/v1/namespaces/a/configmaps"),
        one("deletecollection", "|configmaps||a|")
    );
    assert_eq!(
        of(Method::GET, "/api/v1/namespaces/a/pods?fieldSelector=metadata.name=p"),
        one("list", "|pods||a|p"),
        "a list of one name names it"
    );
    assert_eq!(
        of(
            Method::GET,
            "/api/v1/namespaces/a/pods?fieldSelector=metadata.name=p,spec.nodeName=n"
        ),
        one("list", "|pods||a|")
    );
}

#[test]
fn objects_and_their_subresources() {
    assert_eq!(of(Method::GET, "/api/v1/namespaces/a/pods/p"), one("get", "|pods||a|p"));
    assert_eq!(
        of(Method::PUT, "/api/v1/namespaces/a/pods/p"),
        one("update", "|pods||a|p")
    );
    assert_eq!(of(Method::PATCH, "/api/v1/nodes/n1"), one("patch", "|nodes|||n1"));
    assert_eq!(
        of(Method::GET, "/api/v1/namespaces/a"),
        one("get", "|namespaces||a|a"),
        "a namespace is in itself"
    );
    assert_eq!(of(Method::GET, "/api/v1/namespaces"), one("list", "|namespaces|||"));
    assert_eq!(
        of(Method::DELETE, "/api/v1/namespaces/a/pods/p"),
        one("delete", "|pods||a|p")
    );
    assert_eq!(
        of(Method::GET, "/api/v1/namespaces/a/pods/p/log"),
        one("get", "|pods|log|a|p")
    );
    assert_eq!(
        of(Method::PUT, "/apis/apps/v1/namespaces/a/deployments/d/scale"),
        one("update", "apps|deployments|scale|a|d")
    );
    assert_eq!(
        of(Method::PATCH, "/api/v1/namespaces/a/pods/p/status"),
        one("patch", "|pods|status|a|p")
    );
    assert_eq!(
        of(Method::POST, "/api/v1/namespaces/a/pods/p/eviction"),
        one("create", "|pods|eviction|a|p")
    );
    assert_eq!(
        of(Method::POST, "/api/v1/namespaces/a/pods/p/exec"),
        one("create", "|pods|exec|a|p")
    );
    assert_eq!(
        of(Method::GET, "/api/v1/namespaces/a/pods/p/portforward"),
        vec![
            ("get".to_string(), "|pods|portforward|a|p".to_string()),
            ("create".to_string(), "|pods|portforward|a|p".to_string())
        ],
        "a WebSocket stream needs create as well"
    );
    assert_eq!(
        of(
            Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/b"
        ),
        one("get", "rbac.authorization.k8s.io|rolebindings||a|b")
    );
}

#[test]
fn paths_without_a_resource_are_non_resource_requests() {
    for path in [
        "/healthz",
        "/version",
        "/api",
        "/apis",
        "/openapi/v2",
        "/api/v1",
        "/apis/apps/v1",
    ] {
        assert_eq!(of(Method::GET, path), one("get", path));
    }
    assert_eq!(of(Method::POST, "/healthz"), one("post", "/healthz"));
    assert_eq!(
        of(Method::GET, "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods"),
        one("list", "metrics.k8s.io|pods||a|")
    );
}
