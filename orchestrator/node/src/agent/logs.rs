//! The agent's HTTP endpoint: `GET /containerLogs/{namespace}/{pod}/{container}`
//! (`?follow=true`, `?tailLines=N`, `?previous=true`, `?limitBytes=N`), the path the
//! kubelet serves logs on, which the API server proxies `berth logs` and `kubectl
//! logs` to; the streaming endpoints (`stream`); and `/healthz`.
//!
//! Without `previous` the whole file is served, every instance of the container
//! appended (so `logs -f` goes on across a restart); `previous` serves the instance
//! before the last start (see `runtime::log_file`).

use std::io::SeekFrom;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::workloads::Runtimes;
use super::{PodIndex, stream};
use crate::runtime::log_file::{self, Instance};

#[derive(Clone)]
struct Logs {
    runtimes: Runtimes,
    index: PodIndex,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    #[serde(default)]
    follow: Option<String>,
    #[serde(default)]
    tail_lines: Option<usize>,
    #[serde(default)]
    previous: Option<String>,
    #[serde(default)]
    limit_bytes: Option<u64>,
}

fn is_true(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1" | "True"))
}

/// A kubelet error as a metav1.Status, which the API server passes on as it is.
fn status_error(status: StatusCode, reason: &str, message: String) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": status.as_u16(),
    });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub(super) async fn serve(listener: tokio::net::TcpListener, runtimes: Runtimes, index: PodIndex) {
    let app = Router::new()
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Logs {
            runtimes: runtimes.clone(),
            index: index.clone(),
        })
        .merge(
            Router::new()
                .route(
                    "/exec/{namespace}/{pod}/{container}",
                    get(stream::exec).post(stream::exec),
                )
                .route(
                    "/attach/{namespace}/{pod}/{container}",
                    get(stream::attach).post(stream::attach),
                )
                .route(
                    "/portForward/{namespace}/{pod}",
                    get(stream::port_forward).post(stream::port_forward),
                )
                .with_state(stream::Node { runtimes, index }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the agent's log server stopped");
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], message + "\n").into_response()
}

async fn container_logs(
    State(logs): State<Logs>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let key = (namespace.clone(), pod.clone());
    let found = logs.index.lock().expect("pod index lock").get(&key).cloned();
    let Some((uid, runtime)) = found.and_then(|pod| Some((pod.uid, logs.runtimes.get(&pod.handler)?.clone()))) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} does not run on this node"),
        );
    };
    let path = runtime.log_path(&uid, &container);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return error(
                StatusCode::NOT_FOUND,
                format!("container {container:?} of pod {namespace}/{pod} has no logs (yet)"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the log: {e}")),
    };
    let is_previous = is_true(query.previous.as_deref());
    let range = if is_previous {
        match log_file::instance_range(&path, Instance::Previous) {
            Some(range) => range,
            None => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                );
            }
        }
    } else {
        0..u64::MAX
    };
    let mut start = range.start;
    if let Some(n) = query.tail_lines {
        match tail_offset(&mut file, range.clone(), n).await {
            Ok(offset) => start = offset,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the log: {e}")),
        }
    }
    // A previous instance has ended: nothing more will come to follow.
    let end = range
        .end
        .min(query.limit_bytes.map_or(u64::MAX, |limit| start.saturating_add(limit)));
    let follow = is_true(query.follow.as_deref()) && !is_previous;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let index = logs.index.clone();
    tokio::spawn(async move {
        if let Err(e) = file.seek(SeekFrom::Start(start)).await {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = start;
        loop {
            let room = usize::try_from(end - at).unwrap_or(usize::MAX).min(buf.len());
            if room == 0 {
                return;
            }
            match file.read(&mut buf[..room]).await {
                Ok(0) => {
                    let still_here = index
                        .lock()
                        .expect("pod index lock")
                        .get(&key)
                        .is_some_and(|pod| pod.uid == uid);
                    if !follow || !still_here || tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(n) => {
                    at += n as u64;
                    if tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}

/// The offset at which the last `n` lines of `range` of the file begin.
async fn tail_offset(file: &mut tokio::fs::File, range: std::ops::Range<u64>, n: usize) -> std::io::Result<u64> {
    let mut contents = Vec::new();
    file.seek(SeekFrom::Start(range.start)).await?;
    (&mut *file)
        .take(range.end - range.start)
        .read_to_end(&mut contents)
        .await?;
    Ok(range.start + tail_start(&contents, n) as u64)
}

fn tail_start(contents: &[u8], n: usize) -> usize {
    if n == 0 {
        return contents.len();
    }
    // A final newline ends the last line; it does not start another.
    let body = contents.strip_suffix(b"\n").unwrap_or(contents);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tails_count_lines_from_the_end() {
        let text = b"a\nb\nc\n";
        assert_eq!(&text[tail_start(text, 1)..], b"c\n");
        assert_eq!(&text[tail_start(text, 2)..], b"b\nc\n");
        assert_eq!(&text[tail_start(text, 10)..], b"a\nb\nc\n");
        assert_eq!(&text[tail_start(text, 0)..], b"");
        assert_eq!(&b"x\ny"[tail_start(b"x\ny", 1)..], b"y");
    }
}
