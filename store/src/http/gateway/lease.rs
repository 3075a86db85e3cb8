//! `/v3/lease/*`: grant, revoke, timetolive, leases, and keepalive, whose body may
//! carry several requests and whose answers stream back one per line.

use berth_proto::etcdserverpb::LeaseKeepAliveRequest;
use berth_proto::etcdserverpb::lease_server::Lease;
use bytes::Bytes;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::request_stream::RequestStream;
use super::stream::{LINE_QUEUE, error_line, result_line};
use super::{Credentials, Rpc, bad_request, unary};
use crate::grpc::lease::LeaseService;
use crate::grpc::status::to_status;
use crate::http::json::JsonError;
use crate::http::response::{self, HttpResponse};
use crate::store::Store;

pub(super) async fn serve(rpc: Rpc, body: &Bytes, store: &Store, credentials: &Credentials) -> HttpResponse {
    let lease = LeaseService { store: store.clone() };
    match rpc {
        Rpc::LeaseGrant => unary(body, |r| lease.lease_grant(credentials.request(r))).await,
        Rpc::LeaseRevoke => unary(body, |r| lease.lease_revoke(credentials.request(r))).await,
        Rpc::LeaseTimeToLive => unary(body, |r| lease.lease_time_to_live(credentials.request(r))).await,
        _ => unary(body, |r| lease.lease_leases(credentials.request(r))).await,
    }
}

/// Each request renews its lease and answers a line, as the gRPC stream does; the
/// answer ends with the body (as etcd's gateway ends it) or at the first failure.
pub(super) async fn keep_alive(
    body: Incoming,
    store: &Store,
    limit_bytes: usize,
    credentials: &Credentials,
) -> HttpResponse {
    if let Err(status) = crate::grpc::auth::permit_user(store, &credentials.request(())) {
        return response::error(status.code(), status.message());
    }
    let mut requests = RequestStream::<LeaseKeepAliveRequest>::new(body, limit_bytes);
    // The first request decides the status, so a bad one is a 400 like any other.
    let first = match requests.next().await {
        None => return response::json_lines(mpsc::channel(1).1),
        Some(Err(e)) => return bad_request(&e),
        Some(Ok(first)) => first,
    };
    let (lines, rx) = mpsc::channel(LINE_QUEUE);
    let store = store.clone();
    tokio::spawn(async move {
        let mut next: Option<Result<LeaseKeepAliveRequest, JsonError>> = Some(Ok(first));
        while let Some(request) = next {
            let line = match request {
                Ok(request) => match store.lease_keep_alive(request).await {
                    Ok(answer) => Ok(result_line(&answer)),
                    Err(e) => Err(error_line(&to_status(e))),
                },
                Err(e) => Err(error_line(&tonic::Status::invalid_argument(e.0))),
            };
            let is_last = line.is_err();
            if lines.send(line.unwrap_or_else(|last| last)).await.is_err() || is_last {
                return;
            }
            next = requests.next().await;
        }
    });
    response::json_lines(rx)
}
