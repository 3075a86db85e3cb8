//! Group commit: client commands queue here and go into the log many at a time,
//! one Raft entry (and so one fsync per replica) for all the commands that arrived
//! while the previous entries were in flight.
//!
//! At most `MAX_IN_FLIGHT` entries are outstanding; while they are, new commands
//! accumulate and form the next entry.

use std::sync::Arc;

use berth_proto::berthpb::{Command, CommandBatch, CommandResult};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::StoreError;
use crate::raft::{NodeId, Raft, Request};

const MAX_BATCH: usize = 512;
const MAX_IN_FLIGHT: usize = 4;
const QUEUE: usize = 8192;

/// Why a proposal was not applied.
#[derive(Debug)]
pub enum ProposeError {
    /// This replica is not the leader; nothing was written. Carries the leader if known.
    NotLeader(Option<NodeId>),
    Failed(StoreError),
}

type Reply = oneshot::Sender<Result<CommandResult, ProposeError>>;

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<(Command, Reply)>,
}

impl Proposer {
    pub fn start(raft: Raft) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx));
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

async fn run(raft: Raft, mut rx: mpsc::Receiver<(Command, Reply)>) {
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
        let raft = raft.clone();
        tokio::spawn(async move {
            let outcome = raft.client_write(Request(CommandBatch { commands })).await;
            match outcome {
                Ok(written) => {
                    let results = written.data.0;
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
                        let _ = reply.send(Err(classify(&e)));
                    }
                }
            }
            drop(permit);
        });
    }
}

fn classify(e: &RaftError<NodeId, ClientWriteError<NodeId, crate::raft::MemberInfo>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader(f.leader_id),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ProposeError::Failed(StoreError::Internal(e.to_string()))
        }
        RaftError::Fatal(_) => ProposeError::Failed(StoreError::Stopped),
    }
}
