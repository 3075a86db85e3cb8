//! Membership: the etcd Cluster operations over openraft's learners and
//! `change_membership`, and how a replica joining an existing cluster learns its ID.

use super::*;
use crate::peer_identity::{Membership, membership_index};

impl Store {
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

    /// The IDs of the members (voters and learners) as the latest membership has
    /// them; empty while this replica has not learned its membership.
    pub fn member_ids(&self) -> BTreeSet<NodeId> {
        self.membership().members
    }

    /// This replica's cluster and latest membership, for checking a peer's request.
    pub fn membership(&self) -> Membership {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        Membership {
            cluster_id: self.inner.cluster_id,
            members: metrics
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect(),
            index: membership_index(&metrics),
        }
    }

    /// Makes a membership change on the leader, wherever the request arrived.
    ///
    /// A promotion's outcome is made certain: an error that leaves it open (a timeout,
    /// a leader change, a lost forward) is answered only after the membership has
    /// settled, and becomes a success if the member is a voter by then. Otherwise a
    /// client that retried would hear "can only promote a learner member" for a
    /// promotion that it was told had failed.
    pub async fn change_member(&self, change: MemberChange) -> Result<Option<Member>> {
        let is_promotion = change.action == member_change::Action::Promote as i32;
        let id = change.id;
        match self.change_member_once(change).await {
            Err(e) if is_promotion && leaves_outcome_open(&e) => self.promotion_outcome(id, e).await,
            other => other,
        }
    }

    /// After a promotion failed with `error`: the promoted member if it is a voter
    /// once the membership has settled, else `error`.
    async fn promotion_outcome(&self, id: NodeId, error: StoreError) -> Result<Option<Member>> {
        if self.settle_membership().await.is_err() {
            return Err(error);
        }
        match self.members().into_iter().find(|m| m.id == id) {
            Some(member) if !member.is_learner => {
                tracing::info!(member = format!("{id:x}"), %error, "the promotion took effect despite the error");
                Ok(Some(member))
            }
            _ => Err(error),
        }
    }

    /// Waits until this replica has applied everything the leader has committed and
    /// no membership change is under way: the last one is applied here and is not a
    /// joint configuration.
    async fn settle_membership(&self) -> Result<()> {
        let deadline = self.deadline();
        loop {
            let index = self.fetch_read_index().await?;
            self.wait_applied(Some(index), deadline).await?;
            let is_settled = {
                let metrics = self.inner.raft.metrics();
                let metrics = metrics.borrow();
                let membership = &metrics.membership_config;
                let applied = metrics.last_applied.map(|l| l.index);
                membership.membership().get_joint_config().len() == 1 && applied >= membership.log_id().map(|l| l.index)
            };
            if is_settled {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn change_member_once(&self, change: MemberChange) -> Result<Option<Member>> {
        let leader = self.wait_for_leader(self.deadline()).await?;
        if leader != self.inner.id {
            let mut client = self.peer(leader)?;
            let id = change.id;
            let reply = client
                .change_member(change)
                .await
                .map_err(|s| naming_member(crate::grpc::status_to_error(&s), id))?;
            // The leader answered once its own view showed the change; wait until this
            // replica has applied that far too, so the response's member list (built
            // here) and a MemberList right after it show the new members.
            // Raft's metrics, not the state machine, hold the membership, so wait on them.
            let index = self.fetch_read_index().await?;
            self.inner
                .raft
                .wait(Some(self.request_timeout()))
                .applied_index_at_least(Some(index), "membership change to be visible")
                .await
                .map_err(|_| StoreError::Timeout)?;
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
        // An action this version does not know is refused, never read as another.
        let action = member_change::Action::try_from(change.action)
            .map_err(|_| StoreError::InvalidArgument(format!("unknown member change action {}", change.action)))?;
        if self.inner.config.strict_reconfig_check {
            self.check_reconfig(action, &change, &members)?;
        }
        match action {
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
            member_change::Action::Update => {
                let member = find(change.id)?;
                if change.peer_urls.is_empty() {
                    return Err(StoreError::InvalidArgument(
                        "member update needs at least one peer URL".into(),
                    ));
                }
                if members
                    .iter()
                    .filter(|m| m.id != change.id)
                    .any(|m| m.peer_ur_ls.iter().any(|u| change.peer_urls.contains(u)))
                {
                    return Err(StoreError::PeerUrlExists);
                }
                // The new URLs travel through the log with the membership, so every
                // replica learns them at the same point of history.
                let info = MemberInfo {
                    name: member.name.clone(),
                    peer_urls: change.peer_urls,
                    client_urls: member.client_ur_ls.clone(),
                };
                self.set_member_attributes(change.id, info).await?;
                Ok(None)
            }
            member_change::Action::Promote => {
                // During a change in progress (a joint configuration) every member of
                // either half reads as a voter; judge the member once it is done.
                self.settle_membership().await?;
                let members = self.members();
                let member = members
                    .iter()
                    .find(|m| m.id == change.id)
                    .ok_or(StoreError::MemberNotFound { id: change.id })?;
                if !member.is_learner {
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

    /// `--strict-reconfig-check`: refuses a change that would cost the quorum (see
    /// `strict_reconfig`). A member that is not there is left to the change itself.
    fn check_reconfig(&self, action: member_change::Action, change: &MemberChange, members: &[Member]) -> Result<()> {
        let voters = self.voters_for_reconfig(members);
        let checked = match action {
            member_change::Action::Add => strict_reconfig::may_add(&voters, change.is_learner),
            member_change::Action::Remove => strict_reconfig::may_remove(&voters, change.id, self.inner.id),
            member_change::Action::Promote if members.iter().any(|m| m.id == change.id && m.is_learner) => {
                strict_reconfig::may_promote(&voters)
            }
            member_change::Action::Promote | member_change::Action::Publish | member_change::Action::Update => Ok(()),
        };
        if let Err(e) = &checked {
            tracing::warn!(?action, member = format!("{:x}", change.id), error = %e, "refusing a membership change");
        }
        checked
    }

    /// Sets a node's attributes (the leader's side of a member publishing itself).
    pub async fn set_member_attributes(&self, id: NodeId, info: MemberInfo) -> Result<()> {
        self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, info)])), true)
            .await
    }

    /// Changes the membership and waits until this replica's view shows the change,
    /// so that a MemberList right after it answers with the new members.
    ///
    /// openraft takes one change at a time and refuses another while the last is not
    /// committed; members publishing their names at start-up make such changes on
    /// their own, so a refused change waits for the one in progress and is tried again.
    async fn change_membership(&self, changes: ChangeMembers<NodeId, MemberInfo>, retain: bool) -> Result<()> {
        let mut attempts = 0;
        let resp = loop {
            attempts += 1;
            match self.inner.raft.change_membership(changes.clone(), retain).await {
                Ok(resp) => break resp,
                Err(openraft::error::RaftError::APIError(
                    openraft::error::ClientWriteError::ChangeMembershipError(
                        openraft::error::ChangeMembershipError::InProgress(_),
                    ),
                )) if attempts < 5 => self.settle_membership().await?,
                Err(e) => return Err(membership_error(e)),
            }
        };
        self.wait_membership(resp.log_id).await
    }

    async fn wait_membership(&self, log_id: crate::raft::LogId) -> Result<()> {
        self.inner
            .raft
            .wait(Some(self.request_timeout()))
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

/// Whether a membership change that failed with `e` may have taken effect anyway.
fn leaves_outcome_open(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Timeout | StoreError::LeaderChanged | StoreError::NoLeader | StoreError::Internal(_)
    )
}

/// Asks the running members, in turn, for the ID that MemberAdd gave this replica.
pub(super) async fn join_cluster(config: &StoreConfig, dialer: &crate::tls::PeerDialer) -> Result<NodeId> {
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
            let channel = match crate::raft::peer_channel(&url, dialer) {
                Ok(channel) => channel,
                Err(e) => {
                    last_error = format!("{name} ({url}): {e}");
                    continue;
                }
            };
            // This replica does not know its member ID yet: that is what it asks for.
            let joiner = Me::new(cluster_id(&config.initial_cluster_token), 0);
            let mut client = crate::raft::peer_rpc(channel, joiner);
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

/// An error the leader answered a membership change with, naming the member again:
/// its gRPC status carries etcd's text only, and every member error of a change is
/// about the member the change names (see `change_member_local`).
fn naming_member(e: StoreError, id: NodeId) -> StoreError {
    match e {
        StoreError::MemberNotFound { .. } => StoreError::MemberNotFound { id },
        StoreError::MemberNotLearner { .. } => StoreError::MemberNotLearner { id },
        StoreError::LearnerNotReady { .. } => StoreError::LearnerNotReady { id },
        other => other,
    }
}
