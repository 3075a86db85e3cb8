//! `/v3/kv/*`: range, put, deleterange, txn, compaction.

use berth_proto::etcdserverpb::kv_server::Kv;
use bytes::Bytes;

use super::{Credentials, Rpc, unary};
use crate::grpc::kv::KvService;
use crate::http::response::HttpResponse;
use crate::store::Store;

pub(super) async fn serve(rpc: Rpc, body: &Bytes, store: &Store, credentials: &Credentials) -> HttpResponse {
    let kv = KvService { store: store.clone() };
    match rpc {
        Rpc::Range => unary(body, |r| kv.range(credentials.request(r))).await,
        Rpc::Put => unary(body, |r| kv.put(credentials.request(r))).await,
        Rpc::DeleteRange => unary(body, |r| kv.delete_range(credentials.request(r))).await,
        Rpc::Txn => unary(body, |r| kv.txn(credentials.request(r))).await,
        _ => unary(body, |r| kv.compact(credentials.request(r))).await,
    }
}
