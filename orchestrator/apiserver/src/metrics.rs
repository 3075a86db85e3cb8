//! `metrics.k8s.io/v1beta1`, served by the API server itself (no metrics-server
//! add-on): NodeMetrics and PodMetrics, list and get, made from the usage reports
//! of the agents (`berth_client::agents`), asked when the request comes.
//!
//! ```text
//! GET /apis/metrics.k8s.io/v1beta1/nodes[/{name}]
//!     Nodes (labelSelector) ──► each one's agent: GET /metrics/usage ──► NodeMetrics
//! GET /apis/metrics.k8s.io/v1beta1[/namespaces/{ns}]/pods[/{name}]
//!     Pods (labelSelector, fieldSelector) ──► the agents of their nodes, once each
//!     ──► PodMetrics of the pods whose containers have a usage (uid checked)
//! ```
//!
//! As metrics-server: a node or pod without a usage yet (new, or its agent not
//! answering) is left out of a list and is NotFound on its own.

use std::collections::BTreeMap;

use berth_api::kinds::{node::NODE, pod::POD};
use berth_api::metrics::{self, UsageSummary};
use serde_json::{Value, json};

use super::ApiServer;
use super::list::{ListRequest, list};
use super::params::Params;
use super::rest::get;
use super::status::ApiError;

/// A path under `/apis/metrics.k8s.io/v1beta1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsPath {
    /// The group version itself: its resources.
    Resources,
    Nodes {
        name: Option<String>,
    },
    Pods {
        namespace: Option<String>,
        name: Option<String>,
    },
}

/// The metrics path `path` names, if it is one.
pub fn parse(path: &str) -> Option<MetricsPath> {
    let rest = path.strip_prefix(&format!("/apis/{}/{}", metrics::GROUP, metrics::VERSION))?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let name = |s: &str| Some(s.to_string());
    Some(match segments[..] {
        [] => MetricsPath::Resources,
        ["nodes"] => MetricsPath::Nodes { name: None },
        ["nodes", node] => MetricsPath::Nodes { name: name(node) },
        ["pods"] => MetricsPath::Pods {
            namespace: None,
            name: None,
        },
        ["namespaces", namespace, "pods"] => MetricsPath::Pods {
            namespace: name(namespace),
            name: None,
        },
        ["namespaces", namespace, "pods", pod] => MetricsPath::Pods {
            namespace: name(namespace),
            name: name(pod),
        },
        _ => return None,
    })
}

/// Discovery's resources of the group version.
pub fn resources() -> Value {
    let entry = |name: &str, singular: &str, kind: &str, namespaced: bool| json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind, "verbs": ["get", "list"]});
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{}/{}", metrics::GROUP, metrics::VERSION),
        "resources": [
            entry("nodes", "", "NodeMetrics", false),
            entry("pods", "", "PodMetrics", true),
        ],
    })
}

fn not_found(resource: &str, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{resource}.{} {name:?} not found", metrics::GROUP),
    )
}

fn list_request(params: &Params, kind: &berth_api::kinds::KindDescriptor) -> Result<ListRequest, ApiError> {
    Ok(ListRequest {
        filter: params.filter(kind)?,
        limit: None,
        continue_token: None,
        exact_revision: None,
        from_cache: crate::list::FromCache::No,
    })
}

fn items(list: Value) -> Vec<Value> {
    match list {
        Value::Object(mut fields) => match fields.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The usage reports of these nodes' agents, asked at once; a node whose agent does
/// not answer is left out (and logged).
async fn summaries(nodes: &[Value]) -> BTreeMap<String, UsageSummary> {
    let asks = nodes.iter().map(|node| async move {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match berth_client::agents::node_usage(node).await {
            Ok(summary) => Some((name.to_string(), summary)),
            Err(error) => {
                tracing::debug!(node = name, %error, "no usage from the node's agent");
                None
            }
        }
    });
    futures::future::join_all(asks).await.into_iter().flatten().collect()
}

fn labels(object: &Value) -> Value {
    object.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}))
}

pub async fn serve(api: &ApiServer, path: MetricsPath, params: &Params) -> Result<Value, ApiError> {
    match path {
        MetricsPath::Resources => Ok(resources()),
        MetricsPath::Nodes { name: Some(name) } => {
            let node = get(api, &NODE, "", &name).await?;
            let found = summaries(std::slice::from_ref(&node)).await;
            let usage = found.get(&name).and_then(|s| s.node_usage.as_ref());
            usage
                .map(|usage| metrics::node_metrics(&name, &labels(&node), usage))
                .ok_or_else(|| not_found("nodemetrics", &name))
        }
        MetricsPath::Nodes { name: None } => {
            let nodes = items(list(api, &NODE, None, &list_request(params, &NODE)?).await?);
            let found = summaries(&nodes).await;
            let metrics: Vec<Value> = nodes
                .iter()
                .filter_map(|node| {
                    let name = node.pointer("/metadata/name")?.as_str()?;
                    let usage = found.get(name)?.node_usage.as_ref()?;
                    Some(metrics::node_metrics(name, &labels(node), usage))
                })
                .collect();
            Ok(metrics::list("NodeMetrics", metrics))
        }
        MetricsPath::Pods {
            namespace,
            name: Some(name),
        } => {
            let namespace = namespace.unwrap_or_default();
            let pod = get(api, &POD, &namespace, &name).await?;
            pod_metrics(api, vec![pod])
                .await?
                .pop()
                .ok_or_else(|| not_found("podmetrics", &format!("{namespace}/{name}")))
        }
        MetricsPath::Pods { namespace, name: None } => {
            let pods = items(list(api, &POD, namespace.as_deref(), &list_request(params, &POD)?).await?);
            Ok(metrics::list("PodMetrics", pod_metrics(api, pods).await?))
        }
    }
}

/// The PodMetrics of those of `pods` that have a usage.
async fn pod_metrics(api: &ApiServer, pods: Vec<Value>) -> Result<Vec<Value>, ApiError> {
    let text = |pod: &Value, pointer: &str| {
        pod.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut node_names: Vec<String> = pods.iter().map(|pod| text(pod, "/spec/nodeName")).collect();
    node_names.retain(|n| !n.is_empty());
    node_names.sort();
    node_names.dedup();
    let mut nodes = Vec::new();
    for name in &node_names {
        match get(api, &NODE, "", name).await {
            Ok(node) => nodes.push(node),
            Err(error) if error.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    let found = summaries(&nodes).await;
    Ok(pods
        .iter()
        .filter_map(|pod| {
            let summary = found.get(&text(pod, "/spec/nodeName"))?;
            let (namespace, name, uid) = (
                text(pod, "/metadata/namespace"),
                text(pod, "/metadata/name"),
                text(pod, "/metadata/uid"),
            );
            let usage = summary
                .pods
                .iter()
                .find(|p| p.namespace == namespace && p.name == name && p.uid == uid)?;
            Some(metrics::pod_metrics(usage, &labels(pod)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_metrics_paths() {
        let base = "/apis/metrics.k8s.io/v1beta1";
        assert_eq!(parse(base), Some(MetricsPath::Resources));
        assert_eq!(parse(&format!("{base}/")), Some(MetricsPath::Resources));
        assert_eq!(parse(&format!("{base}/nodes")), Some(MetricsPath::Nodes { name: None }));
        assert_eq!(
            parse(&format!("{base}/nodes/n1")),
            Some(MetricsPath::Nodes {
                name: Some("n1".into())
            })
        );
        assert_eq!(
            parse(&format!("{base}/pods")),
            Some(MetricsPath::Pods {
                namespace: None,
                name: None
            })
        );
        assert_eq!(
            parse(&format!("{base}/namespaces/dev/pods/web")),
            Some(MetricsPath::Pods {
                namespace: Some("dev".into()),
                name: Some("web".into())
            })
        );
        for other in [
            "/apis/metrics.k8s.io/v1",
            "/apis/metrics.k8s.io/v1beta1/services",
            "/apis/metrics.k8s.io/v1beta1/namespaces/dev",
            "/apis/metrics.k8s.io/v1beta1/pods/web",
            "/apis/metrics.k8s.io/v1beta1//nodes",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}
