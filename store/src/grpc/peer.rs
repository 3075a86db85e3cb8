//! The peer service: Raft RPCs from other replicas, and what followers hand to the
//! leader (writes, read index, lease keepalives, membership changes). AppendEntries,
//! votes and forwarded writes come on raft streams (see `raft::wire`) and are answered
//! here too; snapshots and the rest come over gRPC.

use berth_proto::Message;
use berth_proto::berthpb::peer_server::Peer;
use berth_proto::berthpb::{
    ApplyError, CommandBatch, CommandResult, CommandResultBatch, JoinRequest, JoinResponse, MemberChange,
    MemberChangeResponse, RaftPayload, ReadIndexRequest, ReadIndexResponse, TimeoutNowRequest, TimeoutNowResponse,
    apply_error, command_result,
};
use berth_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest, VoteResponse};
use tonic::{Request, Response, Status};

use super::status::{NOT_LEADER, to_status};
use crate::error::StoreError;
use crate::proposer::ProposeError;
use crate::raft::wire::Kind;
use crate::raft::{CommandOutcome, ForwardOutcome, NodeId, Response as Applied, TypeConfig, Vote, decode, encode};
use crate::store::Store;

#[derive(Clone)]
pub struct PeerService {
    pub store: Store,
}

fn decode_payload<T: serde::de::DeserializeOwned>(payload: RaftPayload) -> Result<T, Status> {
    decode(&payload.data).map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode_payload<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    encode(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

impl PeerService {
    /// True when a request carrying `vote` comes from the leader this replica follows
    /// (or a newer one), which is word from a leader for the election timer.
    fn is_from_current_leader(&self, vote: &Vote) -> bool {
        *vote >= self.store.raft().metrics().borrow().vote
    }

    async fn handle_append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        if self.is_from_current_leader(&rpc.vote) {
            self.store.leader_contact().note();
        }
        let result = self.store.raft().append_entries(rpc).await;
        // Anything but a higher vote means the sender is the leader this replica follows.
        if matches!(&result, Ok(response) if !matches!(response, AppendEntriesResponse::HigherVote(_))) {
            self.store.leader_contact().note();
        }
        result
    }

    async fn handle_vote(&self, rpc: VoteRequest<NodeId>) -> Result<VoteResponse<NodeId>, RaftError<NodeId>> {
        let result = self.store.raft().vote(rpc).await;
        // As in Raft, granting a vote restarts the election timer.
        if matches!(&result, Ok(response) if response.vote_granted) {
            self.store.leader_contact().note();
        }
        result
    }

    /// Answers a request that came on a raft stream (see `raft::wire`): the encoded
    /// result, or why the request could not be read.
    pub async fn answer_raft_stream(&self, kind: Kind, message: Vec<u8>) -> Result<Vec<u8>, String> {
        let undecodable = |e: bincode::error::DecodeError| format!("undecodable raft message: {e}");
        let encoded = match kind {
            Kind::AppendEntries => encode(&self.handle_append_entries(decode(&message).map_err(undecodable)?).await),
            Kind::Vote => encode(&self.handle_vote(decode(&message).map_err(undecodable)?).await),
            Kind::ForwardBatch => {
                let batch = CommandBatch::decode(message.as_slice())
                    .map_err(|e| format!("undecodable forwarded batch: {e}"))?;
                encode(&self.handle_forward(batch).await)
            }
        };
        encoded.map_err(|e| e.to_string())
    }

    /// Writes a batch a follower forwarded, as this replica's own clients' commands.
    async fn handle_forward(&self, batch: CommandBatch) -> ForwardOutcome {
        if !self.store.is_leader() {
            return ForwardOutcome::NotLeader;
        }
        match self.store.write_forwarded(batch).await {
            Ok(outcomes) => ForwardOutcome::Applied(Applied(outcomes)),
            Err(ProposeError::NotLeader(_)) => ForwardOutcome::NotLeader,
            Err(ProposeError::Failed(e)) => ForwardOutcome::Failed(e),
        }
    }

    fn require_leader(&self) -> Result<(), Status> {
        if self.store.is_leader() {
            Ok(())
        } else {
            Err(Status::failed_precondition(NOT_LEADER))
        }
    }
}

/// An outcome in the protobuf form that `Peer.ForwardBatch` over gRPC answers with,
/// where an error is a code and a text: its numbers stay here. Followers forward on
/// raft streams, which carry the error whole (see `raft::forward`).
fn command_result(outcome: CommandOutcome) -> CommandResult {
    use apply_error::Code;
    let error = |code: Code, e: StoreError| ApplyError {
        code: code as i32,
        message: e.to_string(),
    };
    let result = match outcome {
        Ok(result) => result,
        Err(e) => command_result::Result::Error(match e {
            StoreError::Compacted { .. } => error(Code::Compacted, e),
            StoreError::FutureRevision { .. } => error(Code::FutureRevision, e),
            StoreError::LeaseNotFound { .. } => error(Code::LeaseNotFound, e),
            StoreError::LeaseExists { .. } => error(Code::LeaseExists, e),
            StoreError::KeyNotFound => error(Code::KeyNotFound, e),
            StoreError::Internal(message) => ApplyError {
                code: Code::Unknown as i32,
                message,
            },
            other => error(Code::Unknown, other),
        }),
    };
    CommandResult { result: Some(result) }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode_payload(request.into_inner())?;
        encode_payload(&self.handle_append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: VoteRequest<NodeId> = decode_payload(request.into_inner())?;
        encode_payload(&self.handle_vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode_payload(request.into_inner())?;
        // A leader streaming a snapshot sends no AppendEntries meanwhile: while a chunk
        // from it is handled (installing the last one may take a while), this replica
        // does not campaign.
        let _installing = self
            .is_from_current_leader(&rpc.vote)
            .then(|| self.store.leader_contact().installing());
        let result = self.store.raft().install_snapshot(rpc).await;
        encode_payload(&result)
    }

    async fn forward_batch(&self, request: Request<CommandBatch>) -> Result<Response<CommandResultBatch>, Status> {
        self.require_leader()?;
        match self.store.write_forwarded(request.into_inner()).await {
            Ok(outcomes) => Ok(Response::new(CommandResultBatch {
                results: outcomes.into_iter().map(command_result).collect(),
            })),
            Err(ProposeError::NotLeader(_)) => Err(Status::failed_precondition(NOT_LEADER)),
            Err(ProposeError::Failed(e)) => Err(to_status(e)),
        }
    }

    async fn read_index(&self, _request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        self.require_leader()?;
        let read_index = self.store.read_index_local().await.map_err(to_status)?;
        Ok(Response::new(ReadIndexResponse { read_index }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        self.require_leader()?;
        // Confirmed by a quorum first, as on the leader's own path (see `Store::on_leader`).
        self.store.read_index_local().await.map_err(to_status)?;
        self.store
            .lease_keep_alive_local(request.into_inner())
            .map(Response::new)
            .map_err(to_status)
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.require_leader()?;
        // Confirmed by a quorum first, as on the leader's own path (see `Store::on_leader`).
        self.store.read_index_local().await.map_err(to_status)?;
        self.store
            .lease_time_to_live_local(request.into_inner())
            .map(Response::new)
            .map_err(to_status)
    }

    async fn change_member(&self, request: Request<MemberChange>) -> Result<Response<MemberChangeResponse>, Status> {
        self.require_leader()?;
        let member = self
            .store
            .change_member_local(request.into_inner())
            .await
            .map_err(|e| match e {
                StoreError::LeaderChanged => Status::failed_precondition(NOT_LEADER),
                other => to_status(other),
            })?;
        Ok(Response::new(MemberChangeResponse { member }))
    }

    async fn timeout_now(&self, request: Request<TimeoutNowRequest>) -> Result<Response<TimeoutNowResponse>, Status> {
        let request = request.into_inner();
        self.store
            .timeout_now(request.leader, request.term)
            .await
            .map_err(to_status)?;
        Ok(Response::new(TimeoutNowResponse {}))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let peer_urls = request.into_inner().peer_urls;
        match self.store.member_with_peer_urls(&peer_urls) {
            Some(member_id) => Ok(Response::new(JoinResponse {
                member_id,
                cluster_id: self.store.cluster_id(),
            })),
            None => Err(Status::not_found(format!("no member has peer URLs {peer_urls:?}"))),
        }
    }
}
