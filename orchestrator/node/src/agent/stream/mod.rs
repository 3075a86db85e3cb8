//! The agent's streaming endpoints, at the kubelet's paths, which the API server
//! proxies `kubectl exec`, `attach` and `port-forward` to (it forwards the upgrade
//! request and splices the two upgraded connections):
//!
//! ```text
//! GET|POST /exec/{ns}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1
//! GET|POST /attach/{ns}/{pod}/{container}?output=1&error=1
//! GET|POST /portForward/{ns}/{pod}
//!    exec, attach: Upgrade: websocket (Sec-WebSocket-Protocol v5/v4.channel.k8s.io,
//!                  see channel) or SPDY/3.1 (v4.channel.k8s.io, see spdy_streams)
//!    portForward:  Upgrade: websocket (SPDY/3.1+portforward.k8s.io, see tunnel) or
//!                  SPDY/3.1 (portforward.k8s.io, see portforward)
//! ```
//!
//! Attach: berth refuses `stdin` and `tty` on containers, so a container has no input
//! to attach to; attach streams the container's output (its log, stdout and stderr
//! together on stdout) from the moment of attaching, until the container ends.

mod attach;
mod channel;
mod portforward;
mod session;
mod spdy;
mod spdy_streams;
mod tunnel;
mod websocket;

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::workloads::Runtimes;
use super::{IndexedPod, PodIndex};
use crate::runtime::{ExecSpec, Runtime};
use session::{Session, Wanted};

/// What the streaming handlers reach: the runtimes and the pods running here.
#[derive(Clone)]
pub(super) struct Node {
    pub runtimes: Runtimes,
    pub index: PodIndex,
}

impl Node {
    /// The pod `namespace/name` if it runs here, with the runtime that runs it.
    fn pod(&self, namespace: &str, name: &str) -> Option<(IndexedPod, Arc<dyn Runtime>)> {
        let pod = self
            .index
            .lock()
            .expect("pod index lock")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()?;
        let runtime = self.runtimes.get(&pod.handler)?.clone();
        Some((pod, runtime))
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], message).into_response()
}

fn flag(params: &[(String, String)], names: &[&str]) -> bool {
    params
        .iter()
        .any(|(k, v)| names.contains(&k.as_str()) && matches!(v.as_str(), "1" | "true" | "True"))
}

/// The options of exec and attach, under the kubelet's names (`input`, `output`,
/// `error`) or the API's (`stdin`, `stdout`, `stderr`).
fn wanted(params: &[(String, String)]) -> Wanted {
    Wanted {
        stdin: flag(params, &["input", "stdin"]),
        stdout: flag(params, &["output", "stdout"]),
        stderr: flag(params, &["error", "stderr"]),
        tty: flag(params, &["tty"]),
    }
}

/// The running container's pod uid, id and runtime, or the kubelet's "container not
/// found" answer.
fn running_container(
    node: &Node,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<(String, String, Arc<dyn Runtime>), Response> {
    let not_found = || error(StatusCode::NOT_FOUND, format!("container not found ({container:?})"));
    let (pod, runtime) = node.pod(namespace, pod).ok_or_else(not_found)?;
    let id = runtime
        .list()
        .into_iter()
        .filter(|c| c.pod_uid == pod.uid && c.name == container && c.state.is_running())
        .map(|c| c.id)
        .next_back()
        .ok_or_else(not_found)?;
    Ok((pod.uid, id, runtime))
}

/// Answers the upgrade — WebSocket with the channel protocol chosen, or SPDY/3.1 with
/// `v4.channel.k8s.io` — and runs `serve`'s session on the upgraded connection.
fn upgrade<F, Fut>(mut request: Request, wanted: Wanted, serve: F) -> Response
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Session> + Send,
{
    let headers = request.headers();
    if header_is(headers, header::UPGRADE, "SPDY/3.1") {
        let offered: Vec<&str> = headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let protocol = match spdy_streams::negotiate(&offered) {
            Ok(protocol) => protocol,
            Err(message) => return error(StatusCode::FORBIDDEN, message),
        };
        let on_upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => spdy_streams::serve(TokioIo::new(upgraded), wanted, serve).await,
                Err(e) => tracing::debug!(error = %e, "a streaming upgrade failed"),
            }
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let answer = response.headers_mut();
        answer.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        answer.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        answer.insert("x-stream-protocol-version", HeaderValue::from_static(protocol));
        return response;
    }
    let is_websocket = header_is(headers, header::UPGRADE, "websocket");
    let Some(key) = headers
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        let message = if is_websocket {
            "unable to upgrade: missing Sec-WebSocket-Key"
        } else {
            "unable to upgrade: Upgrade: websocket or SPDY/3.1 is required"
        };
        return error(StatusCode::BAD_REQUEST, message.into());
    };
    let offered = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let Some(protocol) = channel::choose(&offered) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "unable to upgrade: no supported protocol offered ({offered:?}); served: {}",
                channel::PROTOCOLS.join(", ")
            ),
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let session = serve().await;
                channel::serve(TokioIo::new(upgraded), session).await;
            }
            Err(e) => tracing::debug!(error = %e, "a streaming upgrade failed"),
        }
    });
    websocket_accepted(&key, protocol)
}

/// The 101 answer to a WebSocket handshake with `key`, speaking `protocol`.
fn websocket_accepted(key: &str, protocol: &'static str) -> Response {
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let answer = response.headers_mut();
    answer.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    answer.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    answer.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    if let Ok(accept) = HeaderValue::from_str(&websocket::accept_key(key)) {
        answer.insert("sec-websocket-accept", accept);
    }
    response
}

fn header_is(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(value)))
}

pub(super) async fn exec(
    State(node): State<Node>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    request: Request,
) -> Response {
    let argv: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        return error(StatusCode::BAD_REQUEST, "you must specify at least 1 command".into());
    }
    let wanted = wanted(&params);
    if !(wanted.stdin || wanted.stdout || wanted.stderr) {
        return error(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        );
    }
    let (_, id, runtime) = match running_container(&node, &namespace, &pod, &container) {
        Ok(found) => found,
        Err(response) => return response,
    };
    upgrade(request, wanted, move || async move {
        let spec = ExecSpec {
            argv: argv.clone(),
            tty: wanted.tty,
        };
        let started = tokio::task::spawn_blocking(move || runtime.exec(&id, &spec)).await;
        match started {
            Ok(Ok(exec)) => session::from_exec(exec, argv, wanted),
            Ok(Err(e)) => Session::failed(session::failure(&e.to_string())),
            Err(e) => Session::failed(session::failure(&e.to_string())),
        }
    })
}

pub(super) async fn attach(
    State(node): State<Node>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    request: Request,
) -> Response {
    let wanted = wanted(&params);
    let (uid, id, runtime) = match running_container(&node, &namespace, &pod, &container) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let log = runtime.log_path(&uid, &container);
    upgrade(request, wanted, move || async move {
        attach::follow(runtime, id, log, wanted)
    })
}

/// `/portForward/{ns}/{pod}`: SPDY/3.1, on a plain upgrade or tunnelled in WebSocket
/// (`SPDY/3.1+portforward.k8s.io`, which kubectl tries first; on any other WebSocket
/// subprotocol the upgrade is refused and kubectl falls back to plain SPDY).
pub(super) async fn port_forward(
    State(node): State<Node>,
    Path((namespace, pod)): Path<(String, String)>,
    mut request: Request,
) -> Response {
    let Some((indexed, _)) = node.pod(&namespace, &pod) else {
        return error(StatusCode::NOT_FOUND, format!("pod not found ({namespace}/{pod})"));
    };
    // A pod with a network namespace of its own is reached at its address, which the
    // node routes to (its bridge); one sharing the host's network, on loopback.
    let target = indexed.pod_ip.unwrap_or(Ipv4Addr::LOCALHOST.into());
    let name = format!("{namespace}/{pod}");
    if header_is(request.headers(), header::UPGRADE, "websocket") {
        let key = request.headers().get("sec-websocket-key").and_then(|v| v.to_str().ok());
        let is_tunnel = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == tunnel::PORT_FORWARD);
        let (Some(key), true) = (key.map(str::to_owned), is_tunnel) else {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unable to upgrade: port forwarding over WebSocket speaks {:?} only",
                    tunnel::PORT_FORWARD
                ),
            );
        };
        let on_upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => portforward::serve(tunnel::open(TokioIo::new(upgraded)), name, target).await,
                Err(e) => tracing::debug!(error = %e, "a port-forward upgrade failed"),
            }
        });
        return websocket_accepted(&key, tunnel::PORT_FORWARD);
    }
    if !header_is(request.headers(), header::UPGRADE, "SPDY/3.1") {
        return error(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: port forwarding is served over SPDY/3.1 (Upgrade: SPDY/3.1)".into(),
        );
    }
    let offered: Vec<&str> = request
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if !offered.is_empty() && !offered.contains(&portforward::PROTOCOL) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [{:?}]",
                portforward::PROTOCOL
            ),
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => portforward::serve(TokioIo::new(upgraded), name, target).await,
            Err(e) => tracing::debug!(error = %e, "a port-forward upgrade failed"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let answer = response.headers_mut();
    answer.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    answer.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    answer.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(portforward::PROTOCOL),
    );
    response
}
