//! Transactions: which branch a transaction takes, decided by its compares against
//! the state before it, the check that the branch can be applied whole, and the
//! branch applied (or, without writes, served as a read).

use berth_proto::etcdserverpb::{
    Compare, RequestOp, ResponseOp, TxnRequest, TxnResponse, compare, request_op, response_op,
};
use berth_proto::mvccpb::KeyValue;

use super::{AppliedState, Rejected, header, set_op_header};
use crate::mvcc::{KeyRange, MvccError, RangeOptions, WriteCtx};

impl AppliedState {
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

    /// Whether a transaction takes its success branch, decided against the state
    /// before it.
    pub(super) fn txn_succeeds(&self, req: &TxnRequest) -> Result<bool, MvccError> {
        let at = self.kv.current_revision();
        for cmp in &req.compare {
            if !self.compare_holds(cmp, at)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Rejects a branch that would fail halfway, before anything is written.
    pub(super) fn check_txn_ops(&self, ops: &[RequestOp]) -> Result<(), Rejected> {
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

    pub(super) fn txn(&mut self, ctx: &mut WriteCtx, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
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

    pub(super) fn compare_holds(&self, cmp: &Compare, at: i64) -> Result<bool, MvccError> {
        let target = compare::CompareTarget::try_from(cmp.target).unwrap_or(compare::CompareTarget::Version);
        // One key's revisions, version or lease: the index knows them, and most
        // compares (every conditional update) need no read of the value.
        if cmp.range_end.is_empty()
            && target != compare::CompareTarget::Value
            && let Some(live) = self.kv.meta_at(&cmp.key, at)
        {
            let kv = live.map_or_else(KeyValue::default, |(mod_revision, meta)| KeyValue {
                create_revision: meta.create_revision,
                mod_revision,
                version: meta.version,
                lease: meta.lease,
                ..KeyValue::default()
            });
            return Ok(compare_one(&kv, cmp, target));
        }
        let range = KeyRange::new(&cmp.key, &cmp.range_end);
        let kvs = self.kv.range_at(&range, &RangeOptions::default(), at)?.kvs;
        if kvs.is_empty() {
            if target == compare::CompareTarget::Value {
                return Ok(false);
            }
            return Ok(compare_one(&KeyValue::default(), cmp, target));
        }
        Ok(kvs.iter().all(|kv| compare_one(kv, cmp, target)))
    }
}

pub(super) fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded { &req.success } else { &req.failure }
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
