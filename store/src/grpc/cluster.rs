//! The etcd Cluster service, over openraft's learners and `change_membership`.

use berth_proto::berthpb::{MemberChange, member_change};
use berth_proto::etcdserverpb::cluster_server::Cluster;
use berth_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::auth;
use super::status::to_status;
use crate::store::Store;

pub struct ClusterService {
    pub store: Store,
}

impl ClusterService {
    fn header(&self) -> Option<berth_proto::etcdserverpb::ResponseHeader> {
        Some(self.store.header(self.store.current_revision()))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        let req = request.into_inner();
        let change = MemberChange {
            action: member_change::Action::Add as i32,
            peer_urls: req.peer_ur_ls,
            is_learner: req.is_learner,
            ..Default::default()
        };
        let member = self.store.change_member(change).await.map_err(to_status)?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member,
            members: self.store.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        let change = MemberChange {
            action: member_change::Action::Remove as i32,
            id: request.into_inner().id,
            ..Default::default()
        };
        self.store.change_member(change).await.map_err(to_status)?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.store.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        let req = request.into_inner();
        let change = MemberChange {
            action: member_change::Action::Update as i32,
            id: req.id,
            peer_urls: req.peer_ur_ls,
            ..Default::default()
        };
        self.store.change_member(change).await.map_err(to_status)?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.store.members(),
        }))
    }

    async fn member_list(&self, _request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.store.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        let change = MemberChange {
            action: member_change::Action::Promote as i32,
            id: request.into_inner().id,
            ..Default::default()
        };
        self.store.change_member(change).await.map_err(to_status)?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: self.store.members(),
        }))
    }
}
