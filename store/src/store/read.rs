//! Reads: linearizable by read index (the leader confirms itself with a quorum and
//! the replica waits until it has applied that far), serializable from local state.
//!
//! A read is idempotent: while no leader is known, or the one known is gone or no
//! longer leads, it waits for the next and asks again, until the request's deadline.

use super::*;

impl Store {
    /// Waits until this replica has applied everything committed before the call:
    /// the read index, confirmed by the leader with a quorum. Concurrent reads share
    /// one confirmation (see `read_index`), which is looked for until etcd's request
    /// timeout; each read waits for it until its own deadline.
    pub async fn read_barrier(&self) -> Result<()> {
        let deadline = self.deadline();
        let store = self.without_deadline();
        let index = tokio::time::timeout_at(
            deadline,
            self.inner.read_batcher.read_index(move || {
                let store = store.clone();
                async move { store.fetch_read_index().await }
            }),
        )
        .await
        .map_err(|_| StoreError::Timeout)??;
        self.wait_applied(Some(index), deadline).await
    }

    /// One read index: from this replica's Raft if it leads, else from the leader;
    /// asked again of the next leader when the one asked cannot answer.
    pub(super) async fn fetch_read_index(&self) -> Result<u64> {
        let deadline = self.deadline();
        loop {
            let leader = self.wait_for_leader(deadline).await?;
            let attempt = if leader == self.inner.id {
                self.confirm_leadership(deadline).await
            } else {
                self.ask_read_index(leader, deadline).await
            };
            match attempt {
                Err(StoreError::LeaderChanged) => {
                    if !self.pause_before_retry(deadline).await {
                        return Err(StoreError::LeaderChanged);
                    }
                }
                other => return other,
            }
        }
    }

    /// The leader's read index, asked of it over the peer service. Any failure but
    /// the deadline reads as "leader changed": the caller asks again.
    async fn ask_read_index(&self, leader: NodeId, deadline: Instant) -> Result<u64> {
        let mut client = self.peer(leader)?;
        let mut request = tonic::Request::new(ReadIndexRequest {});
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let reply = client.read_index(request).await.map_err(|s| match s.code() {
            tonic::Code::DeadlineExceeded => StoreError::Timeout,
            _ => {
                tracing::debug!(leader, status = %s, "the leader did not give a read index");
                StoreError::LeaderChanged
            }
        })?;
        Ok(reply.into_inner().read_index)
    }

    /// The leader's half of `ReadIndex`, for followers: batched like local reads.
    pub async fn read_index_local(&self) -> Result<u64> {
        let store = self.without_deadline();
        self.inner
            .leader_read_batcher
            .read_index(move || {
                let store = store.clone();
                async move { store.confirm_leadership(store.deadline()).await }
            })
            .await
    }

    /// Confirms leadership with a quorum and returns the index to read at: the
    /// leader's commit index, or its last log index when that is greater.
    ///
    /// openraft's read index is the commit index this replica knows. A leader that
    /// restarted (openraft restores a replica that led as leader, in the same term)
    /// knows only the commit index it had on disk, which may be older than writes it
    /// acknowledged before the crash. Every write acknowledged before this read is in
    /// the leader's log, so reading at its last log index (once applied) sees them all.
    async fn confirm_leadership(&self, deadline: Instant) -> Result<u64> {
        let last_log = self.inner.raft.metrics().borrow().last_log_index.unwrap_or(0);
        // A leader cut off from its quorum cannot confirm itself: give up rather
        // than wait for ever.
        match tokio::time::timeout_at(deadline, self.inner.raft.get_read_log_id()).await {
            Ok(Ok((read_log_id, _))) => Ok(read_log_id.map_or(0, |l| l.index).max(last_log)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "read index on the leader failed");
                Err(StoreError::LeaderChanged)
            }
            Err(_) => Err(StoreError::Timeout),
        }
    }

    pub(super) async fn wait_applied(&self, index: Option<u64>, deadline: Instant) -> Result<()> {
        let Some(index) = index else { return Ok(()) };
        if self.inner.state.read().last_applied.is_some_and(|l| l.index >= index) {
            return Ok(());
        }
        self.inner
            .raft
            .wait(Some(deadline.saturating_duration_since(Instant::now())))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Timeout)
    }

    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        validate::range(&req)?;
        if !req.serializable && !self.inner.config.test_faults.stale_reads {
            self.read_barrier().await?;
        }
        let result = {
            let state = self.inner.state.read();
            state
                .kv
                .range(&KeyRange::new(&req.key, &req.range_end), &range_options(&req))?
        };
        Ok(RangeResponse {
            header: Some(self.header(result.current_revision)),
            kvs: result.kvs,
            more: result.more,
            count: result.count,
        })
    }

    pub fn current_revision(&self) -> i64 {
        self.inner.state.read().kv.current_revision()
    }
}
