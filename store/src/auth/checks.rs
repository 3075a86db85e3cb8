//! Which permissions each etcd request needs, as etcd asks them: a range READ on its
//! range; a put WRITE on its key (and READ for prev_kv, WRITE on every key of a lease
//! it attaches to); a delete WRITE on its range (and READ for prev_kv); a txn all of
//! that for every operation of both branches, nested ones too, and READ on each
//! compared key or range; a watch READ on its range; a lease revoke WRITE on every key
//! of the lease. What only `root` may do (the Auth API's changes, member changes,
//! maintenance) is [`admin`].

use berth_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, request_op};

use super::{Access, AuthError, AuthState};
use crate::lease::LeaseTable;

pub fn admin(auth: &AuthState, user: &str) -> Result<(), AuthError> {
    if auth.is_root(user) {
        Ok(())
    } else {
        Err(AuthError::PermissionDenied)
    }
}

pub fn range(auth: &AuthState, user: &str, req: &RangeRequest) -> Result<(), AuthError> {
    auth.check(user, &req.key, &req.range_end, Access::Read)
}

pub fn put(auth: &AuthState, leases: &LeaseTable, user: &str, req: &PutRequest) -> Result<(), AuthError> {
    auth.check(user, &req.key, &[], Access::Write)?;
    if req.prev_kv {
        auth.check(user, &req.key, &[], Access::Read)?;
    }
    if req.lease != 0 {
        lease_keys(auth, leases, user, req.lease)?;
    }
    Ok(())
}

pub fn delete_range(auth: &AuthState, user: &str, req: &DeleteRangeRequest) -> Result<(), AuthError> {
    auth.check(user, &req.key, &req.range_end, Access::Write)?;
    if req.prev_kv {
        auth.check(user, &req.key, &req.range_end, Access::Read)?;
    }
    Ok(())
}

pub fn txn(auth: &AuthState, leases: &LeaseTable, user: &str, req: &TxnRequest) -> Result<(), AuthError> {
    if auth.is_root(user) {
        return Ok(());
    }
    for compare in &req.compare {
        auth.check(user, &compare.key, &compare.range_end, Access::Read)?;
    }
    for op in req.success.iter().chain(&req.failure) {
        txn_op(auth, leases, user, op)?;
    }
    Ok(())
}

fn txn_op(auth: &AuthState, leases: &LeaseTable, user: &str, op: &RequestOp) -> Result<(), AuthError> {
    match &op.request {
        Some(request_op::Request::RequestRange(req)) => range(auth, user, req),
        Some(request_op::Request::RequestPut(req)) => put(auth, leases, user, req),
        Some(request_op::Request::RequestDeleteRange(req)) => delete_range(auth, user, req),
        Some(request_op::Request::RequestTxn(req)) => txn(auth, leases, user, req),
        None => Ok(()),
    }
}

pub fn watch(auth: &AuthState, user: &str, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
    auth.check(user, key, range_end, Access::Read)
}

/// WRITE on every key attached to `lease` (revoking it deletes them; attaching to it
/// ties one's key to theirs).
pub fn lease_keys(auth: &AuthState, leases: &LeaseTable, user: &str, lease: i64) -> Result<(), AuthError> {
    if auth.is_root(user) {
        return Ok(());
    }
    if let Some(lease) = leases.get(lease) {
        for key in &lease.keys {
            auth.check(user, key, &[], Access::Write)?;
        }
    }
    Ok(())
}

/// Anything a known user may do: lease grants and keepalives, status calls.
pub fn known_user(auth: &AuthState, user: &str) -> Result<(), AuthError> {
    if auth.users.contains_key(user) {
        Ok(())
    } else {
        Err(AuthError::PermissionDenied)
    }
}
