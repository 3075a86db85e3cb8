//! The etcd Maintenance service: status, alarms and hashes so replicas can be compared.

use std::pin::Pin;

use berth_proto::etcdserverpb::maintenance_server::Maintenance;
use berth_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::alarm;
use crate::error::StoreError;
use crate::store::{ETCD_VERSION, Store};

pub struct MaintenanceService {
    pub store: Store,
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        self.store
            .alarm(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let metrics = self.store.raft().metrics().borrow().clone();
        let (revision, applied) = {
            let state = self.store.state().read();
            (state.kv.current_revision(), state.last_applied.map_or(0, |l| l.index))
        };
        let db_size = self.store.backend().size_bytes() as i64;
        let mut errors = Vec::new();
        if metrics.current_leader.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
        // As etcd: every active alarm, in its protobuf text form.
        errors.extend(self.store.alarms().iter().map(alarm::status_error));
        // What this member could not write for want of space, file and error.
        errors.extend(self.store.space_reports().iter().map(|report| report.to_string()));
        Ok(Response::new(StatusResponse {
            header: Some(self.store.header(revision)),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: applied,
            errors,
            db_size_in_use: db_size,
            is_learner: self.store.is_learner(),
        }))
    }

    async fn defragment(&self, _request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        // The backend reclaims space on its own; a defragment has nothing to do.
        Ok(Response::new(DefragmentResponse {
            header: Some(self.store.header(self.store.current_revision())),
        }))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (revision, hash) = {
            let state = self.store.state().read();
            let revision = state.kv.current_revision();
            (revision, state.kv.hash_kv(revision).map_err(|e| to_status(e.into()))?)
        };
        Ok(Response::new(HashResponse {
            header: Some(self.store.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.store
            .hash_kv(request.into_inner().revision)
            .map(Response::new)
            .map_err(to_status)
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, _request: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        Err(to_status(StoreError::Unsupported(
            "snapshot download (etcdctl snapshot save)".into(),
        )))
    }

    async fn move_leader(&self, _request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(to_status(StoreError::Unsupported("MoveLeader".into())))
    }

    async fn downgrade(&self, _request: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(to_status(StoreError::Unsupported("Downgrade".into())))
    }
}
