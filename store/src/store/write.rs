//! Writes: every change goes through the leader's proposer and the log; a follower
//! forwards them in batches on a raft stream (see `raft::forward`). What apply decided
//! comes back whole: the response, or the error with its numbers.
//!
//! A write that finds no leader, or a leader that is gone or no longer leads, was not
//! written: it waits for the next leader and goes again, until the request's deadline
//! (the client's gRPC deadline, else etcd's request timeout). A failover is then a
//! pause to the clients of the surviving replicas, as in etcd, whose followers hold
//! proposals until a leader is known. Only a write whose fate is unknown (the leader
//! had it when the answer was lost) fails at once, as etcd's "request timed out".

use super::*;

impl Store {
    /// Proposes a command through the leader and returns what apply returned.
    pub async fn propose(&self, command: Command) -> Result<CommandOutcome> {
        let deadline = self.deadline();
        loop {
            self.wait_for_leader(deadline).await?;
            let outcome = tokio::time::timeout_at(deadline, self.inner.proposer.propose(command.clone()))
                .await
                .map_err(|_| StoreError::Timeout)?;
            match outcome {
                Ok(result) => return Ok(result),
                // Nothing was written: the entry never entered a leader's log, or it
                // was truncated away. Safe to send again.
                Err(ProposeError::NotLeader(_)) => {
                    if !self.pause_before_retry(deadline).await {
                        return Err(StoreError::LeaderChanged);
                    }
                }
                Err(ProposeError::Failed(e)) => return Err(e),
            }
        }
    }

    /// Proposes a command only if this replica leads, never through another: for what
    /// only a leader may decide, such as revoking an expired lease. A replica that led,
    /// was paused and resumed still counts lease deadlines that passed while it slept;
    /// forwarded to the new leader, its revocation would end leases that clients kept
    /// alive meanwhile. Proposed here, in its old term, it cannot commit.
    pub async fn propose_as_leader(&self, command: Command) -> Result<CommandOutcome> {
        let batch = berth_proto::berthpb::CommandBatch {
            commands: vec![command],
            ..Default::default()
        };
        match self.write_forwarded(batch).await {
            Ok(mut results) if results.len() == 1 => Ok(results.remove(0)),
            Ok(_) => Err(StoreError::Internal(
                "apply returned a result count that does not match".into(),
            )),
            Err(ProposeError::NotLeader(_)) => Err(StoreError::LeaderChanged),
            Err(ProposeError::Failed(e)) => Err(e),
        }
    }

    /// Has a store that has never been written take this version's numbering now,
    /// with an entry of no commands, so that it reports revision 1 before its first
    /// write as etcd does (see `KvStore::start_numbering`). Only as leader: called
    /// when this replica takes the lead and has applied its log.
    pub async fn start_numbering(&self) -> Result<()> {
        if self.current_revision() != 0 {
            return Ok(());
        }
        match self
            .write_forwarded(berth_proto::berthpb::CommandBatch::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(ProposeError::NotLeader(_)) => Err(StoreError::LeaderChanged),
            Err(ProposeError::Failed(e)) => Err(e),
        }
    }

    /// The leader's side of `ForwardBatch`: a follower's batch joins this replica's
    /// queue whole and goes into one entry with whatever else waits there.
    pub async fn write_forwarded(
        &self,
        batch: berth_proto::berthpb::CommandBatch,
    ) -> std::result::Result<Vec<CommandOutcome>, ProposeError> {
        let (leader, term) = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_leader, metrics.current_term)
        };
        if leader != Some(self.inner.id) {
            return Err(ProposeError::NotLeader(leader));
        }
        tokio::time::timeout_at(self.deadline(), self.inner.proposer.propose_as_leader(batch, term))
            .await
            .map_err(|_| ProposeError::Failed(StoreError::Timeout))?
    }

    pub async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        validate::put(&req)?;
        validate::size(&req, self.inner.config.max_request_bytes)?;
        self.refuse_if_disk_full()?;
        self.check_quota().await?;
        self.write(command::Command::Put(req), |r| match r {
            command_result::Result::Put(resp) => Some(resp),
            _ => None,
        })
        .await
    }

    pub async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        validate::delete_range(&req)?;
        validate::size(&req, self.inner.config.max_request_bytes)?;
        self.write(command::Command::DeleteRange(req), |r| match r {
            command_result::Result::DeleteRange(resp) => Some(resp),
            _ => None,
        })
        .await
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        validate::txn(&req)?;
        validate::size(&req, self.inner.config.max_request_bytes)?;
        if !validate::txn_has_writes(&req) {
            // A read-only transaction is served like a read: no log entry.
            if !validate::txn_is_serializable(&req) {
                self.read_barrier().await?;
            }
            let mut resp = self.inner.state.read().read_only_txn(&req)?;
            self.fill_header(&mut resp.header);
            return Ok(resp);
        }
        if validate::txn_has_puts(&req) {
            self.refuse_if_disk_full()?;
            self.check_quota().await?;
        }
        self.write(command::Command::Txn(req), |r| match r {
            command_result::Result::Txn(resp) => Some(resp),
            _ => None,
        })
        .await
    }

    pub async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse> {
        self.write(command::Command::Compaction(req), |r| match r {
            command_result::Result::Compaction(resp) => Some(resp),
            _ => None,
        })
        .await
    }

    /// Proposes a write and takes the response of the expected kind from its outcome,
    /// or the error that apply decided, numbers and all.
    pub(super) async fn write<T: HasHeader>(
        &self,
        command: command::Command,
        expect: fn(command_result::Result) -> Option<T>,
    ) -> Result<T> {
        let mut command = Command { command: Some(command) };
        if let Some(caller) = &self.caller {
            // Checked again by apply if the auth state changes before it gets there.
            command = Command {
                command: Some(command::Command::Authorized(Box::new(
                    berth_proto::berthpb::AuthorizedCommand {
                        user: caller.0.clone(),
                        auth_revision: caller.1,
                        command: Some(Box::new(command)),
                    },
                ))),
            };
        }
        let result = self.propose(command).await??;
        let mut resp =
            expect(result).ok_or_else(|| StoreError::Internal("apply returned a result of another kind".into()))?;
        self.fill_header(resp.header_mut());
        Ok(resp)
    }
}
