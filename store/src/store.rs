//! The store handle: one replica, usable in-process (`Store::open`) or behind the
//! gRPC services. Every client operation of the etcd API has a method here.
//!
//! ```text
//!   write ──► leader? ── yes ──► Proposer (group commit) ──► Raft log ──► apply ──► result
//!               │ no
//!               └──► Peer.Forward to the leader (same path there)
//!   linearizable read ──► read index (leader confirms with a quorum) ──► wait for
//!                         local apply ──► read the local state
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::berthpb::{
    ApplyError, Command, CommandResult, MemberChange, ReadIndexRequest, apply_error, command, command_result,
    member_change, peer_client::PeerClient,
};
use berth_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, Member, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use openraft::{ChangeMembers, ServerState};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::backend::{self, SharedBackend};
use crate::config::{ClusterState, StoreConfig, added_member_id, cluster_id, member_id};
use crate::error::{Result, StoreError};
use crate::lease::{Lessor, MAX_LEASE_TTL_SECONDS};
use crate::mvcc::KeyRange;
use crate::proposer::{ProposeError, Proposer};
use crate::raft::{LogStore, MemberInfo, Network, NodeId, Raft};
use crate::state_machine::{AppliedState, StateHandle, StateMachineStore, range_options};
use crate::validate;
use crate::watch::WatchHub;

/// etcd's version string as Status reports it; clients read it to pick features.
pub const ETCD_VERSION: &str = "3.4.0";
const MEMBER_FILE: &str = "member.json";

/// How long a request waits for a leader or for its entry to apply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

struct Inner {
    id: NodeId,
    cluster_id: u64,
    config: StoreConfig,
    raft: Raft,
    network: Network,
    state: StateHandle,
    backend: SharedBackend,
    hub: WatchHub,
    lessor: Lessor,
    proposer: Proposer,
    peers: Mutex<BTreeMap<NodeId, (String, PeerClient<Channel>)>>,
    lease_id_seq: AtomicU64,
    shutdown: watch::Sender<bool>,
}

/// A running store replica. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MemberRecord {
    name: String,
    id: NodeId,
    cluster_id: u64,
    cluster_token: String,
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("{what} {}: {e}", path.display()))
}

/// Reads or creates `member.json`; refuses a data dir that is not what it claims.
fn open_member_dir(config: &StoreConfig, id: NodeId, cluster_id: u64) -> Result<(PathBuf, MemberRecord, bool)> {
    let member_dir = config.data_dir.join("member");
    let record_path = member_dir.join(MEMBER_FILE);
    let db_dir = member_dir.join("db");
    match std::fs::read(&record_path) {
        Ok(bytes) => {
            let record: MemberRecord = serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Internal(format!(
                    "data dir {} is corrupt: {}: {e}",
                    config.data_dir.display(),
                    record_path.display()
                ))
            })?;
            if record.name != config.name {
                return Err(StoreError::InvalidArgument(format!(
                    "data dir {} belongs to member {:?}, not {:?}",
                    config.data_dir.display(),
                    record.name,
                    config.name
                )));
            }
            if !db_dir.exists() {
                return Err(StoreError::Internal(format!(
                    "data dir {} is corrupt: {} is missing",
                    config.data_dir.display(),
                    db_dir.display()
                )));
            }
            Ok((member_dir, record, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A database without a record is either a first start that was
            // interrupted (the database is empty) or damage; `Store::open` tells which.
            std::fs::create_dir_all(&member_dir).map_err(|e| io_error("creating", &member_dir, e))?;
            let record = MemberRecord {
                name: config.name.clone(),
                id,
                cluster_id,
                cluster_token: config.initial_cluster_token.clone(),
            };
            Ok((member_dir, record, false))
        }
        Err(e) => Err(io_error("reading", &record_path, e)),
    }
}

fn write_member_record(member_dir: &Path, record: &MemberRecord) -> Result<()> {
    let path = member_dir.join(MEMBER_FILE);
    let tmp = member_dir.join(format!("{MEMBER_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Internal(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(member_dir)?.sync_all()
    };
    write().map_err(|e| io_error("writing", &path, e))
}

/// Asks the running members, in turn, for the ID that MemberAdd gave this replica.
async fn join_cluster(config: &StoreConfig) -> Result<NodeId> {
    let me = &config.initial_advertise_peer_urls;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last_error = String::from("no other member in --initial-cluster");
    while tokio::time::Instant::now() < deadline {
        for (name, urls) in config.initial_cluster.iter().filter(|(_, urls)| urls != me) {
            let url = config
                .dial_peer_urls
                .get(name)
                .cloned()
                .or_else(|| urls.first().cloned())
                .unwrap_or_default();
            let Ok(channel) = crate::raft::peer_channel(&url) else {
                continue;
            };
            let mut client = PeerClient::new(channel);
            let mut request = tonic::Request::new(berth_proto::berthpb::JoinRequest { peer_urls: me.clone() });
            request.set_timeout(Duration::from_secs(2));
            match client.join(request).await {
                Ok(reply) => return Ok(reply.into_inner().member_id),
                Err(status) => last_error = format!("{name} ({url}): {}", status.message()),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(StoreError::InvalidArgument(format!(
        "cannot join the cluster with --initial-cluster-state existing: {last_error} \
         (add this member with `etcdctl member add` first)"
    )))
}

fn raft_config(config: &StoreConfig) -> Result<openraft::Config> {
    let heartbeat_ms = config.heartbeat_interval.as_millis() as u64;
    let election_ms = config.election_timeout.as_millis() as u64;
    let raft_config = openraft::Config {
        cluster_name: config.initial_cluster_token.clone(),
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: election_ms,
        election_timeout_max: election_ms * 2,
        install_snapshot_timeout: (election_ms * 5).max(2000),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_count.max(1)),
        max_in_snapshot_log_to_keep: config.snapshot_count.clamp(1, 5000),
        purge_batch_size: 256,
        max_payload_entries: 256,
        ..Default::default()
    };
    raft_config
        .validate()
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))
}

impl Store {
    /// Opens (or creates) the replica's data dir and starts its Raft node. The peer
    /// service must be served (see `server`) for other replicas to reach it.
    pub async fn open(config: StoreConfig) -> Result<Store> {
        let is_fresh = !config.data_dir.join("member").join(MEMBER_FILE).exists();
        let my_id = if is_fresh && config.initial_cluster_state == ClusterState::Existing {
            join_cluster(&config).await?
        } else {
            member_id(&config.initial_advertise_peer_urls, &config.initial_cluster_token)
        };
        let fresh_cluster_id = cluster_id(&config.initial_cluster_token);
        let (member_dir, record, is_restart) = open_member_dir(&config, my_id, fresh_cluster_id)?;
        let id = record.id;
        let backend: SharedBackend = backend::open_on_disk(&member_dir.join("db"))
            .map_err(|e| StoreError::Internal(format!("opening the database: {e}")))?;
        if !is_restart {
            let holds_data = [backend::Tree::RaftLog, backend::Tree::State].into_iter().any(|tree| {
                backend
                    .scan(tree, &[], None, 1)
                    .map(|pairs| !pairs.is_empty())
                    .unwrap_or(true)
            });
            if holds_data {
                return Err(StoreError::Internal(format!(
                    "data dir {} is corrupt: it has a database but no {MEMBER_FILE}; refusing to re-initialise",
                    config.data_dir.display()
                )));
            }
            write_member_record(&member_dir, &record)?;
        }
        let applied = AppliedState::load(&backend)
            .map_err(|e| StoreError::Internal(format!("data dir {} is corrupt: {e}", config.data_dir.display())))?;
        applied
            .kv
            .validate()
            .map_err(|e| StoreError::Internal(format!("mvcc invariant broken after recovery: {e}")))?;
        let state = StateHandle::new(applied);
        let hub = WatchHub::new();
        let log_store = LogStore::new(backend.clone());
        let sm = StateMachineStore::new(state.clone(), backend.clone(), hub.clone(), member_dir.join("snap"));
        let network = Network::new(config.dial_peer_urls.clone());
        let raft = Raft::new(id, Arc::new(raft_config(&config)?), network.clone(), log_store, sm)
            .await
            .map_err(|e| StoreError::Internal(format!("starting raft: {e}")))?;
        // Bootstrap once: a replica that crashed after writing its member record but
        // before the membership reached its log bootstraps again, which is safe because
        // every initial member bootstraps with the same membership.
        let is_initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Internal(format!("reading raft state: {e}")))?;
        if !is_initialized && config.initial_cluster_state == ClusterState::New {
            let members: BTreeMap<NodeId, MemberInfo> = config
                .initial_cluster
                .iter()
                .map(|(name, urls)| {
                    let info = MemberInfo {
                        name: name.clone(),
                        peer_urls: urls.clone(),
                        client_urls: Vec::new(),
                    };
                    (member_id(urls, &config.initial_cluster_token), info)
                })
                .collect();
            if !members.contains_key(&id) {
                return Err(StoreError::InvalidArgument(format!(
                    "--initial-cluster has no member with this member's peer URLs {:?}",
                    config.initial_advertise_peer_urls
                )));
            }
            raft.initialize(members)
                .await
                .map_err(|e| StoreError::Internal(format!("bootstrapping: {e}")))?;
        }
        let proposer = Proposer::start(raft.clone());
        let (shutdown, _) = watch::channel(false);
        let store = Store {
            inner: Arc::new(Inner {
                id,
                cluster_id: record.cluster_id,
                lessor: Lessor::new(config.min_lease_ttl_seconds()),
                config,
                raft,
                network,
                state,
                backend,
                hub,
                proposer,
                peers: Mutex::new(BTreeMap::new()),
                lease_id_seq: AtomicU64::new(0),
                shutdown,
            }),
        };
        crate::background::start(store.clone());
        Ok(store)
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub fn state(&self) -> &StateHandle {
        &self.inner.state
    }

    pub fn hub(&self) -> &WatchHub {
        &self.inner.hub
    }

    pub fn lessor(&self) -> &Lessor {
        &self.inner.lessor
    }

    pub fn backend(&self) -> &SharedBackend {
        &self.inner.backend
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let _ = self.inner.raft.shutdown().await;
        let _ = self.inner.backend.flush();
    }

    /// A response header as etcd fills it.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.inner.cluster_id,
            member_id: self.inner.id,
            revision,
            raft_term: self.inner.raft.metrics().borrow().current_term,
        }
    }

    fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    pub fn current_leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.current_leader() == Some(self.inner.id)
    }

    /// The leader, waiting up to a few election timeouts for one to emerge.
    async fn wait_for_leader(&self) -> Result<NodeId> {
        let mut metrics = self.inner.raft.metrics();
        let deadline = tokio::time::Instant::now() + self.inner.config.election_timeout * 3;
        loop {
            if let Some(leader) = metrics.borrow_and_update().current_leader {
                return Ok(leader);
            }
            if tokio::time::timeout_at(deadline, metrics.changed()).await.is_err() {
                return Err(StoreError::NoLeader);
            }
        }
    }

    /// A gRPC client for a peer replica, by ID, from the current membership.
    pub(crate) fn peer(&self, id: NodeId) -> Result<PeerClient<Channel>> {
        let url = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            let node = metrics.membership_config.membership().get_node(&id).cloned();
            node.map(|n| self.inner.network.dial_url(&n))
                .filter(|url| !url.is_empty())
                .ok_or(StoreError::MemberNotFound { id })?
        };
        let mut peers = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known_url, client)) = peers.get(&id)
            && *known_url == url
        {
            return Ok(client.clone());
        }
        let channel = crate::raft::peer_channel(&url).map_err(|e| StoreError::Internal(format!("peer {url}: {e}")))?;
        let client = PeerClient::new(channel).max_decoding_message_size(usize::MAX);
        peers.insert(id, (url, client.clone()));
        Ok(client)
    }

    // ---- writes ----------------------------------------------------------------

    /// Proposes a command through the leader and returns what apply returned.
    pub async fn propose(&self, command: Command) -> Result<CommandResult> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let leader = self.wait_for_leader().await?;
            let outcome = if leader == self.inner.id {
                tokio::time::timeout_at(deadline, self.inner.proposer.propose(command.clone()))
                    .await
                    .map_err(|_| StoreError::Timeout)?
            } else {
                self.forward(leader, command.clone(), deadline).await?
            };
            match outcome {
                Ok(result) => return Ok(result),
                // Nothing was written: the entry never entered a leader's log, or it
                // was truncated away. Safe to send again.
                Err(ProposeError::NotLeader(_)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StoreError::LeaderChanged);
                    }
                    tokio::time::sleep(self.inner.config.heartbeat_interval).await;
                }
                Err(ProposeError::Failed(e)) => return Err(e),
            }
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        command: Command,
        deadline: tokio::time::Instant,
    ) -> Result<std::result::Result<CommandResult, ProposeError>> {
        let mut client = self.peer(leader)?;
        let mut request = tonic::Request::new(command);
        request.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match client.forward(request).await {
            Ok(reply) => Ok(Ok(reply.into_inner())),
            Err(status)
                if status.code() == tonic::Code::FailedPrecondition && status.message() == crate::grpc::NOT_LEADER =>
            {
                Ok(Err(ProposeError::NotLeader(None)))
            }
            // The leader may or may not have applied it: say so rather than retry.
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => Err(StoreError::Timeout),
            Err(status) if status.code() == tonic::Code::Unavailable => Err(StoreError::LeaderChanged),
            Err(status) => Err(crate::grpc::status_to_error(&status)),
        }
    }

    /// Proposes on this replica only (the leader's side of `Forward`).
    pub async fn propose_local(&self, command: Command) -> std::result::Result<CommandResult, ProposeError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.inner.proposer.propose(command))
            .await
            .map_err(|_| ProposeError::Failed(StoreError::Timeout))?
    }

    fn check_space(&self) -> Result<()> {
        if self.inner.backend.size_bytes() > self.inner.config.quota_backend_bytes {
            return Err(StoreError::NoSpace);
        }
        Ok(())
    }

    pub fn nospace_alarm(&self) -> bool {
        self.inner.backend.size_bytes() > self.inner.config.quota_backend_bytes
    }

    pub async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        validate::put(&req)?;
        validate::size(&req, self.inner.config.max_request_bytes)?;
        self.check_space()?;
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
        self.check_space()?;
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

    /// Proposes a write and takes the response of the expected kind from its result.
    async fn write<T: HasHeader>(
        &self,
        command: command::Command,
        expect: fn(command_result::Result) -> Option<T>,
    ) -> Result<T> {
        let result = unwrap_result(self.propose(Command { command: Some(command) }).await?)?;
        let mut resp =
            expect(result).ok_or_else(|| StoreError::Internal("apply returned a result of another kind".into()))?;
        self.fill_header(resp.header_mut());
        Ok(resp)
    }

    // ---- reads -----------------------------------------------------------------

    /// Waits until this replica has applied everything committed before the call:
    /// the read index, confirmed by the leader with a quorum.
    pub async fn read_barrier(&self) -> Result<()> {
        let leader = self.wait_for_leader().await?;
        let read_index = if leader == self.inner.id {
            Some(self.read_index_local().await?)
        } else {
            let mut client = self.peer(leader)?;
            let mut request = tonic::Request::new(ReadIndexRequest {});
            request.set_timeout(REQUEST_TIMEOUT);
            let reply = client.read_index(request).await.map_err(|s| match s.code() {
                tonic::Code::DeadlineExceeded => StoreError::Timeout,
                _ => StoreError::LeaderChanged,
            })?;
            Some(reply.into_inner().read_index)
        };
        self.wait_applied(read_index).await
    }

    /// The leader's half of `ReadIndex`: confirms leadership, returns the index.
    pub async fn read_index_local(&self) -> Result<u64> {
        // A leader cut off from its quorum cannot confirm itself: give up rather
        // than wait for ever.
        match tokio::time::timeout(REQUEST_TIMEOUT, self.inner.raft.get_read_log_id()).await {
            Ok(Ok((read_log_id, _))) => Ok(read_log_id.map_or(0, |l| l.index)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "read index on the leader failed");
                Err(StoreError::LeaderChanged)
            }
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn wait_applied(&self, index: Option<u64>) -> Result<()> {
        let Some(index) = index else { return Ok(()) };
        if self.inner.state.read().last_applied.is_some_and(|l| l.index >= index) {
            return Ok(());
        }
        self.inner
            .raft
            .wait(Some(REQUEST_TIMEOUT))
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

    // ---- leases ----------------------------------------------------------------

    pub async fn lease_grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if req.ttl > MAX_LEASE_TTL_SECONDS {
            return Err(StoreError::LeaseTtlTooLarge { ttl: req.ttl });
        }
        if req.id < 0 {
            return Err(StoreError::InvalidArgument(format!("lease ID {} is negative", req.id)));
        }
        req.ttl = self.inner.lessor.effective_ttl(req.ttl);
        let client_chose = req.id != 0;
        loop {
            if !client_chose {
                req.id = self.next_lease_id();
            }
            let granted = self
                .write(command::Command::LeaseGrant(req), |r| match r {
                    command_result::Result::LeaseGrant(resp) => Some(resp),
                    _ => None,
                })
                .await;
            match granted {
                // A server-chosen ID that happens to be taken: choose again.
                Err(StoreError::LeaseExists { .. }) if !client_chose => continue,
                other => return other,
            }
        }
    }

    /// A lease ID nobody else will pick: this member's ID mixed with time and a counter.
    fn next_lease_id(&self) -> i64 {
        let seq = self.inner.lease_id_seq.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let mut x = self.inner.id ^ now.rotate_left(17) ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        ((x >> 1) as i64).max(1)
    }

    pub async fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
        self.write(command::Command::LeaseRevoke(req), |r| match r {
            command_result::Result::LeaseRevoke(resp) => Some(resp),
            _ => None,
        })
        .await
    }

    /// Renews a lease in the leader's memory; TTL 0 in the reply means not found.
    pub async fn lease_keep_alive(&self, req: LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
        let remote = req;
        self.on_leader(
            |store| store.lease_keep_alive_local(req),
            |mut peer| async move { peer.lease_keep_alive(remote).await },
        )
        .await
    }

    pub fn lease_keep_alive_local(&self, req: LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
        if !self.inner.lessor.is_primary() {
            return Err(StoreError::LeaderChanged);
        }
        let (ttl, revision) = {
            let state = self.inner.state.read();
            (
                state.leases.get(req.id).map(|l| l.ttl_seconds),
                state.kv.current_revision(),
            )
        };
        let ttl = match ttl {
            Some(ttl) => {
                self.inner.lessor.renew(req.id, ttl);
                ttl
            }
            None => 0,
        };
        Ok(LeaseKeepAliveResponse {
            header: Some(self.header(revision)),
            id: req.id,
            ttl,
        })
    }

    pub async fn lease_time_to_live(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        let remote = req;
        self.on_leader(
            |store| store.lease_time_to_live_local(req),
            |mut peer| async move { peer.lease_time_to_live(remote).await },
        )
        .await
    }

    /// Runs `local` on the leader, or asks the leader through `remote` from a follower.
    async fn on_leader<T, Fut>(
        &self,
        local: impl FnOnce(&Self) -> Result<T>,
        remote: impl FnOnce(PeerClient<Channel>) -> Fut,
    ) -> Result<T>
    where
        T: HasHeader,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let leader = self.wait_for_leader().await?;
        if leader == self.inner.id {
            return local(self);
        }
        let peer = self.peer(leader)?;
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, remote(peer))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(|_| StoreError::LeaderChanged)?;
        let mut resp = reply.into_inner();
        self.fill_header(resp.header_mut());
        Ok(resp)
    }

    pub fn lease_time_to_live_local(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        let state = self.inner.state.read();
        let revision = state.kv.current_revision();
        let Some(lease) = state.leases.get(req.id) else {
            // etcd answers an unknown lease with TTL -1, not an error.
            return Ok(LeaseTimeToLiveResponse {
                header: Some(self.header(revision)),
                id: req.id,
                ttl: -1,
                ..Default::default()
            });
        };
        Ok(LeaseTimeToLiveResponse {
            header: Some(self.header(revision)),
            id: req.id,
            ttl: self.inner.lessor.remaining_seconds(req.id, lease.ttl_seconds),
            granted_ttl: lease.ttl_seconds,
            keys: if req.keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    pub fn lease_leases(&self) -> LeaseLeasesResponse {
        let state = self.inner.state.read();
        LeaseLeasesResponse {
            header: Some(self.header(state.kv.current_revision())),
            leases: state.leases.ids().map(|(id, _)| LeaseStatus { id }).collect(),
        }
    }

    // ---- cluster ---------------------------------------------------------------

    /// The members as the latest membership (committed or not) has them.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, info)| Member {
                id: *id,
                name: info.name.clone(),
                peer_ur_ls: info.peer_urls.clone(),
                client_ur_ls: info.client_urls.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }

    pub async fn change_member(&self, change: MemberChange) -> Result<Option<Member>> {
        let leader = self.wait_for_leader().await?;
        if leader != self.inner.id {
            let mut client = self.peer(leader)?;
            let reply = client
                .change_member(change)
                .await
                .map_err(|s| crate::grpc::status_to_error(&s))?;
            return Ok(reply.into_inner().member);
        }
        self.change_member_local(change).await
    }

    pub async fn change_member_local(&self, change: MemberChange) -> Result<Option<Member>> {
        let members = self.members();
        let find = |id: NodeId| {
            members
                .iter()
                .find(|m| m.id == id)
                .ok_or(StoreError::MemberNotFound { id })
        };
        match member_change::Action::try_from(change.action).unwrap_or(member_change::Action::Add) {
            member_change::Action::Add => {
                if change.peer_urls.is_empty() {
                    return Err(StoreError::InvalidArgument(
                        "member add needs at least one peer URL".into(),
                    ));
                }
                if members
                    .iter()
                    .any(|m| m.peer_ur_ls.iter().any(|u| change.peer_urls.contains(u)))
                {
                    return Err(StoreError::PeerUrlExists);
                }
                let log_index = self.inner.raft.metrics().borrow().last_log_index.unwrap_or(0);
                let id = added_member_id(&change.peer_urls, &self.inner.config.initial_cluster_token, log_index);
                let info = MemberInfo {
                    name: String::new(),
                    peer_urls: change.peer_urls.clone(),
                    client_urls: Vec::new(),
                };
                let added = self
                    .inner
                    .raft
                    .add_learner(id, info, false)
                    .await
                    .map_err(membership_error)?;
                self.wait_membership(added.log_id).await?;
                if !change.is_learner {
                    self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                        .await?;
                }
                Ok(Some(Member {
                    id,
                    peer_ur_ls: change.peer_urls,
                    is_learner: change.is_learner,
                    ..Default::default()
                }))
            }
            member_change::Action::Remove => {
                let member = find(change.id)?;
                // Removing a voter without retaining it removes the node as well.
                let removal = if member.is_learner {
                    ChangeMembers::RemoveNodes(BTreeSet::from([change.id]))
                } else {
                    ChangeMembers::RemoveVoters(BTreeSet::from([change.id]))
                };
                self.change_membership(removal, false).await?;
                Ok(None)
            }
            member_change::Action::Publish => {
                find(change.id)?;
                let info = MemberInfo {
                    name: change.name,
                    peer_urls: change.peer_urls,
                    client_urls: change.client_urls,
                };
                self.set_member_attributes(change.id, info).await?;
                Ok(None)
            }
            member_change::Action::Promote => {
                if !find(change.id)?.is_learner {
                    return Err(StoreError::MemberNotLearner { id: change.id });
                }
                let (matched, last) = {
                    let metrics = self.inner.raft.metrics();
                    let metrics = metrics.borrow();
                    let matched = metrics
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&change.id).cloned().flatten())
                        .map_or(0, |l| l.index);
                    (matched, metrics.last_log_index.unwrap_or(0))
                };
                // etcd's rule: a learner within 90% of the leader's log may be promoted.
                if (matched as f64) < last as f64 * 0.9 {
                    return Err(StoreError::LearnerNotReady { id: change.id });
                }
                self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([change.id])), true)
                    .await?;
                Ok(self.members().into_iter().find(|m| m.id == change.id))
            }
        }
    }

    /// Sets a node's attributes (the leader's side of a member publishing itself).
    pub async fn set_member_attributes(&self, id: NodeId, info: MemberInfo) -> Result<()> {
        self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, info)])), true)
            .await
    }

    /// Changes the membership and waits until this replica's view shows the change,
    /// so that a MemberList right after it answers with the new members.
    async fn change_membership(&self, changes: ChangeMembers<NodeId, MemberInfo>, retain: bool) -> Result<()> {
        let resp = self
            .inner
            .raft
            .change_membership(changes, retain)
            .await
            .map_err(membership_error)?;
        self.wait_membership(resp.log_id).await
    }

    async fn wait_membership(&self, log_id: crate::raft::LogId) -> Result<()> {
        self.inner
            .raft
            .wait(Some(REQUEST_TIMEOUT))
            .metrics(
                |m| m.membership_config.log_id().is_some_and(|l| l.index >= log_id.index),
                "membership change to be visible",
            )
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Timeout)
    }

    /// The ID of the member with these peer URLs (the answer to a joining replica).
    pub fn member_with_peer_urls(&self, peer_urls: &[String]) -> Option<NodeId> {
        self.members()
            .into_iter()
            .find(|m| m.peer_ur_ls.iter().any(|u| peer_urls.contains(u)))
            .map(|m| m.id)
    }

    pub fn is_learner(&self) -> bool {
        self.members().iter().any(|m| m.id == self.inner.id && m.is_learner)
    }

    pub fn server_state(&self) -> ServerState {
        self.inner.raft.metrics().borrow().state
    }
}

fn unwrap_result(result: CommandResult) -> Result<command_result::Result> {
    match result.result {
        Some(command_result::Result::Error(e)) => Err(apply_error_to_store(e)),
        Some(other) => Ok(other),
        None => Err(StoreError::Internal("empty apply result".into())),
    }
}

fn apply_error_to_store(e: ApplyError) -> StoreError {
    match apply_error::Code::try_from(e.code).unwrap_or(apply_error::Code::Unknown) {
        apply_error::Code::Compacted => StoreError::Compacted {
            requested: 0,
            compacted: 0,
        },
        apply_error::Code::FutureRevision => StoreError::FutureRevision { requested: 0 },
        apply_error::Code::LeaseNotFound => StoreError::LeaseNotFound { id: 0 },
        apply_error::Code::LeaseExists => StoreError::LeaseExists { id: 0 },
        apply_error::Code::KeyNotFound => StoreError::KeyNotFound,
        apply_error::Code::Unknown => StoreError::Internal(e.message),
    }
}

fn membership_error(
    e: openraft::error::RaftError<NodeId, openraft::error::ClientWriteError<NodeId, MemberInfo>>,
) -> StoreError {
    match e {
        openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(_)) => {
            StoreError::LeaderChanged
        }
        other => StoreError::Internal(other.to_string()),
    }
}

/// A response that carries etcd's header.
trait HasHeader {
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! has_header {
    ($($t:ty),*) => {
        $(impl HasHeader for $t {
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        })*
    };
}

has_header!(
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    LeaseGrantResponse,
    LeaseRevokeResponse,
    LeaseKeepAliveResponse,
    LeaseTimeToLiveResponse
);
