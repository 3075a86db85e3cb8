//! `pods/{name}/exec`, `pods/{name}/attach` and `pods/{name}/portforward`: the API
//! server checks the request against the pod, then proxies the upgrade to the agent of
//! the pod's node, as kube-apiserver proxies it to the kubelet: the upgrade request is
//! forwarded, the agent's answer returned, and once both sides have switched
//! protocols the two connections are spliced byte for byte. So every streaming
//! protocol the agent speaks (WebSocket channels, SPDY) passes through unchanged.
//!
//! ```text
//! client ──Upgrade──► API server ──Upgrade──► agent /exec/{ns}/{pod}/{container}?command=..
//!        ◄──101───────           ◄──101─────
//!        ◄════════════ copy_bidirectional ════════════►
//! ```

use axum::body::Body;
use axum::extract::Query;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::ApiServer;
use super::logs::{agent_url, choose_container};
use super::rest::get;
use super::status::ApiError;
use berth_api::kinds::{node::NODE, pod::POD};

/// Which streaming subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Exec,
    Attach,
    PortForward,
}

/// Headers of the upgrade that pass through both ways.
const UPGRADE_HEADERS: [&str; 7] = [
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "x-stream-protocol-version",
];

/// The agent's path and query for the request, as the kubelet names them.
fn agent_path(
    stream: Stream,
    namespace: &str,
    name: &str,
    container: &str,
    query: &[(String, String)],
) -> Result<String, ApiError> {
    let is_set = |names: &[&str]| {
        query.iter().any(|(k, v)| {
            names.contains(&k.as_str()) && matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True")
        })
    };
    let mut params: Vec<(&str, String)> = Vec::new();
    match stream {
        Stream::Exec | Stream::Attach => {
            let commands: Vec<&str> = query
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.as_str())
                .collect();
            if stream == Stream::Exec && commands.is_empty() {
                return Err(ApiError::bad_request("you must specify at least 1 command"));
            }
            let stdin = is_set(&["stdin", "input"]);
            let stdout = is_set(&["stdout", "output"]);
            let stderr = is_set(&["stderr", "error"]);
            let tty = is_set(&["tty"]);
            if !(stdin || stdout || stderr) {
                return Err(ApiError::bad_request(
                    "you must specify at least 1 of stdin, stdout, stderr",
                ));
            }
            if stream == Stream::Attach && (stdin || tty) {
                // berth refuses spec.containers[].stdin and tty: there is no input to
                // attach to, and output goes to the log, not a terminal.
                let what = if stdin { "stdin" } else { "tty" };
                return Err(ApiError::bad_request(format!(
                    "{what}: berth's containers have no {what} to attach to (stdin and tty are refused in \
                     pod specs); attach streams their output"
                )));
            }
            if tty && stderr {
                // kube-apiserver's validation: a terminal merges stderr into stdout.
                return Err(ApiError::bad_request("tty and stderr cannot both be true"));
            }
            params.extend(commands.into_iter().map(|c| ("command", c.to_owned())));
            for (wanted, param) in [(stdin, "input"), (stdout, "output"), (stderr, "error"), (tty, "tty")] {
                if wanted {
                    params.push((param, "1".into()));
                }
            }
        }
        Stream::PortForward => {
            params.extend(
                query
                    .iter()
                    .filter(|(k, _)| k == "ports")
                    .map(|(_, v)| ("ports", v.clone())),
            );
        }
    }
    let path = match stream {
        Stream::Exec => format!("/exec/{namespace}/{name}/{container}"),
        Stream::Attach => format!("/attach/{namespace}/{name}/{container}"),
        Stream::PortForward => format!("/portForward/{namespace}/{name}"),
    };
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    Ok(if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

pub async fn proxy(
    api: &ApiServer,
    stream: Stream,
    namespace: &str,
    name: &str,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    if !matches!(parts.method, Method::GET | Method::POST) {
        return Err(ApiError::method_not_allowed());
    }
    let query = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    let pod = get(api, &POD, namespace, name).await?;
    let container = match stream {
        Stream::PortForward => String::new(),
        Stream::Exec | Stream::Attach => {
            let asked = query.iter().find(|(k, _)| k == "container").map(|(_, v)| v.as_str());
            choose_container(&pod, name, asked.filter(|c| !c.is_empty()))?.to_owned()
        }
    };
    let path = agent_path(stream, namespace, name, &container, &query)?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = get(api, &NODE, "", node_name).await?;
    let base = agent_url(&node)
        .map_err(|why| ApiError::unavailable(format!("cannot reach the agent of node {node_name:?}: {why}")))?;
    let Some(client_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    if !parts.headers.contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::unavailable(format!(
            "error dialing backend: cannot reach the agent of node {node_name:?} at {base}: {e}"
        ))
    };
    let (stream, address) = berth_client::agents::dial(&base).await.map_err(|e| unreachable(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "the agent's streaming connection ended");
        }
    });
    let mut forwarded = Request::builder()
        .method(parts.method.clone())
        .uri(&path)
        .header(header::HOST, &address);
    for name in UPGRADE_HEADERS {
        for value in parts.headers.get_all(name) {
            forwarded = forwarded.header(name, value);
        }
    }
    let forwarded = forwarded
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(ApiError::internal)?;
    let mut answer = sender.send_request(forwarded).await.map_err(|e| unreachable(&e))?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The agent's refusal ("container not found"), as it said it: kubectl shows
        // it after "unable to upgrade connection: ".
        let status = answer.status();
        let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
        let body = answer
            .body_mut()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut response = Response::builder().status(status);
        if let Some(content_type) = content_type {
            response = response.header(header::CONTENT_TYPE, content_type);
        }
        return response.body(Body::from(body)).map_err(ApiError::internal);
    }
    let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for name in UPGRADE_HEADERS {
        for value in answer.headers().get_all(name) {
            response = response.header(name, value.clone());
        }
    }
    if !answer.headers().contains_key(header::CONNECTION) {
        response = response.header(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    let agent_upgrade = hyper::upgrade::on(&mut answer);
    tokio::spawn(async move {
        let (client, agent) = match tokio::try_join!(client_upgrade, agent_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "a streaming upgrade failed");
                return;
            }
        };
        let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
            tracing::debug!(error = %e, "a streaming connection ended");
        }
    });
    response.body(Body::empty()).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn exec_becomes_the_kubelets_path_and_names() {
        let q = query(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo a&b"),
            ("stdout", "true"),
            ("stdin", "1"),
        ]);
        assert_eq!(
            agent_path(Stream::Exec, "dev", "p", "c", &q).unwrap(),
            "/exec/dev/p/c?command=sh&command=-c&command=echo%20a%26b&input=1&output=1"
        );
        let none = query(&[("command", "ls")]);
        assert_eq!(
            agent_path(Stream::Exec, "dev", "p", "c", &none).unwrap_err().message,
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        let nothing = query(&[("stdout", "true")]);
        assert!(agent_path(Stream::Exec, "dev", "p", "c", &nothing).is_err());
        assert_eq!(
            agent_path(Stream::Attach, "dev", "p", "c", &nothing).unwrap(),
            "/attach/dev/p/c?output=1"
        );
        let with_stdin = query(&[("stdout", "true"), ("stdin", "true")]);
        assert!(
            agent_path(Stream::Attach, "dev", "p", "c", &with_stdin)
                .unwrap_err()
                .message
                .starts_with("stdin: berth's containers have no stdin")
        );
        assert_eq!(
            agent_path(Stream::PortForward, "dev", "p", "", &query(&[("ports", "8080")])).unwrap(),
            "/portForward/dev/p?ports=8080"
        );
    }
}
