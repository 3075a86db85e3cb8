//! Streamed answers: one `{"result":{...}}` per line, and a failure as the last line
//! (`{"error":{"grpc_code":N,"http_code":N,"message":"...","http_status":"..."}}`),
//! as etcd's gateway streams them.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::Status;

use crate::http::json::{JsonMessage, Out};
use crate::http::response::{self, HttpResponse};

/// Lines waiting for a slow reader; past this the stream waits for it.
pub const LINE_QUEUE: usize = 64;

pub fn result_line<M: JsonMessage>(message: &M) -> Bytes {
    let mut line = Out::Object(vec![("result", Out::Object(message.to_json()))]).render();
    line.push('\n');
    Bytes::from(line)
}

pub fn error_line(status: &Status) -> Bytes {
    let http = response::http_status(status.code());
    let error = Out::Object(vec![
        ("grpc_code", Out::Scalar((status.code() as i32).into())),
        ("http_code", Out::Scalar(http.as_u16().into())),
        ("message", Out::string(status.message())),
        ("http_status", Out::string(http.canonical_reason().unwrap_or(""))),
    ]);
    Bytes::from(format!("{}\n", Out::Object(vec![("error", error)]).render()))
}

/// A server stream of the gRPC service as lines, until it ends or fails.
pub fn results<M, S>(mut answers: S) -> HttpResponse
where
    M: JsonMessage + Send + 'static,
    S: Stream<Item = Result<M, Status>> + Send + Unpin + 'static,
{
    let (lines, rx) = mpsc::channel(LINE_QUEUE);
    tokio::spawn(async move {
        while let Some(answer) = answers.next().await {
            let (line, last) = match answer {
                Ok(message) => (result_line(&message), false),
                Err(status) => (error_line(&status), true),
            };
            if lines.send(line).await.is_err() || last {
                return;
            }
        }
    });
    response::json_lines(rx)
}
