//! The peer service: Raft RPCs from other replicas, and what followers hand to the
//! leader (writes, read index, lease keepalives, membership changes). AppendEntries,
//! votes, forwarded writes and hash requests come on raft streams (see `raft::wire`)
//! and are answered here too; snapshots and the rest come over gRPC. Either way only
//! members of this cluster are served (see `peer_identity`).

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
use crate::peer_identity::{self, PeerIdentity};
use crate::proposer::ProposeError;
use crate::raft::wire::{Admission, Kind};
use crate::raft::{
    CommandOutcome, ForwardOutcome, FrameLimits, NodeId, Response as Applied, TypeConfig, Vote, decode, encode,
};
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
    /// Whether `sender` is a member of this replica's cluster (see `peer_identity`).
    fn admit_sender(&self, sender: PeerIdentity) -> Result<(), StoreError> {
        peer_identity::admit(&self.store.membership(), sender)
    }

    /// Refuses a gRPC request that does not come from a member of this cluster. A
    /// replica asking to join does not know its member ID yet: `is_join` checks the
    /// cluster alone.
    fn check_sender<T>(&self, request: &Request<T>, is_join: bool) -> Result<(), Status> {
        let sender = PeerIdentity::from_metadata(request.metadata()).map_err(to_status)?;
        if is_join {
            let any_member = peer_identity::Membership {
                members: Default::default(),
                ..self.store.membership()
            };
            return peer_identity::admit(&any_member, sender).map_err(to_status);
        }
        self.admit_sender(sender).map_err(to_status)
    }

    fn frame_limits(&self) -> FrameLimits {
        let raft_config = self.store.raft().config();
        FrameLimits::new(self.store.config().max_request_bytes, raft_config.max_payload_entries)
    }

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
            Kind::HashKv => return crate::corruption::answer_hash_request(&self.store, &message),
        };
        encoded.map_err(|e| e.to_string())
    }

    /// Writes a batch a follower forwarded, as this replica's own clients' commands.
    async fn handle_forward(&self, batch: CommandBatch) -> ForwardOutcome {
        if !self.store.is_leader() {
            return ForwardOutcome::NotLeader;
        }
        match self.store.write_forwarded_checked(batch).await {
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

/// A raft stream is served only to members of this cluster, and reads no message
/// longer than its kind can be.
impl Admission for PeerService {
    fn admit(&self, sender: PeerIdentity) -> Result<(), String> {
        self.admit_sender(sender).map_err(|e| e.to_string())
    }

    fn max_message_bytes(&self, kind: Kind) -> usize {
        self.frame_limits().for_kind(kind)
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
        self.check_sender(&request, false)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode_payload(request.into_inner())?;
        encode_payload(&self.handle_append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_sender(&request, false)?;
        let rpc: VoteRequest<NodeId> = decode_payload(request.into_inner())?;
        encode_payload(&self.handle_vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_sender(&request, false)?;
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
        self.check_sender(&request, false)?;
        self.require_leader()?;
        match self.store.write_forwarded_checked(request.into_inner()).await {
            Ok(outcomes) => Ok(Response::new(CommandResultBatch {
                results: outcomes.into_iter().map(command_result).collect(),
            })),
            Err(ProposeError::NotLeader(_)) => Err(Status::failed_precondition(NOT_LEADER)),
            Err(ProposeError::Failed(e)) => Err(to_status(e)),
        }
    }

    async fn read_index(&self, request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        self.check_sender(&request, false)?;
        self.require_leader()?;
        let read_index = self.store.read_index_local().await.map_err(to_status)?;
        Ok(Response::new(ReadIndexResponse { read_index }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        self.check_sender(&request, false)?;
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
        self.check_sender(&request, false)?;
        self.require_leader()?;
        // Confirmed by a quorum first, as on the leader's own path (see `Store::on_leader`).
        self.store.read_index_local().await.map_err(to_status)?;
        self.store
            .lease_time_to_live_local(request.into_inner())
            .map(Response::new)
            .map_err(to_status)
    }

    async fn change_member(&self, request: Request<MemberChange>) -> Result<Response<MemberChangeResponse>, Status> {
        self.check_sender(&request, false)?;
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
        self.check_sender(&request, true)?;
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
