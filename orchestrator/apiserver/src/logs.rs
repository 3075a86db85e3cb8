//! `GET .../pods/{name}/log`: finds the node the pod runs on and streams the
//! container's log from that node's agent, as the kubelet's log endpoint is proxied
//! by Kubernetes' API server.
//!
//! ```text
//! pod ──► spec.nodeName ──► Node: InternalIP + daemonEndpoints.kubeletEndpoint.Port
//!     ──► GET http://IP:PORT/containerLogs/{ns}/{pod}/{container}?follow=..&tailLines=..&timestamps=..
//!     ──► streamed to the client as it arrives
//! ```

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use serde_json::Value;

use super::ApiServer;
use super::codec::{Format, render};
use super::rest::get;
use super::status::ApiError;
use berth_api::kinds::{node::NODE, pod::POD};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub container: Option<String>,
    pub follow: bool,
    pub tail_lines: Option<i64>,
    /// The previous instance of the container (after a restart).
    pub previous: bool,
    pub limit_bytes: Option<i64>,
    /// Each line's time before it.
    pub timestamps: bool,
    /// Only the lines written in the last so many seconds, or since a time.
    pub since_seconds: Option<i64>,
    pub since_time: Option<std::time::SystemTime>,
}

fn texts<'a>(object: &'a Value, pointer: &str, field: &str) -> Vec<&'a str> {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(|i| i.get(field)?.as_str()).collect())
        .unwrap_or_default()
}

/// The container whose log is asked for: the one named (an init container too), or
/// the pod's only one.
pub fn choose_container<'a>(pod: &'a Value, name: &str, asked: Option<&'a str>) -> Result<&'a str, ApiError> {
    let containers = texts(pod, "/spec/containers", "name");
    let init_containers = texts(pod, "/spec/initContainers", "name");
    match asked {
        Some(asked) if containers.contains(&asked) || init_containers.contains(&asked) => Ok(asked),
        Some(asked) => Err(ApiError::bad_request(format!(
            "container {asked} is not valid for pod {name}: it has [{}]",
            containers.join(" ")
        ))),
        None => match containers[..] {
            [only] => Ok(only),
            _ if init_containers.is_empty() => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            ))),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}] or one of the init \
                 containers: [{}]",
                containers.join(" "),
                init_containers.join(" ")
            ))),
        },
    }
}

pub use berth_client::agents::agent_url;

pub async fn logs(api: &ApiServer, namespace: &str, name: &str, request: LogRequest) -> Result<Response, ApiError> {
    let pod = get(api, &POD, namespace, name).await?;
    let container = choose_container(&pod, name, request.container.as_deref())?.to_string();
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!("pod {name:?} is not scheduled yet")));
    }
    let node = get(api, &NODE, "", node_name).await?;
    let base = agent_url(&node)
        .map_err(|why| ApiError::unavailable(format!("cannot reach the agent of node {node_name:?}: {why}")))?;
    let mut path = format!(
        "/containerLogs/{namespace}/{name}/{container}?follow={}",
        request.follow
    );
    if let Some(lines) = request.tail_lines {
        path.push_str(&format!("&tailLines={lines}"));
    }
    if request.previous {
        path.push_str("&previous=true");
    }
    if let Some(limit) = request.limit_bytes {
        path.push_str(&format!("&limitBytes={limit}"));
    }
    if request.timestamps {
        path.push_str("&timestamps=true");
    }
    if let Some(seconds) = request.since_seconds {
        path.push_str(&format!("&sinceSeconds={seconds}"));
    }
    if let Some(time) = request.since_time {
        // UTC, whole seconds: nothing in it needs escaping in a query.
        path.push_str(&format!("&sinceTime={}", berth_api::time::format_rfc3339(time)));
    }
    let upstream = berth_client::agents::client(&base)
        .stream("GET", &path)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot reach the agent of node {node_name:?} at {base}: {e}")))?;
    if !upstream.is_success() {
        let status = upstream.status;
        let body = upstream.read_to_end().await.unwrap_or_default();
        if let Ok(object) = serde_json::from_slice::<Value>(&body)
            && object.get("kind").and_then(Value::as_str) == Some("Status")
        {
            return Ok(render(Format::Json, status, &object));
        }
        let reason = match status {
            400 => "BadRequest",
            404 => "NotFound",
            503 => "ServiceUnavailable",
            _ => "InternalError",
        };
        let text = String::from_utf8_lossy(&body);
        return Err(ApiError::new(
            status,
            reason,
            format!("the agent of node {node_name:?} answered {status}: {}", text.trim()),
        ));
    }
    let chunks = futures::stream::unfold(upstream, |mut upstream| async move {
        match upstream.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, std::convert::Infallible>(chunk), upstream)),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "the agent's log stream broke off");
                None
            }
        }
    });
    Ok(Response::builder()
        .status(200)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(chunks))
        .expect("a valid response"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chooses_the_container() {
        let one = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(choose_container(&one, "p", None), Ok("web"));
        assert_eq!(choose_container(&one, "p", Some("web")), Ok("web"));
        let error = choose_container(&one, "p", Some("db")).unwrap_err();
        assert_eq!(error.code, 400);
        assert_eq!(error.message, "container db is not valid for pod p: it has [web]");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            choose_container(&two, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        let init =
            json!({"spec": {"initContainers": [{"name": "setup"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(choose_container(&init, "p", Some("setup")), Ok("setup"));
        assert_eq!(
            choose_container(&init, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [setup]"
        );
    }
}
