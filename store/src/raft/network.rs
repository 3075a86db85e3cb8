//! The Raft transport: AppendEntries and votes on raft streams (see `wire`),
//! snapshots over the gRPC `Peer` service; openraft's messages encoded by bincode
//! either way, over TLS for `https` peer URLs (see `crate::tls`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_proto::berthpb::RaftPayload;
use berth_proto::berthpb::peer_client::PeerClient;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::durable::Durable;
use super::types::{MemberInfo, NodeId, TypeConfig, decode, encode};
use super::wire::{CallError, Kind, Pools};
use crate::peer_identity::Me;
use crate::tls::PeerDialer;

/// A gRPC client of a peer's `Peer` service that names this replica in every request.
pub type PeerRpc = PeerClient<InterceptedService<Channel, Me>>;

/// A peer client on `channel` that says it is `me`.
pub fn peer_rpc(channel: Channel, me: Me) -> PeerRpc {
    PeerClient::with_interceptor(channel, me)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// Opens a lazily connected channel to a peer URL.
pub fn peer_channel(url: &str, dialer: &PeerDialer) -> Result<Channel, Box<dyn std::error::Error + Send + Sync>> {
    dialer.channel(url, |endpoint| {
        endpoint
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            // One channel per peer carries every RPC to it; a peer whose host vanished
            // (no reset, a half-open connection) is noticed within about 4 s and redialled.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true)
    })
}

/// Connections to peers, through the URLs of `dial_peer_urls` where given: one HTTP/2
/// channel per peer URL, shared by replication, openraft's leadership checks (which ask
/// for a new client each time) and what a follower hands to the leader.
#[derive(Debug, Clone)]
pub struct Network {
    me: Me,
    dial_overrides: Arc<BTreeMap<String, String>>,
    channels: Arc<Mutex<BTreeMap<String, Channel>>>,
    raft_streams: Arc<Pools>,
    dialer: PeerDialer,
    /// How far this replica's own log is on disk: the commit index it sends goes no
    /// further (see `durable`).
    log_on_disk: Durable,
    /// When each peer last answered a Raft RPC of this replica's.
    contacts: Contacts,
}

type Contacts = Arc<Mutex<BTreeMap<NodeId, Instant>>>;

impl Network {
    pub fn new(me: Me, dial_overrides: BTreeMap<String, String>, dialer: PeerDialer, log_on_disk: Durable) -> Self {
        Self {
            raft_streams: Arc::new(Pools::new(me.clone()).with_dialer(dialer.clone())),
            me,
            dial_overrides: Arc::new(dial_overrides),
            channels: Arc::default(),
            dialer,
            log_on_disk,
            contacts: Arc::default(),
        }
    }

    /// Who this replica says it is to its peers.
    pub fn me(&self) -> &Me {
        &self.me
    }

    /// When `peer` last answered a Raft RPC from this replica (as leader: an
    /// AppendEntries or a heartbeat), if it ever did since this replica started.
    pub fn last_contact(&self, peer: NodeId) -> Option<Instant> {
        self.contacts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .copied()
    }

    /// A gRPC client of the peer at `url`, over the channel kept for it.
    pub fn peer_rpc(&self, url: &str) -> Result<PeerRpc, Box<dyn std::error::Error + Send + Sync>> {
        Ok(peer_rpc(self.channel(url)?, self.me.clone()))
    }

    /// The URL to dial for a member.
    pub fn dial_url(&self, node: &MemberInfo) -> String {
        match self.dial_overrides.get(&node.name) {
            Some(url) => url.clone(),
            None => node.peer_urls.first().cloned().unwrap_or_default(),
        }
    }

    /// Idle raft streams, by peer URL (see `wire`).
    pub fn raft_streams(&self) -> &Pools {
        &self.raft_streams
    }

    /// The channel to `url`, opened (lazily) on first use.
    pub fn channel(&self, url: &str) -> Result<Channel, Box<dyn std::error::Error + Send + Sync>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = peer_channel(url, &self.dialer)?;
        channels.insert(url.to_string(), channel.clone());
        Ok(channel)
    }
}

pub struct PeerConnection {
    target: NodeId,
    client: Option<PeerRpc>,
    url: String,
    raft_streams: Arc<Pools>,
    log_on_disk: Durable,
    contacts: Contacts,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &MemberInfo) -> PeerConnection {
        let url = self.dial_url(node);
        let client = self.peer_rpc(&url).ok();
        PeerConnection {
            target,
            client,
            url,
            raft_streams: self.raft_streams.clone(),
            log_on_disk: self.log_on_disk.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

/// How long an AppendEntries waits for the leader's sync to cover its commit index (a
/// quarter of its time to live, if that is less).
const COMMIT_WAIT: Duration = Duration::from_millis(20);

type RpcResult<T, E> = Result<T, RPCError<NodeId, MemberInfo, E>>;

impl PeerConnection {
    fn client(&self) -> Result<PeerRpc, Unreachable> {
        self.client.clone().ok_or_else(|| {
            Unreachable::new(&std::io::Error::other(format!(
                "bad peer url {:?} for {}",
                self.url, self.target
            )))
        })
    }
}

fn to_payload<T: serde::Serialize>(value: &T) -> Result<RaftPayload, NetworkError> {
    encode(value)
        .map(|data| RaftPayload { data })
        .map_err(|e| NetworkError::new(&e))
}

fn from_payload<T: serde::de::DeserializeOwned>(payload: RaftPayload) -> Result<T, NetworkError> {
    decode(&payload.data).map_err(|e| NetworkError::new(&e))
}

fn status_error<E: std::error::Error>(status: tonic::Status) -> RPCError<NodeId, MemberInfo, E> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&status))
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

/// Decodes the peer's `Result` and lifts its error into the RPC error.
fn lift<T, E>(result: Result<T, RaftError<NodeId, E>>, target: NodeId) -> RpcResult<T, RaftError<NodeId, E>>
where
    E: std::error::Error,
{
    result.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(target, e)))
}

impl PeerConnection {
    /// The peer answered: it is up and reachable from here.
    fn note_contact(&self) {
        let mut contacts = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
        contacts.insert(self.target, Instant::now());
    }

    /// One request on a raft stream, answered with the peer's `Result`.
    async fn call<Req, Resp>(&self, kind: Kind, rpc: &Req, timeout: Duration) -> RpcResult<Resp, RaftError<NodeId>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let message = encode(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .raft_streams
            .call(&self.url, kind, &message, timeout)
            .await
            .map_err(|e| match e {
                CallError::Unreachable(e) | CallError::Lost(e) => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Refused(_) | CallError::Unsendable(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        self.note_contact();
        let result: Result<Resp, RaftError<NodeId>> =
            decode(&answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        lift(result, self.target)
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        // openraft may count the leader's copy of an entry before the leader's sync is
        // done; a follower hears it committed only once it is on the leader's disk.
        // The sync started before the entry left, so a short wait usually sees it
        // through; after that the request goes with the commit index cut back to what
        // is on disk (the next request carries the rest), so a slow disk never holds
        // back entries or heartbeats.
        let started = std::time::Instant::now();
        let wait = COMMIT_WAIT.min(option.hard_ttl() / 4);
        if self.log_on_disk.wait_for(rpc.leader_commit, Some(wait)).await.is_err() {
            if let Some(why) = self.log_on_disk.failure() {
                return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other(
                    why.to_string(),
                ))));
            }
            rpc.leader_commit = rpc.leader_commit.min(self.log_on_disk.upto());
        }
        let left = option.hard_ttl().saturating_sub(started.elapsed());
        self.call(Kind::AppendEntries, &rpc, left).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let mut request = tonic::Request::new(to_payload(&rpc).map_err(RPCError::Network)?);
        request.set_timeout(option.hard_ttl());
        let reply = client.install_snapshot(request).await.map_err(status_error)?;
        self.note_contact();
        let result: Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> =
            from_payload(reply.into_inner()).map_err(RPCError::Network)?;
        lift(result, self.target)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(Kind::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // A peer that is down is retried at the heartbeat pace, not openraft's 500 ms.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;
    use tokio::net::TcpListener;

    use super::*;
    use crate::raft::{LogId, Vote, wire};

    fn log_id(index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(1, 1), index))
    }

    fn heartbeat(leader_commit: Option<LogId>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: log_id(5),
            entries: Vec::new(),
            leader_commit,
        }
    }

    /// Serves every sender, with no limit but the frame's.
    struct AnyPeer;

    impl wire::Admission for AnyPeer {
        fn admit(&self, _: crate::peer_identity::PeerIdentity) -> Result<(), String> {
            Ok(())
        }

        fn max_message_bytes(&self, _: wire::Kind) -> usize {
            wire::MAX_FRAME
        }
    }

    /// A follower that notes the commit index of each AppendEntries it receives.
    async fn follower() -> (String, Arc<Mutex<Vec<Option<LogId>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Option<LogId>>>> = Arc::default();
        tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let seen = seen.clone();
                    tokio::spawn(wire::serve(stream, AnyPeer, move |_, message| {
                        let seen = seen.clone();
                        async move {
                            let rpc: AppendEntriesRequest<TypeConfig> = decode(&message).map_err(|e| e.to_string())?;
                            seen.lock().unwrap().push(rpc.leader_commit);
                            let answer: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
                                Ok(AppendEntriesResponse::Success);
                            encode(&answer).map_err(|e| e.to_string())
                        }
                    }));
                }
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_follower_hears_a_commit_index_only_as_far_as_the_leaders_disk() {
        let (url, seen) = follower().await;
        let on_disk = Durable::new(log_id(5));
        let mut network = Network::new(Me::default(), BTreeMap::new(), PeerDialer::default(), on_disk.clone());
        let member = MemberInfo {
            peer_urls: vec![url],
            ..Default::default()
        };
        let mut peer = network.new_client(2, &member).await;
        let option = || RPCOption::new(Duration::from_secs(10));

        // On disk already: sent as it is.
        peer.append_entries(heartbeat(log_id(5)), option()).await.unwrap();
        // On disk within the short wait: sent as it is, once it is.
        let sync = tokio::spawn({
            let on_disk = on_disk.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                on_disk.reached(log_id(6));
            }
        });
        peer.append_entries(heartbeat(log_id(6)), option()).await.unwrap();
        sync.await.unwrap();
        // Not on disk in time: sent with the commit index cut back to the disk.
        peer.append_entries(heartbeat(log_id(9)), option()).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![log_id(5), log_id(6), log_id(6)]);

        // After a failed sync nothing more is said committed.
        on_disk.fail("syncing the raft log: input/output error".into());
        let error = peer.append_entries(heartbeat(log_id(9)), option()).await.unwrap_err();
        assert!(matches!(&error, RPCError::Unreachable(_)), "{error}");
        assert!(error.to_string().contains("input/output error"), "{error}");
        assert_eq!(seen.lock().unwrap().len(), 3);
    }
}
