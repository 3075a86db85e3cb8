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

use super::auth;
use super::status::to_status;
use crate::alarm;
use crate::error::StoreError;
use crate::state_machine::capture;
use crate::store::{ETCD_VERSION, Store};

pub struct MaintenanceService {
    pub store: Store,
}

/// The size of the pieces a snapshot is sent in (etcd's).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        if request.get_ref().action == berth_proto::etcdserverpb::alarm_request::AlarmAction::Get as i32 {
            auth::permit_user(&self.store, &request)?;
        } else {
            auth::permit_admin(&self.store, &request)?;
        }
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

    /// Rewrites this replica's database compactly (see `backend::defragmentation`);
    /// the replica serves nothing that touches its database meanwhile, as etcd's.
    async fn defragment(&self, request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        let backend = self.store.backend().clone();
        tokio::task::spawn_blocking(move || backend.defragment())
            .await
            .map_err(|e| to_status(StoreError::Internal(e.to_string())))?
            .map_err(|e| to_status(StoreError::Internal(format!("defragmenting: {e}"))))?;
        Ok(Response::new(DefragmentResponse {
            header: Some(self.store.header(self.store.current_revision())),
        }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
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
        auth::permit_admin(&self.store, &request)?;
        self.store
            .hash_kv(request.into_inner().revision)
            .map(Response::new)
            .map_err(to_status)
    }

    type SnapshotStream = SnapshotStream;

    /// The applied state as a portable snapshot file (see `state_machine::snapshot`),
    /// its SHA-256 last, in chunks as etcd sends them, each saying how much is left.
    async fn snapshot(&self, request: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        auth::permit_admin(&self.store, &request)?;
        let store = self.store.clone();
        let (bytes, revision) = tokio::task::spawn_blocking(move || {
            let (file, revision) = capture(store.state(), store.backend())?;
            file.to_portable().map(|bytes| (bytes, revision))
        })
        .await
        .map_err(|e| to_status(StoreError::Internal(e.to_string())))?
        .map_err(|e| to_status(StoreError::Internal(format!("taking a snapshot: {e}"))))?;
        let header = self.store.header(revision);
        let total = bytes.len();
        // Each chunk is cut from the one copy as it is sent.
        let bytes = std::sync::Arc::new(bytes);
        let chunks = (0..total.div_ceil(SNAPSHOT_CHUNK_BYTES)).map(move |i| {
            let end = ((i + 1) * SNAPSHOT_CHUNK_BYTES).min(total);
            Ok(SnapshotResponse {
                header: Some(header),
                remaining_bytes: (total - end) as u64,
                blob: bytes[i * SNAPSHOT_CHUNK_BYTES..end].to_vec(),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn move_leader(&self, request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        let target = request.into_inner().target_id;
        self.store.move_leader(target).await.map_err(to_status)?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.store.header(self.store.current_revision())),
        }))
    }

    async fn downgrade(&self, request: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        auth::permit_admin(&self.store, &request)?;
        Err(to_status(StoreError::Unsupported("Downgrade".into())))
    }
}
