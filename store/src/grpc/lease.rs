//! The etcd Lease service.

use std::pin::Pin;

use berth_proto::etcdserverpb::lease_server::Lease;
use berth_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::status::to_status;
use super::{auth, deadline};
use crate::auth::checks;
use crate::store::Store;

pub struct LeaseService {
    pub store: Store,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, request: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        let caller = auth::permit_user(&self.store, &request)?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .acting_for(caller)
            .lease_grant(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let caller = auth::permit(&self.store, &request, |state, user| {
            checks::lease_keys(&state.auth, &state.leases, user, request.get_ref().id)
        })?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .acting_for(caller)
            .lease_revoke(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        auth::permit_user(&self.store, &request)?;
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let store = self.store.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = incoming.message().await {
                let reply = store.lease_keep_alive(req).await.map_err(to_status);
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        auth::permit_user(&self.store, &request)?;
        deadline::store_for(&self.store, &request)
            .map_err(to_status)?
            .lease_time_to_live(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        auth::permit_user(&self.store, &request)?;
        Ok(Response::new(self.store.lease_leases()))
    }
}
