//! Clients for the other replicas, by member ID, for what a replica hands to the
//! leader: forwarded writes on raft streams (see `raft::wire`); read index,
//! keepalives and membership changes over gRPC.
//! Dialled lazily through `--dial-peer-urls` where given; rebuilt when a member's
//! address changes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Result, StoreError};
use crate::raft::wire::Pools;
use crate::raft::{Network, NodeId, PeerRpc, Raft};

pub struct PeerClients {
    raft: Raft,
    network: Network,
    cache: Mutex<BTreeMap<NodeId, (String, PeerRpc)>>,
}

impl PeerClients {
    pub fn new(raft: Raft, network: Network) -> Self {
        Self {
            raft,
            network,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// The URL to dial for member `id`.
    pub fn url(&self, id: NodeId) -> Result<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let node = metrics.membership_config.membership().get_node(&id).cloned();
        node.map(|n| self.network.dial_url(&n))
            .filter(|url| !url.is_empty())
            .ok_or(StoreError::MemberNotFound { id })
    }

    /// Idle raft streams to the other replicas.
    pub fn raft_streams(&self) -> &Pools {
        self.network.raft_streams()
    }

    /// The network: dial URLs, this replica's identity, when peers last answered.
    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn client(&self, id: NodeId) -> Result<PeerRpc> {
        let url = self.url(id)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known_url, client)) = cache.get(&id)
            && *known_url == url
        {
            return Ok(client.clone());
        }
        let client = self
            .network
            .peer_rpc(&url)
            .map_err(|e| StoreError::Internal(format!("peer {url}: {e}")))?;
        cache.insert(id, (url, client.clone()));
        Ok(client)
    }
}
