//! Group commit: client commands queue here and go into the log many at a time,
//! one Raft entry (and so one fsync per replica) for all the commands that arrived
//! while the previous entries were in flight.
//!
//! ```text
//!  commands ──► queue ──► batch ──┬─ this replica leads ──► raft.client_write(batch)
//!                                 └─ another leads ──► Peer.ForwardBatch ──► its raft.client_write(batch)
//! ```
//!
//! At most `MAX_IN_FLIGHT` batches are outstanding; while they are, new commands
//! accumulate and form the next batch. A follower forwards whole batches, so its
//! clients' writes also cost the leader one entry per batch, not one per command.

use std::sync::Arc;

use berth_proto::berthpb::{Command, CommandBatch, CommandResult};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::StoreError;
use crate::peers::PeerClients;
use crate::raft::{MemberInfo, NodeId, Raft, Request};

const MAX_BATCH: usize = 512;
const MAX_IN_FLIGHT: usize = 4;
const QUEUE: usize = 8192;
/// How long a forwarded batch may take before its outcome counts as unknown.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7);

/// Why a proposal was not applied.
#[derive(Debug)]
pub enum ProposeError {
    /// Nothing was written: no replica was leader for it, or the entry was
    /// truncated away. Safe to propose again.
    NotLeader(Option<NodeId>),
    Failed(StoreError),
}

type Reply = oneshot::Sender<Result<CommandResult, ProposeError>>;

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<(Command, Reply)>,
}

impl Proposer {
    pub fn start(raft: Raft, me: NodeId, peers: Arc<PeerClients>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, me, peers, rx));
        Self { tx }
    }

    pub async fn propose(&self, command: Command) -> Result<CommandResult, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((command, reply))
            .await
            .map_err(|_| ProposeError::Failed(StoreError::Stopped))?;
        rx.await.map_err(|_| ProposeError::Failed(StoreError::Stopped))?
    }
}

async fn run(raft: Raft, me: NodeId, peers: Arc<PeerClients>, mut rx: mpsc::Receiver<(Command, Reply)>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut commands = vec![first.0];
        let mut replies = vec![first.1];
        while commands.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((command, reply)) => {
                    commands.push(command);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let leader = raft.metrics().borrow().current_leader;
        let raft = raft.clone();
        let peers = peers.clone();
        tokio::spawn(async move {
            let batch = CommandBatch { commands };
            let outcome = match leader {
                Some(leader) if leader == me => write_locally(&raft, batch).await,
                Some(leader) => forward(&peers, leader, batch).await,
                None => Err(ProposeError::NotLeader(None)),
            };
            dispatch(outcome, replies);
            drop(permit);
        });
    }
}

/// Appends a batch to this replica's log (it leads) and waits for it to apply.
pub async fn write_locally(raft: &Raft, batch: CommandBatch) -> Result<Vec<CommandResult>, ProposeError> {
    raft.client_write(Request(batch))
        .await
        .map(|written| written.data.0)
        .map_err(|e| classify(&e))
}

async fn forward(peers: &PeerClients, leader: NodeId, batch: CommandBatch) -> Result<Vec<CommandResult>, ProposeError> {
    let mut client = peers.client(leader).map_err(ProposeError::Failed)?;
    let mut request = tonic::Request::new(batch);
    request.set_timeout(FORWARD_TIMEOUT);
    match client.forward_batch(request).await {
        Ok(reply) => Ok(reply.into_inner().results),
        Err(status)
            if status.code() == tonic::Code::FailedPrecondition && status.message() == crate::grpc::NOT_LEADER =>
        {
            Err(ProposeError::NotLeader(None))
        }
        // The leader may or may not have applied it: say so rather than retry.
        Err(status) if status.code() == tonic::Code::DeadlineExceeded => Err(ProposeError::Failed(StoreError::Timeout)),
        Err(status) if status.code() == tonic::Code::Unavailable => {
            Err(ProposeError::Failed(StoreError::LeaderChanged))
        }
        Err(status) => Err(ProposeError::Failed(crate::grpc::status_to_error(&status))),
    }
}

fn dispatch(outcome: Result<Vec<CommandResult>, ProposeError>, replies: Vec<Reply>) {
    match outcome {
        Ok(results) => {
            if results.len() != replies.len() {
                tracing::error!(
                    results = results.len(),
                    commands = replies.len(),
                    "apply returned a result count that does not match"
                );
            }
            let mut results = results.into_iter();
            for reply in replies {
                let result = results
                    .next()
                    .ok_or_else(|| ProposeError::Failed(StoreError::Internal("missing apply result".into())));
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            for reply in replies {
                let copy = match &e {
                    ProposeError::NotLeader(l) => ProposeError::NotLeader(*l),
                    ProposeError::Failed(f) => ProposeError::Failed(f.clone()),
                };
                let _ = reply.send(Err(copy));
            }
        }
    }
}

fn classify(e: &RaftError<NodeId, ClientWriteError<NodeId, MemberInfo>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader(f.leader_id),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ProposeError::Failed(StoreError::Internal(e.to_string()))
        }
        RaftError::Fatal(_) => ProposeError::Failed(StoreError::Stopped),
    }
}
