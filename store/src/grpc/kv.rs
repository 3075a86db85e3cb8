//! The etcd KV service. With auth on, each call is checked (`grpc::auth`,
//! `auth::checks`) before anything is read or proposed.

use berth_proto::etcdserverpb::kv_server::Kv;
use berth_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::status::to_status;
use super::{auth, deadline};
use crate::auth::checks;
use crate::store::Store;

pub struct KvService {
    pub store: Store,
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        auth::permit(&self.store, &request, |state, user| {
            checks::range(&state.auth, user, request.get_ref())
        })?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .range(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let caller = auth::permit(&self.store, &request, |state, user| {
            checks::put(&state.auth, &state.leases, user, request.get_ref())
        })?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .acting_for(caller)
            .put(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let caller = auth::permit(&self.store, &request, |state, user| {
            checks::delete_range(&state.auth, user, request.get_ref())
        })?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .acting_for(caller)
            .delete_range(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let caller = auth::permit(&self.store, &request, |state, user| {
            checks::txn(&state.auth, &state.leases, user, request.get_ref())
        })?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .acting_for(caller)
            .txn(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn compact(&self, request: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .compact(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}
