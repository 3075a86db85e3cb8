//! The etcd KV service.

use berth_proto::etcdserverpb::kv_server::Kv;
use berth_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::deadline;
use super::status::to_status;
use crate::store::Store;

pub struct KvService {
    pub store: Store,
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .range(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .put(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .delete_range(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .txn(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn compact(&self, request: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .compact(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}
