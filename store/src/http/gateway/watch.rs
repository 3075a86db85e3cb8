//! `/v3/watch`: watch requests in the body (more may follow while the answer
//! streams), the gRPC watch stream's responses back one per line. As with etcd's
//! gateway, the answer stays open after the body ends, until the client goes.
//!
//! ```text
//!  body ──► RequestStream ──► requests ──► grpc::watch::watch_stream ──► responses
//!                                                                          │
//!  client ◄── {"result":{...}}\n ◄── lines ◄───────────────────────────────┘
//! ```

use berth_proto::etcdserverpb::{WatchRequest, WatchResponse};
use futures::StreamExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Credentials;
use super::bad_request;
use super::request_stream::RequestStream;
use super::stream::{LINE_QUEUE, error_line, result_line};
use crate::grpc::watch::watch_stream;
use crate::http::response::{self, HttpResponse};
use crate::store::Store;

pub(super) async fn serve(
    body: Incoming,
    store: &Store,
    limit_bytes: usize,
    credentials: &Credentials,
) -> HttpResponse {
    let mut requests = RequestStream::<WatchRequest>::new(body, limit_bytes);
    let (request_tx, request_rx) = mpsc::channel(LINE_QUEUE);
    // The first request decides the status, so a bad one is a 400 like any other.
    match requests.next().await {
        Some(Err(e)) => return bad_request(&e),
        Some(Ok(first)) => {
            let _ = request_tx.send(Ok(first)).await;
        }
        None => {}
    }
    let caller = crate::grpc::auth::caller(store, &credentials.request(())).map_err(drop);
    let responses = watch_stream(store.clone(), caller, ReceiverStream::new(request_rx));
    let (lines, rx) = mpsc::channel(LINE_QUEUE);
    tokio::spawn(pump(requests, request_tx, responses, lines));
    response::json_lines(rx)
}

/// Moves requests in and responses out until the client goes or the stream fails.
/// Holding `request_tx` keeps the watch stream open after the body has ended.
async fn pump(
    mut requests: RequestStream<WatchRequest>,
    request_tx: mpsc::Sender<Result<WatchRequest, Status>>,
    mut responses: impl futures::Stream<Item = Result<WatchResponse, Status>> + Unpin,
    lines: mpsc::Sender<bytes::Bytes>,
) {
    let mut is_reading = true;
    loop {
        tokio::select! {
            request = requests.next(), if is_reading => match request {
                Some(Ok(request)) => {
                    if request_tx.send(Ok(request)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let _ = lines.send(error_line(&Status::invalid_argument(e.0))).await;
                    return;
                }
                None => is_reading = false,
            },
            response = responses.next() => match response {
                Some(Ok(response)) => {
                    if lines.send(result_line(&response)).await.is_err() {
                        return;
                    }
                }
                Some(Err(status)) => {
                    let _ = lines.send(error_line(&status)).await;
                    return;
                }
                None => return,
            },
            () = lines.closed() => return,
        }
    }
}
