//! `/v3/maintenance/*`: alarm, status, defragment, hash, hashkv, snapshot (a stream),
//! transfer-leadership.

use berth_proto::etcdserverpb::SnapshotRequest;
use berth_proto::etcdserverpb::maintenance_server::Maintenance;
use bytes::Bytes;

use super::{Credentials, Rpc, bad_request, stream, unary};
use crate::grpc::maintenance::MaintenanceService;
use crate::http::json;
use crate::http::response::{self, HttpResponse};
use crate::store::Store;

pub(super) async fn serve(rpc: Rpc, body: &Bytes, store: &Store, credentials: &Credentials) -> HttpResponse {
    let maintenance = MaintenanceService { store: store.clone() };
    match rpc {
        Rpc::Alarm => unary(body, |r| maintenance.alarm(credentials.request(r))).await,
        Rpc::Status => unary(body, |r| maintenance.status(credentials.request(r))).await,
        Rpc::Defragment => unary(body, |r| maintenance.defragment(credentials.request(r))).await,
        Rpc::Hash => unary(body, |r| maintenance.hash(credentials.request(r))).await,
        Rpc::HashKv => unary(body, |r| maintenance.hash_kv(credentials.request(r))).await,
        Rpc::MoveLeader => unary(body, |r| maintenance.move_leader(credentials.request(r))).await,
        _ => {
            let request: SnapshotRequest = match json::parse_request(body) {
                Ok(request) => request,
                Err(e) => return bad_request(&e),
            };
            match maintenance.snapshot(credentials.request(request)).await {
                Ok(chunks) => stream::results(chunks.into_inner()),
                Err(status) => response::error(status.code(), status.message()),
            }
        }
    }
}
