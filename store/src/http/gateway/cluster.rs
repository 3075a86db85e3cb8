//! `/v3/cluster/member/*`: add, remove, update, list, promote.

use berth_proto::etcdserverpb::cluster_server::Cluster;
use bytes::Bytes;
use tonic::Request;

use super::{Rpc, unary};
use crate::grpc::cluster::ClusterService;
use crate::http::response::HttpResponse;
use crate::store::Store;

pub(super) async fn serve(rpc: Rpc, body: &Bytes, store: &Store) -> HttpResponse {
    let cluster = ClusterService { store: store.clone() };
    match rpc {
        Rpc::MemberAdd => unary(body, |r| cluster.member_add(Request::new(r))).await,
        Rpc::MemberRemove => unary(body, |r| cluster.member_remove(Request::new(r))).await,
        Rpc::MemberUpdate => unary(body, |r| cluster.member_update(Request::new(r))).await,
        Rpc::MemberPromote => unary(body, |r| cluster.member_promote(Request::new(r))).await,
        _ => unary(body, |r| cluster.member_list(Request::new(r))).await,
    }
}
