//! `/v3/cluster/member/*`: add, remove, update, list, promote.

use berth_proto::etcdserverpb::cluster_server::Cluster;
use bytes::Bytes;

use super::{Credentials, Rpc, unary};
use crate::grpc::cluster::ClusterService;
use crate::http::response::HttpResponse;
use crate::store::Store;

pub(super) async fn serve(rpc: Rpc, body: &Bytes, store: &Store, credentials: &Credentials) -> HttpResponse {
    let cluster = ClusterService { store: store.clone() };
    match rpc {
        Rpc::MemberAdd => unary(body, |r| cluster.member_add(credentials.request(r))).await,
        Rpc::MemberRemove => unary(body, |r| cluster.member_remove(credentials.request(r))).await,
        Rpc::MemberUpdate => unary(body, |r| cluster.member_update(credentials.request(r))).await,
        Rpc::MemberPromote => unary(body, |r| cluster.member_promote(credentials.request(r))).await,
        _ => unary(body, |r| cluster.member_list(credentials.request(r))).await,
    }
}
