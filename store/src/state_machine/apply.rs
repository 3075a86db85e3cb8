//! The deterministic heart of the store: one command in, one result and the events
//! it caused out. No clock, no randomness, no I/O beyond the staged writes of
//! [`KvStore`]: every replica that applies the same log reaches the same state.

use berth_proto::berthpb::{Command, command, command_result};
use berth_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, compare, request_op, response_op,
};
use berth_proto::mvccpb::KeyValue;

use crate::backend::WriteBatch;
use crate::error::StoreError;
use crate::lease::LeaseTable;
use crate::mvcc::{KeyRange, KvStore, MvccError, RangeOptions, RevisionEvents, WriteCtx};
use crate::raft::{CommandOutcome, LogId, StoredMembership};

/// The replicated state that commands change, and how far the log has been
/// applied to it.
#[derive(Debug)]
pub struct AppliedState {
    pub kv: KvStore,
    pub leases: LeaseTable,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// What applying one command produced.
#[derive(Debug)]
pub struct Applied {
    pub result: CommandOutcome,
    pub events: Option<RevisionEvents>,
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
        };
        let events = self.kv.end_write(ctx);
        let mut result = result;
        if let Some(events) = &events {
            set_header_revision(&mut result, events.revision);
        } else {
            set_header_revision(&mut result, self.kv.current_revision());
        }
        Ok(Applied { result, events })
    }

    /// Serves a transaction without writes against the current state (no log entry).
    pub fn read_only_txn(&self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        let at = self.kv.current_revision();
        let succeeded = self.txn_succeeds(req)?;
        let mut responses = Vec::new();
        for op in branch(req, succeeded) {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(r)) => response_op::Response::ResponseRange(self.range(r, at)?),
                Some(request_op::Request::RequestTxn(t)) => response_op::Response::ResponseTxn(self.read_only_txn(t)?),
                _ => continue,
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        let mut resp = TxnResponse {
            header: header(at),
            succeeded,
            responses,
        };
        for op in &mut resp.responses {
            set_op_header(op, at);
        }
        Ok(resp)
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

    /// Whether a transaction takes its success branch, decided against the state
    /// before it.
    fn txn_succeeds(&self, req: &TxnRequest) -> Result<bool, MvccError> {
        let at = self.kv.current_revision();
        for cmp in &req.compare {
            if !self.compare_holds(cmp, at)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Rejects a branch that would fail halfway, before anything is written.
    fn check_txn_ops(&self, ops: &[RequestOp]) -> Result<(), Rejected> {
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestPut(put)) => self.check_put(put)?,
                Some(request_op::Request::RequestRange(range)) => {
                    self.kv.check_revision(range.revision)?;
                }
                Some(request_op::Request::RequestTxn(txn)) => {
                    let succeeds = self.txn_succeeds(txn)?;
                    self.check_txn_ops(branch(txn, succeeds))?;
                }
                Some(request_op::Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn txn(&mut self, ctx: &mut WriteCtx, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        let succeeded = self.txn_succeeds(req)?;
        let ops = branch(req, succeeded);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    response_op::Response::ResponseRange(self.range(r, ctx.revision())?)
                }
                Some(request_op::Request::RequestPut(p)) => response_op::Response::ResponsePut(self.put(ctx, p)?),
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    response_op::Response::ResponseDeleteRange(self.delete_range(ctx, d)?)
                }
                Some(request_op::Request::RequestTxn(t)) => response_op::Response::ResponseTxn(self.txn(ctx, t)?),
                None => continue,
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        Ok(TxnResponse {
            header: None,
            succeeded,
            responses,
        })
    }

    fn compare_holds(&self, cmp: &Compare, at: i64) -> Result<bool, MvccError> {
        let range = KeyRange::new(&cmp.key, &cmp.range_end);
        let kvs = self.kv.range_at(&range, &RangeOptions::default(), at)?.kvs;
        let target = compare::CompareTarget::try_from(cmp.target).unwrap_or(compare::CompareTarget::Version);
        if kvs.is_empty() {
            if target == compare::CompareTarget::Value {
                return Ok(false);
            }
            return Ok(compare_one(&KeyValue::default(), cmp, target));
        }
        Ok(kvs.iter().all(|kv| compare_one(kv, cmp, target)))
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

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded { &req.success } else { &req.failure }
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

fn compare_one(kv: &KeyValue, cmp: &Compare, target: compare::CompareTarget) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    use std::cmp::Ordering;
    let ordering = match target {
        CompareTarget::Value => {
            let want: &[u8] = match &cmp.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        _ => {
            let (have, want) = match (target, &cmp.target_union) {
                (CompareTarget::Version, Some(TargetUnion::Version(v))) => (kv.version, *v),
                (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => (kv.create_revision, *v),
                (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => (kv.mod_revision, *v),
                (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => (kv.lease, *v),
                (CompareTarget::Version, _) => (kv.version, 0),
                (CompareTarget::Create, _) => (kv.create_revision, 0),
                (CompareTarget::Mod, _) => (kv.mod_revision, 0),
                (CompareTarget::Lease, _) => (kv.lease, 0),
                (CompareTarget::Value, _) => unreachable!("handled above"),
            };
            have.cmp(&want)
        }
    };
    match CompareResult::try_from(cmp.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
        CompareResult::NotEqual => ordering != Ordering::Equal,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};

    use super::*;
    use crate::backend::{MemoryBackend, SharedBackend};

    fn state() -> AppliedState {
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        AppliedState::load(&backend).unwrap()
    }

    /// Applies and commits, as the state machine adapter does.
    fn apply(state: &mut AppliedState, cmd: command::Command) -> Applied {
        let mut lease_batch = WriteBatch::new();
        let applied = state.apply(&Command { command: Some(cmd) }, &mut lease_batch).unwrap();
        let mut batch = state.kv.take_batch();
        batch.ops.append(&mut lease_batch.ops);
        state.kv.backend().write(crate::backend::Tree::State, batch).unwrap();
        applied
    }

    fn run(state: &mut AppliedState, cmd: command::Command) -> CommandOutcome {
        apply(state, cmd).result
    }

    fn put(key: &str, value: &str, lease: i64) -> command::Command {
        command::Command::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..Default::default()
        })
    }

    fn cmp(key: &str, range_end: &str, target: CompareTarget, result: CompareResult, value: TargetUnion) -> Compare {
        Compare {
            result: result as i32,
            target: target as i32,
            key: key.into(),
            range_end: range_end.into(),
            target_union: Some(value),
        }
    }

    /// a: version 2, create 1, mod 2, value "a2", lease 7; b: version 1, create 3, mod 3.
    fn fixture() -> AppliedState {
        let mut s = state();
        run(
            &mut s,
            command::Command::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 7 }),
        )
        .unwrap();
        run(&mut s, put("a", "a1", 0)).unwrap();
        run(&mut s, put("a", "a2", 7)).unwrap();
        run(&mut s, put("b", "b1", 0)).unwrap();
        s
    }

    #[test]
    fn every_compare_target_and_result() {
        use CompareResult::{Equal, Greater, Less, NotEqual};
        let s = fixture();
        let at = s.kv.current_revision();
        let cases = [
            (
                CompareTarget::Version,
                TargetUnion::Version(2),
                [true, false, false, false],
            ),
            (
                CompareTarget::Version,
                TargetUnion::Version(1),
                [false, true, false, true],
            ),
            (
                CompareTarget::Create,
                TargetUnion::CreateRevision(2),
                [false, false, true, true],
            ),
            (
                CompareTarget::Mod,
                TargetUnion::ModRevision(3),
                [false, false, true, true],
            ),
            (
                CompareTarget::Value,
                TargetUnion::Value(b"a2".to_vec()),
                [true, false, false, false],
            ),
            (
                CompareTarget::Value,
                TargetUnion::Value(b"a1".to_vec()),
                [false, true, false, true],
            ),
            (CompareTarget::Lease, TargetUnion::Lease(7), [true, false, false, false]),
            (CompareTarget::Lease, TargetUnion::Lease(8), [false, false, true, true]),
        ];
        for (target, value, want) in cases {
            for (result, want) in [Equal, Greater, Less, NotEqual].into_iter().zip(want) {
                let c = cmp("a", "", target, result, value.clone());
                assert_eq!(
                    s.compare_holds(&c, at).unwrap(),
                    want,
                    "{target:?} {result:?} {value:?}"
                );
            }
        }
    }

    #[test]
    fn range_compares_hold_for_every_key_and_missing_keys_compare_as_zero() {
        let s = fixture();
        let at = s.kv.current_revision();
        let all_positive = cmp(
            "a",
            "c",
            CompareTarget::Version,
            CompareResult::Greater,
            TargetUnion::Version(0),
        );
        assert!(s.compare_holds(&all_positive, at).unwrap());
        let all_two = cmp(
            "a",
            "c",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(2),
        );
        assert!(!s.compare_holds(&all_two, at).unwrap(), "b has version 1");
        let absent = cmp(
            "zz",
            "",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        );
        assert!(s.compare_holds(&absent, at).unwrap(), "a missing key has version 0");
        let absent_value = cmp(
            "zz",
            "",
            CompareTarget::Value,
            CompareResult::NotEqual,
            TargetUnion::Value(vec![]),
        );
        assert!(
            !s.compare_holds(&absent_value, at).unwrap(),
            "a value compare on a missing key fails"
        );
    }

    #[test]
    fn a_failed_txn_check_writes_nothing() {
        let mut s = fixture();
        let before = s.kv.current_revision();
        let txn = TxnRequest {
            success: vec![
                RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: "x".into(),
                        ..Default::default()
                    })),
                },
                RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: "y".into(),
                        lease: 99,
                        ..Default::default()
                    })),
                },
            ],
            ..Default::default()
        };
        let result = run(&mut s, command::Command::Txn(txn));
        assert!(
            matches!(result, Err(StoreError::LeaseNotFound { id: 99 })),
            "{result:?}"
        );
        assert_eq!(s.kv.current_revision(), before);
        assert!(s.kv.get_at(b"x", before).unwrap().is_none());
    }

    #[test]
    fn revoking_a_lease_deletes_its_keys_in_one_revision() {
        let mut s = fixture();
        run(&mut s, put("c", "c1", 7)).unwrap();
        let before = s.kv.current_revision();
        let mut batch = WriteBatch::new();
        let applied = s
            .apply(
                &Command {
                    command: Some(command::Command::LeaseRevoke(LeaseRevokeRequest { id: 7 })),
                },
                &mut batch,
            )
            .unwrap();
        let events = applied.events.unwrap();
        assert_eq!(events.revision, before + 1);
        assert_eq!(events.events.len(), 2, "a and c");
        assert!(s.kv.get_at(b"a", before + 1).unwrap().is_none());
        assert!(s.kv.get_at(b"b", before + 1).unwrap().is_some());
        assert!(!s.leases.contains(7));
    }
}
