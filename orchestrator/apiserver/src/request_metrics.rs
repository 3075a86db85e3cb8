//! `/metrics`: what this API server has answered, in Prometheus' text format under
//! kube-apiserver's names, so that what a client (a node, a controller) costs can be
//! read off it: `apiserver_request_total` by verb, resource and code, and
//! `apiserver_watch_events_total`, the events sent on watches, by resource.
//!
//! The counters are this process's since it started, kept in two maps behind a
//! mutex each (one lock at a time, held for an increment).

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::http::Method;

use crate::auth::authz::attributes::{self, Attributes};
use crate::route::Route;

/// One series of `apiserver_request_total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// kube-apiserver's: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`,
    /// `CONNECT`.
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    /// `cluster`, `namespace`, `resource` (one object); empty for a path.
    pub scope: String,
}

/// The counters; one per API server, shared by its requests.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    requests: Mutex<BTreeMap<(RequestLabels, u16), u64>>,
    /// Watch events sent, by (group, version, resource).
    watch_events: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
}

impl RequestMetrics {
    /// Counts one answered request.
    pub fn count_request(&self, labels: RequestLabels, code: u16) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((labels, code))
            .or_default() += 1;
    }

    /// Counts `events` watch events sent of a kind.
    pub fn count_watch_events(&self, kind: &berth_api::kinds::KindDescriptor, events: u64) {
        if events > 0 {
            let key = (kind.group, kind.version, kind.plural);
            *self.watch_events.lock().expect("metrics lock").entry(key).or_default() += events;
        }
    }

    /// Every series, in Prometheus' text format.
    pub fn text(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run \
             value, group, version, resource, scope, component, and HTTP response code.\n\
             # TYPE apiserver_request_total counter\n",
        );
        for ((labels, code), count) in self.requests.lock().expect("metrics lock").iter() {
            out.push_str(&format!(
                "apiserver_request_total{{code=\"{code}\",component=\"apiserver\",group=\"{}\",resource=\"{}\",\
                 scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {count}\n",
                labels.group, labels.resource, labels.scope, labels.subresource, labels.verb, labels.version
            ));
        }
        out.push_str(
            "# HELP apiserver_watch_events_total Number of events sent in watch clients\n\
             # TYPE apiserver_watch_events_total counter\n",
        );
        for ((group, version, resource), count) in self.watch_events.lock().expect("metrics lock").iter() {
            out.push_str(&format!(
                "apiserver_watch_events_total{{group=\"{group}\",resource=\"{resource}\",version=\"{version}\"}} {count}\n"
            ));
        }
        out
    }
}

/// The series a request counts in: its verb as kube-apiserver's metrics spell it,
/// the resource it names (none for a path such as `/healthz`).
pub fn labels_of(method: &Method, path: &str, route: Option<&Route>, watch: bool) -> RequestLabels {
    let asked: Option<Attributes> = route.and_then(|route| attributes::of_route(method, path, route, watch, "").pop());
    let Some(resource) = asked.as_ref().and_then(|a| a.resource.as_ref()) else {
        return RequestLabels {
            verb: method.as_str().to_ascii_uppercase(),
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: String::new(),
        };
    };
    let verb = match asked.as_ref().map_or("", |a| a.verb.as_str()) {
        "list" => "LIST",
        "watch" => "WATCH",
        "get" => "GET",
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        other => return labels_of_other(other, resource),
    };
    let streams = matches!(resource.subresource.as_str(), "exec" | "attach" | "portforward");
    let scope = if !resource.name.is_empty() {
        "resource"
    } else if !resource.namespace.is_empty() {
        "namespace"
    } else {
        "cluster"
    };
    RequestLabels {
        verb: if streams { "CONNECT" } else { verb }.into(),
        group: resource.group.clone(),
        version: resource.version.clone(),
        resource: resource.resource.clone(),
        subresource: resource.subresource.clone(),
        scope: scope.into(),
    }
}

fn labels_of_other(verb: &str, resource: &attributes::ResourceAttributes) -> RequestLabels {
    RequestLabels {
        verb: verb.to_ascii_uppercase(),
        group: resource.group.clone(),
        version: resource.version.clone(),
        resource: resource.resource.clone(),
        subresource: resource.subresource.clone(),
        scope: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, path: &str, watch: bool) -> RequestLabels {
        labels_of(&method, path, crate::route::parse(path).as_ref(), watch)
    }

    #[test]
    fn requests_count_under_kube_apiservers_verbs_and_scopes() {
        let renewal = labels(
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            false,
        );
        assert_eq!(
            renewal,
            RequestLabels {
                verb: "PUT".into(),
                group: "coordination.k8s.io".into(),
                version: "v1".into(),
                resource: "leases".into(),
                subresource: String::new(),
                scope: "resource".into(),
            }
        );
        let list = labels(Method::GET, "/api/v1/pods", false);
        assert_eq!((list.verb.as_str(), list.scope.as_str()), ("LIST", "cluster"));
        let watch = labels(Method::GET, "/api/v1/namespaces/a/pods", true);
        assert_eq!((watch.verb.as_str(), watch.scope.as_str()), ("WATCH", "namespace"));
        let status = labels(Method::PUT, "/api/v1/namespaces/a/pods/p/status", false);
        assert_eq!(status.subresource, "status");
        let health = labels(Method::GET, "/healthz", false);
        assert_eq!((health.verb.as_str(), health.resource.as_str()), ("GET", ""));
        assert_eq!(labels(Method::GET, "/nowhere", false).verb, "GET");
    }

    #[test]
    fn the_text_has_a_series_per_labels_and_code() {
        let metrics = RequestMetrics::default();
        let put = labels(
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            false,
        );
        metrics.count_request(put.clone(), 200);
        metrics.count_request(put.clone(), 200);
        metrics.count_request(put, 409);
        metrics.count_watch_events(&berth_api::kinds::lease::LEASE, 3);
        let text = metrics.text();
        assert!(
            text.contains(
                "apiserver_request_total{code=\"200\",component=\"apiserver\",group=\"coordination.k8s.io\",\
             resource=\"leases\",scope=\"resource\",subresource=\"\",verb=\"PUT\",version=\"v1\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("code=\"409\""), "{text}");
        assert!(
            text.contains(
                "apiserver_watch_events_total{group=\"coordination.k8s.io\",resource=\"leases\",version=\"v1\"} 3\n"
            ),
            "{text}"
        );
    }
}
