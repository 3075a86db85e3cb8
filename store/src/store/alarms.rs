//! Alarms through the store handle: the Maintenance service's Alarm call, the alarms
//! `/health` and endpoint status report, and the checks writes pass at the front door.
//!
//! The cluster's alarms are replicated (see `alarm`); a replica whose disk is full
//! (see `disk_space`) also counts a NOSPACE alarm of its own at once, before the log
//! (which it may be unable to write) carries one.

use berth_proto::etcdserverpb::alarm_request::AlarmAction;
use berth_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType};

use super::*;
use crate::alarm::{self, RequestKind};
use crate::disk_space::{DiskSpace, SpaceReport};

impl Store {
    /// The active alarms, cluster-wide, in (member, type) order: those the log raised,
    /// and this member's NOSPACE while its disk is full.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        let mut alarms = self.inner.state.read().alarms.get(AlarmType::None);
        if self.inner.space.is_full() {
            let own = AlarmMember {
                member_id: self.inner.id,
                alarm: AlarmType::Nospace as i32,
            };
            if !alarms.contains(&own) {
                alarms.push(own);
                alarms.sort_by_key(|a| (a.member_id, a.alarm));
            }
        }
        alarms
    }

    /// Raises `alarm` for `member_id` through the log.
    pub async fn activate_alarm(&self, member_id: u64, alarm: AlarmType) -> Result<()> {
        self.propose_alarm(AlarmAction::Activate, member_id, alarm)
            .await
            .map(drop)
    }

    /// etcd's Maintenance.Alarm: GET lists the active alarms (of one type, or all for
    /// NONE); ACTIVATE and DEACTIVATE go through the log and answer with the alarm
    /// they changed, if any.
    pub async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse> {
        if AlarmAction::try_from(req.action) != Ok(AlarmAction::Get) {
            crate::validate::alarm_change(&req)?;
        }
        let action = AlarmAction::try_from(req.action).unwrap_or(AlarmAction::Get);
        let alarm = AlarmType::try_from(req.alarm)
            .map_err(|_| StoreError::InvalidArgument(format!("unknown alarm type {}", req.alarm)))?;
        match action {
            AlarmAction::Get => {
                let alarms = self
                    .alarms()
                    .into_iter()
                    .filter(|a| alarm == AlarmType::None || a.alarm == alarm as i32)
                    .collect();
                Ok(AlarmResponse {
                    header: Some(self.header(self.current_revision())),
                    alarms,
                })
            }
            AlarmAction::Activate | AlarmAction::Deactivate => self.propose_alarm(action, req.member_id, alarm).await,
        }
    }

    async fn propose_alarm(&self, action: AlarmAction, member_id: u64, alarm: AlarmType) -> Result<AlarmResponse> {
        let req = AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        };
        self.write(command::Command::Alarm(req), |r| match r {
            command_result::Result::Alarm(resp) => Some(resp),
            _ => None,
        })
        .await
    }

    /// Refuses at once a write that adds data while this member's disk is full. The
    /// cluster's alarms are apply's to enforce, in log order: checked here against
    /// this member's applied state, a write sent just after a disarm would be refused
    /// by a member that has not applied the disarm yet.
    pub(super) fn refuse_if_disk_full(&self) -> Result<()> {
        alarm::check(false, self.inner.space.is_full(), RequestKind::AddsData)
    }

    /// The backend quota, as etcd checks it before a write that adds data: over it,
    /// this member raises NOSPACE (which stays until an operator disarms it) and then
    /// the write is refused.
    pub(super) async fn check_quota(&self) -> Result<()> {
        if self.inner.backend.size_bytes() <= self.inner.config.quota_backend_bytes {
            return Ok(());
        }
        let already = self
            .inner
            .state
            .read()
            .alarms
            .get(AlarmType::Nospace)
            .iter()
            .any(|a| a.member_id == self.inner.id);
        if !already && let Err(e) = self.activate_alarm(self.inner.id, AlarmType::Nospace).await {
            tracing::warn!(error = %e, "raising the NOSPACE alarm for the backend quota failed");
        }
        Err(StoreError::NoSpace)
    }

    /// This member's view of its disk (see `disk_space`).
    pub fn disk_space(&self) -> &DiskSpace {
        &self.inner.space
    }

    /// The writes that failed for want of space, one per file; empty while the disk
    /// has room.
    pub fn space_reports(&self) -> Vec<SpaceReport> {
        self.inner.space.reports()
    }

    /// Writes out the state machine's gathered writes, which wait in memory while the
    /// disk is full; succeeding, it clears the database's report.
    /// Looks at the free space now, before a write has to find the disk full.
    pub(crate) fn check_disk_space(&self) {
        self.inner.state_backend.check_space();
    }

    /// Resolves, with the reason, if the Raft core stops on an error (a disk that
    /// failed, say): the replica can then no longer take part, and its process should
    /// exit so that a supervisor restarts it rather than serve on as a zombie.
    pub async fn raft_stopped(&self) -> String {
        // The core drops its metrics' senders when it stops, having said why in the
        // whole metrics: wait on the server's metrics, which change with the role and
        // term only, not on the whole ones, which change with every entry.
        let mut server = self.inner.raft.server_metrics();
        loop {
            if let Err(fatal) = &self.inner.raft.metrics().borrow().running_state {
                return fatal.to_string();
            }
            if server.changed().await.is_err() {
                return match &self.inner.raft.metrics().borrow().running_state {
                    Err(fatal) => fatal.to_string(),
                    Ok(()) => "the raft core is gone".to_string(),
                };
            }
        }
    }

    pub(crate) fn write_out_state(&self) -> std::result::Result<(), crate::backend::BackendError> {
        self.inner.state_backend.write_out_now()
    }
}
