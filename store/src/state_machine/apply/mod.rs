//! The deterministic heart of the store: one command in, one result and the events
//! it caused out. No clock, no randomness, no I/O beyond the staged writes of
//! [`KvStore`]: every replica that applies the same log reaches the same state.

use berth_proto::berthpb::{AuthCommand, AuthResponse, AuthorizedCommand, Command, command, command_result};
use berth_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, ResponseOp, response_op,
};
use berth_proto::mvccpb::KeyValue;

use crate::alarm::{AlarmSet, RequestKind};
use crate::auth::AuthState;
use crate::auth::state::AuthEffect;
use crate::backend::WriteBatch;
use crate::error::StoreError;
use crate::lease::LeaseTable;
use crate::mvcc::{KeyRange, KvStore, MvccError, RangeOptions, RevisionEvents, WriteCtx};
use crate::raft::{CommandOutcome, LogId, StoredMembership};

#[cfg(test)]
mod tests;
mod txn;

use txn::branch;

/// The replicated state that commands change, and how far the log has been
/// applied to it.
#[derive(Debug)]
pub struct AppliedState {
    pub kv: KvStore,
    pub leases: LeaseTable,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// The cluster's alarms (see `alarm`): they decide which commands apply refuses.
    pub alarms: AlarmSet,
    /// Users, roles, permissions, whether auth is on (see `auth`).
    pub auth: AuthState,
}

/// What applying one command produced.
#[derive(Debug)]
pub struct Applied {
    pub result: CommandOutcome,
    pub events: Option<RevisionEvents>,
    /// What an auth command means for this member's memory (tokens, enabled).
    pub auth: Option<AuthEffect>,
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// An error that aborts a whole command before it changes anything.
type Rejected = StoreError;

impl AppliedState {
    /// Applies one command. Errors that clients see (unknown lease, compacted
    /// revision, …) are results, not failures: they are the same on every replica.
    /// Only a backend failure is returned as `Err`, and then the replica must stop.
    pub fn apply(&mut self, cmd: &Command, lease_batch: &mut WriteBatch) -> Result<Applied, MvccError> {
        let Some(inner) = &cmd.command else {
            // An empty oneof is what a newer replica's unknown command decodes to.
            return Err(MvccError::CorruptRecord {
                revision: Default::default(),
                reason: "log entry holds a command this version does not know; upgrade this replica".into(),
            });
        };
        // etcd's corrupt and capped appliers: what the alarms forbid changes nothing.
        if let Some(kind) = request_kind(inner)
            && let Err(refused) = self.alarms.check(kind)
        {
            return Ok(Applied {
                result: Err(refused),
                events: None,
                auth: None,
            });
        }
        if let command::Command::Auth(auth) = inner {
            return Ok(self.apply_auth(auth, lease_batch));
        }
        if let command::Command::Authorized(authorized) = inner {
            return self.apply_authorized(authorized, lease_batch);
        }
        let mut ctx = self.kv.begin_write();
        let result = match inner {
            command::Command::Put(req) => match self.check_put(req) {
                Err(rejected) => Err(rejected),
                Ok(()) => Ok(command_result::Result::Put(self.put(&mut ctx, req)?)),
            },
            command::Command::DeleteRange(req) => {
                Ok(command_result::Result::DeleteRange(self.delete_range(&mut ctx, req)?))
            }
            command::Command::Txn(req) => match self.check_txn_ops(branch(req, self.txn_succeeds(req)?)) {
                Err(rejected) => Err(rejected),
                Ok(()) => Ok(command_result::Result::Txn(self.txn(&mut ctx, req)?)),
            },
            command::Command::Compaction(req) => self.compact(req)?,
            command::Command::LeaseGrant(req) => self.lease_grant(req, lease_batch),
            command::Command::LeaseRevoke(req) => self.lease_revoke(&mut ctx, req, lease_batch)?,
            // The alarm records go into the batch beside the MVCC writes, as leases do.
            command::Command::Alarm(req) => Ok(command_result::Result::Alarm(self.alarm(req, lease_batch))),
            command::Command::Auth(_) | command::Command::Authorized(_) => {
                unreachable!("auth commands are applied before the MVCC write begins")
            }
        };
        let events = self.kv.end_write(ctx);
        let mut result = result;
        if let Some(events) = &events {
            set_header_revision(&mut result, events.revision);
        } else {
            set_header_revision(&mut result, self.kv.current_revision());
        }
        Ok(Applied {
            result,
            events,
            auth: None,
        })
    }

    /// A client's write checked by its member at an auth revision: checked again if
    /// the auth state has changed since, then applied as the command it wraps.
    fn apply_authorized(
        &mut self,
        cmd: &AuthorizedCommand,
        lease_batch: &mut WriteBatch,
    ) -> Result<Applied, MvccError> {
        let Some(inner) = cmd.command.as_deref() else {
            return Ok(Applied {
                result: Err(StoreError::InvalidArgument(
                    "an authorized command without a command".into(),
                )),
                events: None,
                auth: None,
            });
        };
        if self.auth.enabled
            && self.auth.revision != cmd.auth_revision
            && let Err(refused) = self.recheck(&cmd.user, inner)
        {
            return Ok(Applied {
                result: Err(refused.into()),
                events: None,
                auth: None,
            });
        }
        self.apply(inner, lease_batch)
    }

    fn recheck(&self, user: &str, cmd: &Command) -> Result<(), crate::auth::AuthError> {
        use crate::auth::checks;
        match &cmd.command {
            Some(command::Command::Put(req)) => checks::put(&self.auth, &self.leases, user, req),
            Some(command::Command::DeleteRange(req)) => checks::delete_range(&self.auth, user, req),
            Some(command::Command::Txn(req)) => checks::txn(&self.auth, &self.leases, user, req),
            Some(command::Command::LeaseRevoke(req)) => checks::lease_keys(&self.auth, &self.leases, user, req.id),
            Some(command::Command::LeaseGrant(_)) => checks::known_user(&self.auth, user),
            _ => checks::admin(&self.auth, user),
        }
    }

    /// An auth change: the auth state's own record goes into the batch beside the
    /// MVCC writes, as the leases' and alarms' do. It makes no MVCC revision.
    fn apply_auth(&mut self, cmd: &AuthCommand, batch: &mut WriteBatch) -> Applied {
        let revision = self.kv.current_revision();
        let Some(op) = &cmd.op else {
            return Applied {
                result: Err(StoreError::InvalidArgument(
                    "an auth command without an operation".into(),
                )),
                events: None,
                auth: None,
            };
        };
        match self.auth.apply(op, batch) {
            Ok(effect) => Applied {
                result: Ok(command_result::Result::Auth(AuthResponse {
                    header: header(revision),
                    auth_revision: self.auth.revision,
                })),
                events: None,
                auth: Some(effect),
            },
            Err(e) => Applied {
                result: Err(e.into()),
                events: None,
                auth: None,
            },
        }
    }

    /// ACTIVATE or DEACTIVATE one member's alarm; the response lists the alarm when it
    /// changed, as etcd's does. GET never reaches the log.
    fn alarm(&mut self, req: &AlarmRequest, batch: &mut WriteBatch) -> AlarmResponse {
        use berth_proto::etcdserverpb::alarm_request::AlarmAction;
        let changed = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Activate) => self.alarms.activate(req.member_id, req.alarm, batch),
            Ok(AlarmAction::Deactivate) => self.alarms.deactivate(req.member_id, req.alarm, batch),
            Ok(AlarmAction::Get) | Err(_) => None,
        };
        AlarmResponse {
            header: None,
            alarms: changed.into_iter().collect(),
        }
    }

    fn check_put(&self, req: &PutRequest) -> Result<(), Rejected> {
        if req.lease != 0 && !self.leases.contains(req.lease) {
            return Err(StoreError::LeaseNotFound { id: req.lease });
        }
        if req.ignore_value || req.ignore_lease {
            let current = self.kv.get_at(&req.key, self.kv.current_revision())?;
            if current.is_none() {
                return Err(StoreError::KeyNotFound);
            }
        }
        Ok(())
    }

    fn put(&mut self, ctx: &mut WriteCtx, req: &PutRequest) -> Result<PutResponse, MvccError> {
        let existing = if req.ignore_value || req.ignore_lease {
            self.kv.get_at(&req.key, ctx.revision())?
        } else {
            None
        };
        let value = match (&existing, req.ignore_value) {
            (Some(kv), true) => kv.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&existing, req.ignore_lease) {
            (Some(kv), true) => kv.lease,
            _ => req.lease,
        };
        let replaced = self.kv.put(ctx, &req.key, value, lease, req.prev_kv)?;
        let prev_kv = match replaced {
            Some(replaced) => {
                if replaced.meta.lease != 0 && replaced.meta.lease != lease {
                    self.leases.detach(replaced.meta.lease, &req.key);
                }
                replaced.kv
            }
            None => None,
        };
        if lease != 0 {
            self.leases.attach(lease, &req.key);
        }
        Ok(PutResponse { header: None, prev_kv })
    }

    fn delete_range(&mut self, ctx: &mut WriteCtx, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        let deleted = self.kv.delete_range(ctx, &KeyRange::new(&req.key, &req.range_end))?;
        self.detach_all(&deleted);
        Ok(DeleteRangeResponse {
            header: None,
            deleted: deleted.len() as i64,
            prev_kvs: if req.prev_kv { deleted } else { Vec::new() },
        })
    }

    fn detach_all(&mut self, deleted: &[KeyValue]) {
        for kv in deleted.iter().filter(|kv| kv.lease != 0) {
            self.leases.detach(kv.lease, &kv.key);
        }
    }

    fn range(&self, req: &RangeRequest, at: i64) -> Result<RangeResponse, MvccError> {
        let opts = range_options(req);
        let at = if req.revision > 0 {
            self.kv.check_revision(req.revision)?
        } else {
            at
        };
        let result = self.kv.range_at(&KeyRange::new(&req.key, &req.range_end), &opts, at)?;
        Ok(RangeResponse {
            header: None,
            kvs: result.kvs,
            more: result.more,
            count: result.count,
        })
    }

    fn compact(&mut self, req: &CompactionRequest) -> Result<CommandOutcome, MvccError> {
        match self.kv.compact(req.revision) {
            Ok(()) => Ok(Ok(command_result::Result::Compaction(CompactionResponse {
                header: None,
            }))),
            Err(e @ (MvccError::Compacted { .. } | MvccError::FutureRevision { .. })) => Ok(Err(e.into())),
            Err(e) => Err(e),
        }
    }

    fn lease_grant(&mut self, req: &LeaseGrantRequest, batch: &mut WriteBatch) -> CommandOutcome {
        if self.leases.contains(req.id) {
            return Err(StoreError::LeaseExists { id: req.id });
        }
        self.leases.grant(req.id, req.ttl, batch);
        Ok(command_result::Result::LeaseGrant(LeaseGrantResponse {
            header: None,
            id: req.id,
            ttl: req.ttl,
            error: String::new(),
        }))
    }

    fn lease_revoke(
        &mut self,
        ctx: &mut WriteCtx,
        req: &LeaseRevokeRequest,
        batch: &mut WriteBatch,
    ) -> Result<CommandOutcome, MvccError> {
        let Some(keys) = self.leases.revoke(req.id, batch) else {
            return Ok(Err(StoreError::LeaseNotFound { id: req.id }));
        };
        // All of a lease's keys go in one revision, as etcd does.
        for key in keys {
            self.kv.delete_range(ctx, &KeyRange::single(&key))?;
        }
        Ok(Ok(command_result::Result::LeaseRevoke(LeaseRevokeResponse {
            header: None,
        })))
    }
}

/// What a command is to the alarms. An alarm command itself is always applied, so
/// that an alarm can be cleared while it is raised.
fn request_kind(cmd: &command::Command) -> Option<RequestKind> {
    match cmd {
        command::Command::Put(_) | command::Command::LeaseGrant(_) => Some(RequestKind::AddsData),
        command::Command::Txn(req) if crate::validate::txn_has_puts(req) => Some(RequestKind::AddsData),
        command::Command::Alarm(_) => None,
        command::Command::Auth(_) => Some(RequestKind::Other),
        // The command it wraps is checked when it is applied.
        command::Command::Authorized(_) => None,
        _ => Some(RequestKind::Other),
    }
}

pub fn range_options(req: &RangeRequest) -> RangeOptions {
    RangeOptions {
        revision: req.revision,
        limit: req.limit,
        keys_only: req.keys_only,
        count_only: req.count_only,
        sort_order: req.sort_order,
        sort_target: req.sort_target,
        min_mod_revision: req.min_mod_revision,
        max_mod_revision: req.max_mod_revision,
        min_create_revision: req.min_create_revision,
        max_create_revision: req.max_create_revision,
    }
}

fn set_header_revision(outcome: &mut CommandOutcome, revision: i64) {
    use command_result::Result as R;
    match outcome {
        Ok(R::Put(r)) => r.header = header(revision),
        Ok(R::DeleteRange(r)) => r.header = header(revision),
        Ok(R::Txn(r)) => {
            r.header = header(revision);
            for op in &mut r.responses {
                set_op_header(op, revision);
            }
        }
        Ok(R::Compaction(r)) => r.header = header(revision),
        Ok(R::LeaseGrant(r)) => r.header = header(revision),
        Ok(R::LeaseRevoke(r)) => r.header = header(revision),
        Ok(R::Alarm(r)) => r.header = header(revision),
        Ok(R::Auth(r)) => r.header = header(revision),
        // Apply never answers with the protobuf error: its errors are `Err`.
        Ok(R::Error(_)) | Err(_) => {}
    }
}

fn set_op_header(op: &mut ResponseOp, revision: i64) {
    use response_op::Response as R;
    match &mut op.response {
        Some(R::ResponseRange(r)) => r.header = header(revision),
        Some(R::ResponsePut(r)) => r.header = header(revision),
        Some(R::ResponseDeleteRange(r)) => r.header = header(revision),
        Some(R::ResponseTxn(r)) => {
            r.header = header(revision);
            for inner in &mut r.responses {
                set_op_header(inner, revision);
            }
        }
        None => {}
    }
}
