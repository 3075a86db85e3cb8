//! The etcd v3 JSON gateway: `POST /v3/<service>/<method>` (and `/v3beta/...`, which
//! etcd 3.4 also serves) with a request in JSON, answered in JSON (see `json`).
//!
//! Like etcd's own gateway, which dials the member's gRPC server, each call goes to
//! the gRPC service in-process, so both speak the same answers and the same errors.
//! Streams (watch, lease keep-alive, snapshot) answer one `{"result":{...}}` per line.
//! Auth is served too (`/v3/auth/...`), though berth supports little of it yet.

mod auth;
mod cluster;
mod kv;
mod lease;
mod maintenance;
mod request_stream;
mod stream;
mod watch;

use std::future::Future;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tonic::{Code, Status};

use super::json::{self, JsonError, JsonMessage};
use super::response::{self, HttpResponse};
use crate::store::Store;

/// A gateway method, named by its gRPC service and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
    Watch,
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive,
    LeaseTimeToLive,
    LeaseLeases,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Alarm,
    Status,
    Defragment,
    Hash,
    HashKv,
    Snapshot,
    MoveLeader,
    AuthEnable,
    AuthDisable,
    AuthStatus,
    Authenticate,
    UserAdd,
    UserGet,
    UserList,
    UserDelete,
    UserChangePassword,
    UserGrantRole,
    UserRevokeRole,
    RoleAdd,
    RoleGet,
    RoleList,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
}

/// The method a path names, with etcd's paths (and the older aliases it keeps).
pub fn method_of(path: &str) -> Option<Rpc> {
    let rest = path.strip_prefix("/v3/").or_else(|| path.strip_prefix("/v3beta/"))?;
    Some(match rest {
        "kv/range" => Rpc::Range,
        "kv/put" => Rpc::Put,
        "kv/deleterange" => Rpc::DeleteRange,
        "kv/txn" => Rpc::Txn,
        "kv/compaction" => Rpc::Compact,
        "watch" => Rpc::Watch,
        "lease/grant" => Rpc::LeaseGrant,
        "lease/revoke" | "kv/lease/revoke" => Rpc::LeaseRevoke,
        "lease/keepalive" => Rpc::LeaseKeepAlive,
        "lease/timetolive" | "kv/lease/timetolive" => Rpc::LeaseTimeToLive,
        "lease/leases" | "kv/lease/leases" => Rpc::LeaseLeases,
        "cluster/member/add" => Rpc::MemberAdd,
        "cluster/member/remove" => Rpc::MemberRemove,
        "cluster/member/update" => Rpc::MemberUpdate,
        "cluster/member/list" => Rpc::MemberList,
        "cluster/member/promote" => Rpc::MemberPromote,
        "maintenance/alarm" => Rpc::Alarm,
        "maintenance/status" => Rpc::Status,
        "maintenance/defragment" => Rpc::Defragment,
        "maintenance/hash" => Rpc::Hash,
        "maintenance/hashkv" => Rpc::HashKv,
        "maintenance/snapshot" => Rpc::Snapshot,
        "maintenance/transfer-leadership" => Rpc::MoveLeader,
        _ => return auth::method_of(rest.strip_prefix("auth/")?),
    })
}

/// The largest request body: a request at `--max-request-bytes` grows by a third in
/// base64, and JSON adds names and quotes.
fn body_limit_bytes(store: &Store) -> usize {
    store.config().max_request_bytes * 2 + 64 * 1024
}

/// The credentials of an HTTP request: as etcd's gateway, a token in the
/// `Authorization` header, handed on to the gRPC services as the call's metadata.
#[derive(Debug, Clone, Default)]
pub struct Credentials(Option<tonic::metadata::AsciiMetadataValue>);

impl Credentials {
    fn of<B>(request: &Request<B>) -> Self {
        let token = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|token| token.parse().ok());
        Credentials(token)
    }

    /// A gRPC request for `message` carrying these credentials.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("authorization", token.clone());
        }
        request
    }
}

pub async fn serve(rpc: Rpc, request: Request<Incoming>, store: &Store) -> HttpResponse {
    let limit = body_limit_bytes(store);
    let credentials = Credentials::of(&request);
    match rpc {
        Rpc::Watch => return watch::serve(request.into_body(), store, limit, &credentials).await,
        Rpc::LeaseKeepAlive => return lease::keep_alive(request.into_body(), store, limit, &credentials).await,
        _ => {}
    }
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return response::json(
                StatusCode::PAYLOAD_TOO_LARGE,
                response::error_body(
                    Code::ResourceExhausted,
                    &format!("the request body is larger than {limit} bytes"),
                ),
            );
        }
        Err(e) => return bad_request(&JsonError(format!("reading the request body: {e}"))),
    };
    match rpc {
        Rpc::Range | Rpc::Put | Rpc::DeleteRange | Rpc::Txn | Rpc::Compact => {
            kv::serve(rpc, &body, store, &credentials).await
        }
        Rpc::LeaseGrant | Rpc::LeaseRevoke | Rpc::LeaseTimeToLive | Rpc::LeaseLeases => {
            lease::serve(rpc, &body, store, &credentials).await
        }
        Rpc::MemberAdd | Rpc::MemberRemove | Rpc::MemberUpdate | Rpc::MemberList | Rpc::MemberPromote => {
            cluster::serve(rpc, &body, store, &credentials).await
        }
        Rpc::Alarm | Rpc::Status | Rpc::Defragment | Rpc::Hash | Rpc::HashKv | Rpc::Snapshot | Rpc::MoveLeader => {
            maintenance::serve(rpc, &body, store, &credentials).await
        }
        _ => auth::serve(rpc, &body, store, &credentials).await,
    }
}

/// A request the gateway could not read: 400, in the gateway's error shape.
pub fn bad_request(e: &JsonError) -> HttpResponse {
    response::error(Code::InvalidArgument, &e.0)
}

/// One unary call: the body read as `Req`, the service's answer written as JSON.
async fn unary<Req, Resp, Fut>(body: &Bytes, call: impl FnOnce(Req) -> Fut) -> HttpResponse
where
    Req: JsonMessage,
    Resp: JsonMessage,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request = match json::parse_request::<Req>(body) {
        Ok(request) => request,
        Err(e) => return bad_request(&e),
    };
    match call(request).await {
        Ok(answer) => response::json(StatusCode::OK, json::to_string(answer.get_ref())),
        Err(status) => response::error(status.code(), status.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_etcds_methods() {
        assert_eq!(method_of("/v3/kv/range"), Some(Rpc::Range));
        assert_eq!(method_of("/v3beta/kv/put"), Some(Rpc::Put));
        assert_eq!(method_of("/v3/kv/lease/revoke"), Some(Rpc::LeaseRevoke));
        assert_eq!(method_of("/v3/lease/revoke"), Some(Rpc::LeaseRevoke));
        assert_eq!(method_of("/v3/watch"), Some(Rpc::Watch));
        assert_eq!(method_of("/v3/auth/role/grant"), Some(Rpc::RoleGrantPermission));
        assert_eq!(method_of("/v3/auth/nothing"), None);
        assert_eq!(method_of("/v3/kv/nothing"), None);
        assert_eq!(method_of("/v2/keys"), None);
    }
}
