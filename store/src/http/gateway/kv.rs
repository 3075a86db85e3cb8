//! `/v3/kv/*`: range, put, deleterange, txn, compaction.

use berth_proto::etcdserverpb::kv_server::Kv;
use bytes::Bytes;
use tonic::Request;

use super::{Rpc, unary};
use crate::grpc::kv::KvService;
use crate::http::response::HttpResponse;
use crate::store::Store;

pub(super) async fn serve(rpc: Rpc, body: &Bytes, store: &Store) -> HttpResponse {
    let kv = KvService { store: store.clone() };
    match rpc {
        Rpc::Range => unary(body, |r| kv.range(Request::new(r))).await,
        Rpc::Put => unary(body, |r| kv.put(Request::new(r))).await,
        Rpc::DeleteRange => unary(body, |r| kv.delete_range(Request::new(r))).await,
        Rpc::Txn => unary(body, |r| kv.txn(Request::new(r))).await,
        _ => unary(body, |r| kv.compact(Request::new(r))).await,
    }
}
