//! MoveLeader: handing the leadership to a chosen voter (`etcdctl move-leader`).
//!
//! openraft 0.9 has no leadership transfer, so berth builds etcd's from what it has:
//!
//! ```text
//!  1. only the leader hands over ("not leader"), and only to a voter
//!     ("bad leader transferee"); to itself it is done at once
//!  2. wait until the target holds the leader's whole log, so that it can win a vote
//!  3. stop heartbeats: a voter refuses every vote while its leader lease runs
//!     (openraft's `election_timeout_max` since it last heard from the leader)
//!  4. once the leases ran out, ask the target to campaign at once (Peer.TimeoutNow);
//!     its log is as long as anyone's, so it wins the next term, and this replica
//!     steps down when it sees that term
//!  5. heartbeats back on, whatever happened: they matter again only if this replica
//!     leads again, and then they must run
//! ```
//!
//! Writes made meanwhile still replicate and renew the voters' leases; then the
//! target's campaign may fail and the answer is a timeout, as etcd's is when a
//! transfer takes too long.

use berth_proto::berthpb::TimeoutNowRequest;

use super::*;

impl Store {
    pub async fn move_leader(&self, target: NodeId) -> Result<()> {
        if !self.is_leader() {
            return Err(StoreError::NotLeader);
        }
        if target == self.inner.id {
            return Ok(());
        }
        let is_voter = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == target)
        };
        if !is_voter {
            return Err(StoreError::BadLeaderTransferee { id: target });
        }
        let patience = self.inner.config.election_timeout * 5;
        self.inner
            .raft
            .wait(Some(patience))
            .metrics(
                |m| {
                    let matched = m.replication.as_ref().and_then(|r| r.get(&target).cloned().flatten());
                    m.current_leader == Some(m.id) && matched.map(|l| l.index) >= m.last_log_index
                },
                "the transferee to catch up",
            )
            .await
            .map_err(|_| StoreError::Timeout)?;
        self.inner.raft.runtime_config().heartbeat(false);
        let handed_over = self.hand_over(target, patience).await;
        self.inner.raft.runtime_config().heartbeat(true);
        handed_over
    }

    async fn hand_over(&self, target: NodeId, patience: Duration) -> Result<()> {
        let (lease_ms, heartbeat_ms) = {
            let config = self.inner.raft.config();
            (config.election_timeout_max, config.heartbeat_interval)
        };
        // A heartbeat already on its way when they stopped renews a lease once more.
        tokio::time::sleep(Duration::from_millis(lease_ms + heartbeat_ms)).await;
        let term = self.inner.raft.metrics().borrow().current_term;
        let mut client = self.peer(target)?;
        let mut request = tonic::Request::new(TimeoutNowRequest {
            leader: self.inner.id,
            term,
        });
        request.set_timeout(self.request_timeout());
        client
            .timeout_now(request)
            .await
            .map_err(|s| crate::grpc::status_to_error(&s))?;
        self.inner
            .raft
            .wait(Some(patience))
            .metrics(|m| m.current_leader == Some(target), "the transferee to lead")
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Timeout)
    }

    /// The transferee's half: campaign now, if the request is from the leader this
    /// replica follows, in its current term (a late request from a deposed leader
    /// must not start an election).
    pub async fn timeout_now(&self, leader: NodeId, term: u64) -> Result<()> {
        let (current_leader, current_term) = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_leader, metrics.current_term)
        };
        if current_leader != Some(leader) || current_term != term {
            return Err(StoreError::LeaderChanged);
        }
        tracing::info!(
            from = format!("{leader:x}"),
            term,
            "asked to take the leadership; campaigning"
        );
        self.inner.raft.trigger().elect().await.map_err(|_| StoreError::Stopped)
    }
}
