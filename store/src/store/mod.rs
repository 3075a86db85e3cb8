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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_proto::berthpb::{Command, MemberChange, ReadIndexRequest, command, command_result, member_change};
use berth_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, Member, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use openraft::{ChangeMembers, ServerState};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::AuthRuntime;
use crate::backend::{self, SharedBackend};
use crate::config::{ClusterState, StoreConfig, added_member_id, cluster_id, member_id};
use crate::disk_space::DiskSpace;
use crate::election::LeaderContact;
use crate::error::{Result, StoreError};
use crate::lease::Lessor;
use crate::mvcc::KeyRange;
use crate::peer_identity::Me;
use crate::peers::PeerClients;
use crate::proposer::{ProposeError, Proposer};
use crate::raft::{CommandOutcome, LogStore, MemberInfo, Network, NodeId, PeerRpc, Raft};
use crate::read_index::ReadIndexBatcher;
use crate::state_machine::{AppliedState, StateHandle, StateMachineStore, range_options};
use crate::validate;
use crate::watch::WatchHub;

mod alarms;
mod auth;
mod data_dir;
mod forwarded;
mod hashes;
mod leadership;
mod leases;
mod membership;
mod read;
mod restore;
mod strict_reconfig;
mod write;

pub use restore::{Restored, restore_snapshot};

use data_dir::{open_member_dir, write_member_record};
use membership::join_cluster;

/// etcd's version string as Status reports it; clients read it to pick features.
pub const ETCD_VERSION: &str = "3.4.0";
const MEMBER_FILE: &str = "member.json";

/// etcd's allowance for queueing, computation and disk delays in a request, to which
/// its request timeout adds two election timeouts for a possible election.
const REQUEST_SLACK: Duration = Duration::from_secs(5);

struct Inner {
    id: NodeId,
    cluster_id: u64,
    config: StoreConfig,
    /// What the `https` listeners accept with (see `server`) and how peers are dialled.
    tls: crate::tls::Tls,
    raft: Raft,
    state: StateHandle,
    backend: SharedBackend,
    hub: WatchHub,
    lessor: Lessor,
    proposer: Proposer,
    peers: Arc<PeerClients>,
    lease_id_seq: AtomicU64,
    /// Linearizable reads on this replica share read-index confirmations.
    read_batcher: ReadIndexBatcher,
    /// Followers' ReadIndex requests to this replica (as leader) share them too.
    leader_read_batcher: ReadIndexBatcher,
    /// When a leader was last heard from, for the election timer (see `election`).
    leader_contact: LeaderContact,
    /// Whether this replica's disk has room (see `disk_space`).
    space: DiskSpace,
    /// The state machine's gathered writes, written out when space returns.
    state_backend: Arc<backend::WriteBehind>,
    /// Whether auth is on, and this member's tokens (see `auth::runtime`).
    auth: Arc<AuthRuntime>,
    /// Events sent to watch clients by this member (`etcd_debugging_mvcc_events_total`).
    watch_events_sent: AtomicU64,
    shutdown: watch::Sender<bool>,
}

/// A running store replica. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// When the requests made through this handle give up: a gRPC call's deadline
    /// (see [`Store::until`]). Without one, each request has etcd's request timeout
    /// from its start.
    deadline: Option<Instant>,
    /// The user the writes made through this handle are for, and the auth revision
    /// their permissions were checked at (see [`Store::acting_for`]).
    caller: Option<Arc<(String, u64)>>,
}

fn raft_config(config: &StoreConfig) -> Result<openraft::Config> {
    let heartbeat_ms = config.heartbeat_interval.as_millis() as u64;
    let election_ms = config.election_timeout.as_millis() as u64;
    let raft_config = openraft::Config {
        cluster_name: config.initial_cluster_token.clone(),
        heartbeat_interval: heartbeat_ms,
        // A follower campaigns on berth's own timer (see `election`), 0.95–1.05 ×
        // --election-timeout after the leader falls silent. openraft's timer is the
        // fallback behind it: it waits `election_timeout_max` (its leader lease, in which
        // a replica refuses to vote for another) plus a random time in `[min, max)`, so
        // 1.0–1.2 × --election-timeout, checked every 1.5 heartbeat intervals.
        election_timeout_min: election_ms * 2 / 5,
        election_timeout_max: election_ms * 3 / 5,
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
    /// Counts `events` sent to a watch client.
    pub fn count_watch_events(&self, events: u64) {
        (self.inner.watch_events_sent).fetch_add(events, std::sync::atomic::Ordering::Relaxed);
    }

    /// The events this member has sent to watch clients since it started.
    pub fn watch_events_sent(&self) -> u64 {
        (self.inner.watch_events_sent).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Opens (or creates) the replica's data dir and starts its Raft node. The peer
    /// service must be served (see `server`) for other replicas to reach it.
    pub async fn open(config: StoreConfig) -> Result<Store> {
        let tls = crate::tls::Tls::load(&config)?;
        let is_fresh = !config.data_dir.join("member").join(MEMBER_FILE).exists();
        let my_id = if is_fresh && config.initial_cluster_state == ClusterState::Existing {
            join_cluster(&config, tls.dialer()).await?
        } else {
            member_id(&config.initial_advertise_peer_urls, &config.initial_cluster_token)
        };
        let fresh_cluster_id = cluster_id(&config.initial_cluster_token);
        let (member_dir, record, is_restart) = open_member_dir(&config, my_id, fresh_cluster_id)?;
        let id = record.id;
        let engine: SharedBackend = backend::open_on_disk(&member_dir.join("db"))
            .map_err(|e| StoreError::Internal(format!("opening the database: {e}")))?;
        // The log writes (and flushes) the engine directly; the state machine's writes
        // are gathered and written behind (see `backend::WriteBehind`).
        // Short of space the state machine's writes wait in memory (see `disk_space`).
        let space = DiskSpace::new(&member_dir);
        let state_backend = Arc::new(backend::WriteBehind::watching_space(
            engine.clone(),
            space.clone(),
            &member_dir.join("db"),
        ));
        let backend: SharedBackend = state_backend.clone();
        if !is_restart {
            let holds_data = [backend::Tree::RaftLog, backend::Tree::State].into_iter().any(|tree| {
                backend
                    .scan(tree, &[], None, 1)
                    .map(|pairs| !pairs.is_empty())
                    .unwrap_or(true)
            });
            let holds_log = std::fs::read_dir(member_dir.join("wal")).is_ok_and(|mut files| files.next().is_some());
            if holds_data || holds_log {
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
        let auth = Arc::new(AuthRuntime::new(config.auth_token_ttl, applied.auth.enabled));
        let state = StateHandle::new(applied);
        let hub = WatchHub::new();
        if config.test_faults.slow_disk {
            crate::slow_disk::enable(&config.data_dir);
        }
        let state_backend_handle = state_backend.clone();
        let log_store = LogStore::open(id, &member_dir.join("wal"), engine, state_backend)
            .map_err(|e| StoreError::Internal(format!("opening the raft log: {e}")))?;
        let log_on_disk = log_store.durable();
        let sm = StateMachineStore::new(
            state.clone(),
            backend.clone(),
            hub.clone(),
            member_dir.join("snap"),
            log_on_disk.clone(),
        )
        .waiting_for_space(space.clone())
        .with_auth(auth.clone());
        let me = Me::new(record.cluster_id, id);
        let network = Network::new(
            me.clone(),
            config.dial_peer_urls.clone(),
            tls.dialer().clone(),
            log_on_disk,
        );
        let raft = Raft::new(id, Arc::new(raft_config(&config)?), network.clone(), log_store, sm)
            .await
            .map_err(|e| StoreError::Internal(format!("starting raft: {e}")))?;
        me.follow(&raft);
        // With the initial corruption check, a restarted replica neither campaigns nor
        // serves until its data is known to agree with its peers'.
        let checks_corruption = is_restart && config.initial_corrupt_check;
        raft.runtime_config().elect(!checks_corruption);
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
        let peers = Arc::new(PeerClients::new(raft.clone(), network.clone()));
        let proposer = Proposer::start(raft.clone(), id, peers.clone());
        let (shutdown, _) = watch::channel(false);
        let store = Store {
            inner: Arc::new(Inner {
                id,
                cluster_id: record.cluster_id,
                lessor: Lessor::new(config.min_lease_ttl_seconds()),
                config,
                tls,
                raft,
                state,
                backend,
                hub,
                proposer,
                peers,
                lease_id_seq: AtomicU64::new(0),
                read_batcher: ReadIndexBatcher::default(),
                leader_read_batcher: ReadIndexBatcher::default(),
                leader_contact: LeaderContact::default(),
                space,
                state_backend: state_backend_handle,
                auth,
                watch_events_sent: AtomicU64::new(0),
                shutdown,
            }),
            deadline: None,
            caller: None,
        };
        if checks_corruption {
            if let Err(e) = crate::corruption::initial_check(&store).await {
                store.shutdown().await;
                return Err(e);
            }
            store.inner.raft.runtime_config().elect(true);
        }
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

    pub fn tls(&self) -> &crate::tls::Tls {
        &self.inner.tls
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub fn state(&self) -> &StateHandle {
        &self.inner.state
    }

    /// Whether auth is on, and this member's tokens.
    pub fn auth(&self) -> &AuthRuntime {
        &self.inner.auth
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

    pub(crate) fn leader_contact(&self) -> &LeaderContact {
        &self.inner.leader_contact
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub async fn shutdown(&self) {
        // Writers waiting for disk space give up, so that Raft can stop.
        self.inner.space.close();
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

    /// etcd's request timeout: how long a request may wait for a leader, for its
    /// entry to commit and apply, or for a read index (etcd: 5 s plus two election
    /// timeouts).
    pub fn request_timeout(&self) -> Duration {
        REQUEST_SLACK + self.inner.config.election_timeout * 2
    }

    /// This handle with its requests ending at `deadline` (a client's gRPC deadline)
    /// or after the request timeout, whichever comes first.
    pub fn until(&self, deadline: Option<Instant>) -> Store {
        let timeout = Instant::now() + self.request_timeout();
        Store {
            inner: self.inner.clone(),
            deadline: Some(deadline.map_or(timeout, |d| d.min(timeout))),
            caller: self.caller.clone(),
        }
    }

    /// This handle without a deadline, for work shared by requests of different
    /// deadlines (each of which waits for it until its own).
    fn without_deadline(&self) -> Store {
        Store {
            inner: self.inner.clone(),
            deadline: None,
            caller: None,
        }
    }

    /// When a request that starts now gives up.
    fn deadline(&self) -> Instant {
        self.deadline.unwrap_or_else(|| Instant::now() + self.request_timeout())
    }

    /// The leader, waiting for one to be known (an election in progress) until
    /// `deadline`. A request that finds none by then was not written.
    async fn wait_for_leader(&self, deadline: Instant) -> Result<NodeId> {
        let mut metrics = self.inner.raft.server_metrics();
        loop {
            if let Some(leader) = metrics.borrow_and_update().current_leader {
                return Ok(leader);
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StoreError::Stopped),
                Err(_) => return Err(StoreError::NoLeader),
            }
        }
    }

    /// Waits before asking a leader again: until this replica hears of another leader
    /// than the one it knows, or a heartbeat interval passes. False if `deadline`
    /// comes first.
    async fn pause_before_retry(&self, deadline: Instant) -> bool {
        let wake = Instant::now() + self.inner.config.heartbeat_interval;
        if wake >= deadline {
            return false;
        }
        let mut metrics = self.inner.raft.server_metrics();
        let known = metrics.borrow_and_update().current_leader;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => return true,
                changed = metrics.changed() => {
                    if changed.is_err() || metrics.borrow_and_update().current_leader != known {
                        return true;
                    }
                }
            }
        }
    }

    /// Clients of the other replicas, by member ID.
    pub(crate) fn peer_clients(&self) -> &PeerClients {
        &self.inner.peers
    }

    /// A gRPC client for a peer replica, by ID, from the current membership.
    pub(crate) fn peer(&self, id: NodeId) -> Result<PeerRpc> {
        self.inner.peers.client(id)
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
    LeaseTimeToLiveResponse,
    berth_proto::etcdserverpb::AlarmResponse,
    berth_proto::berthpb::AuthResponse
);
