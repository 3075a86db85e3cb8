//! Leases: grants and revocations go through the log; keepalives and TTL queries
//! are the leader's, answered from its lessor's memory.

use super::*;

impl Store {
    pub async fn lease_grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        validate::lease_grant(&req)?;
        self.refuse_if_disk_full()?;
        self.check_quota().await?;
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
            // Expired, its revocation proposed: asked again until it is revoked
            // (then TTL 0) or another leader has it.
            Some(ttl) if !self.inner.lessor.renew(req.id, ttl) => return Err(StoreError::LeaderChanged),
            Some(ttl) => ttl,
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
    /// Both are idempotent (a renewal, a query): during an election, or when the leader
    /// asked is gone or no longer leads, they are asked again of the next leader, until
    /// the request's deadline.
    async fn on_leader<T, Fut>(&self, local: impl Fn(&Self) -> Result<T>, remote: impl Fn(PeerRpc) -> Fut) -> Result<T>
    where
        T: HasHeader,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = self.deadline();
        loop {
            let leader = self.wait_for_leader(deadline).await?;
            let attempt = if leader == self.inner.id {
                // A leader cut off from the others goes on believing it leads, and its
                // lessor would keep renewing leases that the new leader expires: it
                // answers only after a quorum confirms it (shared with concurrent reads
                // and keepalives).
                match self.read_index_local().await {
                    Ok(_) => local(self),
                    Err(e) => Err(e),
                }
            } else {
                self.ask_leader(leader, &remote, deadline).await
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

    async fn ask_leader<T, Fut>(&self, leader: NodeId, remote: &impl Fn(PeerRpc) -> Fut, deadline: Instant) -> Result<T>
    where
        T: HasHeader,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let peer = self.peer(leader)?;
        let reply = tokio::time::timeout_at(deadline, remote(peer))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(|status| {
                tracing::debug!(leader, %status, "the leader did not answer a lease request");
                StoreError::LeaderChanged
            })?;
        let mut resp = reply.into_inner();
        self.fill_header(resp.header_mut());
        Ok(resp)
    }

    pub fn lease_time_to_live_local(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        // Like a keepalive, only a leader whose lessor holds the leases of its whole log.
        if !self.inner.lessor.is_primary() {
            return Err(StoreError::LeaderChanged);
        }
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
}
