//! The agent's HTTP endpoint: `GET /containerLogs/{namespace}/{pod}/{container}`
//! (`?follow=true`, `?tailLines=N`, `?previous=true`, `?limitBytes=N`,
//! `?timestamps=true`, `?sinceSeconds=N`, `?sinceTime=T`), the path the kubelet serves
//! logs on, which the API server proxies `berth logs` and `kubectl logs` to; the
//! streaming endpoints (`stream`); `GET /metrics/usage`, the node's and its
//! containers' resource usage (`metrics`); and `/healthz`.
//!
//! As the kubelet's: the current instance of the container is served (`follow` ends
//! with it), or with `previous` the one before it (see `runtime::log_file`). Times
//! come from the log writer's records (`runtime::log_writer`): each line is stamped
//! with the time its first byte was written, in the kubelet's format
//! (`2006-01-02T15:04:05.000000000Z line`), and `limitBytes` counts what is served.

use std::io::SeekFrom;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
use crate::runtime::log_writer::Times;

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
    #[serde(default)]
    timestamps: Option<String>,
    #[serde(default)]
    since_seconds: Option<u64>,
    #[serde(default)]
    since_time: Option<String>,
}

impl LogQuery {
    /// The time before which lines are left out (`sinceSeconds` or `sinceTime`).
    fn since(&self) -> Result<Option<SystemTime>, String> {
        match (self.since_seconds, self.since_time.as_deref()) {
            (Some(_), Some(_)) => Err("at most one of sinceTime or sinceSeconds may be specified".into()),
            (Some(seconds), None) => Ok(SystemTime::now().checked_sub(Duration::from_secs(seconds))),
            (None, Some(time)) => berth_api::time::parse_rfc3339(time)
                .map(Some)
                .ok_or_else(|| format!("sinceTime: {time:?} is not an RFC 3339 time")),
            (None, None) => Ok(None),
        }
    }
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

/// What `/metrics/usage` answers from.
#[derive(Clone)]
pub(super) struct UsageEndpoint {
    pub node: String,
    pub window: super::metrics::SharedWindow,
}

async fn usage_summary(State(usage): State<UsageEndpoint>) -> Response {
    let summary = usage.window.lock().expect("metrics window lock").summary(&usage.node);
    axum::Json(summary).into_response()
}

/// Serves the agent's API on `listener`: plain TCP, or the TLS listener.
pub(super) async fn serve<L>(listener: L, runtimes: Runtimes, index: PodIndex, usage: UsageEndpoint)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let app = Router::new()
        .route("/metrics/usage", get(usage_summary))
        .with_state(usage)
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
    let since = match query.since() {
        Ok(since) => since,
        Err(message) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", message),
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
    let timestamps = is_true(query.timestamps.as_deref());
    let stamper = if timestamps || since.is_some() {
        match Times::load(&path) {
            Some(times) => Some(Stamper {
                times,
                log: path.clone(),
                timestamps,
                since,
                at_line_start: true,
                skipping: false,
            }),
            None => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!(
                        "container {container:?} of pod {namespace}/{pod} has no recorded times (its output was not \
                         written through berth's log writer): timestamps, sinceSeconds and sinceTime cannot be served"
                    ),
                );
            }
        }
    } else {
        None
    };
    let is_previous = is_true(query.previous.as_deref());
    let instance = if is_previous {
        Instance::Previous
    } else {
        Instance::Current
    };
    let Some(range) = log_file::instance_range(&path, instance) else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("previous terminated container {container:?} in pod {pod:?} not found"),
        );
    };
    let mut start = range.start;
    if let Some(n) = query.tail_lines {
        match tail_offset(&mut file, range.clone(), n).await {
            Ok(offset) => start = offset,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the log: {e}")),
        }
    }
    // A previous instance has ended: nothing more will come to follow.
    let follow = is_true(query.follow.as_deref()) && !is_previous;
    let mut reader = LogReader {
        file,
        at: start,
        end: range.end,
        left: query.limit_bytes,
        stamper,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        if let Err(e) = reader.file.seek(SeekFrom::Start(start)).await {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        // Whether the instance had ended at the last look: the log is then read to its
        // end once more, and that is all.
        let mut has_ended = !follow;
        loop {
            match reader.next(&mut buf).await {
                Ok(Some(chunk)) => {
                    if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    if has_ended || tx.is_closed() {
                        return;
                    }
                    has_ended = !is_running(&runtime, &logs.index, &key, &uid, &container);
                    if !has_ended {
                        tokio::time::sleep(Duration::from_millis(200)).await;
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

/// Whether the container still runs, so that `logs -f` goes on (it ends with the
/// instance it follows, as the kubelet's does, or with the pod).
fn is_running(
    runtime: &std::sync::Arc<dyn crate::runtime::Runtime>,
    index: &PodIndex,
    key: &(String, String),
    uid: &str,
    container: &str,
) -> bool {
    let still_here = index
        .lock()
        .expect("pod index lock")
        .get(key)
        .is_some_and(|pod| pod.uid == uid);
    still_here
        && runtime
            .list()
            .iter()
            .any(|c| c.pod_uid == uid && c.name == container && c.state.is_running())
}

/// Reads a span of a log: raw, or line by line with times (`Stamper`), up to a number
/// of bytes served (`limitBytes`).
struct LogReader {
    file: tokio::fs::File,
    at: u64,
    end: u64,
    /// Bytes still to serve, when limited.
    left: Option<u64>,
    stamper: Option<Stamper>,
}

impl LogReader {
    /// What to serve next; None at the end of the log (for now), or of the span.
    async fn next(&mut self, buf: &mut [u8]) -> std::io::Result<Option<Bytes>> {
        let room = usize::try_from(self.end - self.at).unwrap_or(usize::MAX).min(buf.len());
        if room == 0 || self.left == Some(0) {
            return Ok(None);
        }
        let n = self.file.read(&mut buf[..room]).await?;
        if n == 0 {
            return Ok(None);
        }
        let chunk = &buf[..n];
        let mut out = match &mut self.stamper {
            Some(stamper) => stamper.lines(self.at, chunk),
            None => chunk.to_vec(),
        };
        self.at += n as u64;
        if let Some(left) = &mut self.left {
            out.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= out.len() as u64;
        }
        Ok(Some(Bytes::from(out)))
    }
}

/// Puts each line's time before it (`timestamps`) and leaves out the lines from
/// before `since`, by the log's times (`runtime::log_writer`).
struct Stamper {
    times: Times,
    log: std::path::PathBuf,
    timestamps: bool,
    since: Option<SystemTime>,
    at_line_start: bool,
    /// Whether the line being read is left out.
    skipping: bool,
}

impl Stamper {
    /// `chunk`, read at `offset` of the log, as served.
    fn lines(&mut self, offset: u64, chunk: &[u8]) -> Vec<u8> {
        // The times of what was just read were written before it.
        if let Err(e) = self.times.refresh(&self.log) {
            tracing::warn!(log = %self.log.display(), error = %e, "cannot read a log's times");
        }
        let mut out = Vec::with_capacity(chunk.len() + 32);
        let mut i = 0;
        while i < chunk.len() {
            if self.at_line_start {
                let time = self.times.at(offset + i as u64).unwrap_or(UNIX_EPOCH);
                self.skipping = self.since.is_some_and(|since| time < since);
                if self.timestamps && !self.skipping {
                    out.extend_from_slice(berth_api::time::format_rfc3339_nanos(time).as_bytes());
                    out.push(b' ');
                }
            }
            let line_end = chunk[i..].iter().position(|&b| b == b'\n').map(|p| i + p + 1);
            let j = line_end.unwrap_or(chunk.len());
            if !self.skipping {
                out.extend_from_slice(&chunk[i..j]);
            }
            self.at_line_start = line_end.is_some();
            i = j;
        }
        out
    }
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
    use super::*;

    #[test]
    fn lines_are_stamped_with_the_time_of_their_first_byte_and_old_ones_left_out() {
        use std::io::Write as _;

        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("main.log");
        let done = dir.path().join("done");
        let (reader, mut writer) = std::io::pipe().unwrap();
        let copier = {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || crate::runtime::log_writer::write_log(reader, &log, &done))
        };
        writer.write_all(b"old\nspl").unwrap();
        while std::fs::metadata(&log).map_or(0, |m| m.len()) < 7 {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20));
        let between = SystemTime::now();
        writer.write_all(b"it\nnew\n").unwrap();
        drop(writer);
        copier.join().unwrap().unwrap();
        let contents = std::fs::read(&log).unwrap();
        let times = Times::load(&log).unwrap();
        let (first, second) = (times.at(0).unwrap(), times.at(9).unwrap());
        let stamp = |t| berth_api::time::format_rfc3339_nanos(t);

        // Read in pieces that cut lines, as a follower reads a growing log.
        let serve = |timestamps, since| {
            let mut stamper = Stamper {
                times: Times::load(&log).unwrap(),
                log: log.clone(),
                timestamps,
                since,
                at_line_start: true,
                skipping: false,
            };
            [0..5, 5..13, 13..contents.len()]
                .into_iter()
                .flat_map(|r| stamper.lines(r.start as u64, &contents[r]))
                .collect::<Vec<u8>>()
        };
        assert_eq!(
            String::from_utf8(serve(true, None)).unwrap(),
            format!("{} old\n{} split\n{} new\n", stamp(first), stamp(first), stamp(second))
        );
        assert_eq!(serve(false, Some(between)), b"new\n", "\"split\" began before");
        assert_eq!(
            serve(false, Some(first)),
            contents,
            "at the time itself is not before it"
        );
    }

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
