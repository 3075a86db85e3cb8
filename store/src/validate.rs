//! Checks a request before it reaches the log, with etcd's rules and errors. What
//! fails here writes nothing and costs no consensus round.

use berth_proto::Message;
use berth_proto::berthpb::{Command, command};
use berth_proto::etcdserverpb::alarm_request::AlarmAction;
use berth_proto::etcdserverpb::{
    AlarmRequest, AlarmType, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    range_request, request_op,
};

use crate::error::{Result, StoreError};
use crate::lease::MAX_LEASE_TTL_SECONDS;
use crate::mvcc::KeyRange;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

pub fn size<M: Message>(req: &M, max_request_bytes: usize) -> Result<()> {
    let bytes = req.encoded_len();
    if bytes > max_request_bytes {
        return Err(StoreError::RequestTooLarge {
            bytes,
            max: max_request_bytes,
        });
    }
    Ok(())
}

pub fn put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

pub fn range(req: &RangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if range_request::SortOrder::try_from(req.sort_order).is_err() {
        return Err(StoreError::InvalidArgument(format!(
            "invalid sort order {}",
            req.sort_order
        )));
    }
    if range_request::SortTarget::try_from(req.sort_target).is_err() {
        return Err(StoreError::InvalidArgument(format!(
            "invalid sort target {}",
            req.sort_target
        )));
    }
    Ok(())
}

pub fn delete_range(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

pub fn txn(req: &TxnRequest) -> Result<()> {
    for (ops, n) in [
        (req.compare.len(), "compare"),
        (req.success.len(), "success"),
        (req.failure.len(), "failure"),
    ] {
        if ops > MAX_TXN_OPS {
            tracing::debug!(branch = n, ops, "txn has too many operations");
            return Err(StoreError::TooManyOps { ops, max: MAX_TXN_OPS });
        }
    }
    for cmp in &req.compare {
        if cmp.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
    }
    for branch in [&req.success, &req.failure] {
        ops(branch)?;
        let mut writes = Vec::new();
        collect_writes(branch, &mut writes)?;
        check_overlaps(&writes)?;
    }
    Ok(())
}

fn ops(ops: &[RequestOp]) -> Result<()> {
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => range(r)?,
            Some(request_op::Request::RequestPut(p)) => put(p)?,
            Some(request_op::Request::RequestDeleteRange(d)) => delete_range(d)?,
            Some(request_op::Request::RequestTxn(t)) => txn(t)?,
            None => {
                return Err(StoreError::InvalidArgument("txn operation has no request".into()));
            }
        }
    }
    Ok(())
}

/// The keys and ranges a branch writes, nested transactions included (only the
/// branches of a nested transaction each count once: they never both run).
fn collect_writes(ops: &[RequestOp], out: &mut Vec<(KeyRange, bool)>) -> Result<()> {
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => out.push((KeyRange::single(&p.key), true)),
            Some(request_op::Request::RequestDeleteRange(d)) => out.push((KeyRange::new(&d.key, &d.range_end), false)),
            Some(request_op::Request::RequestTxn(t)) => {
                let mut success = Vec::new();
                collect_writes(&t.success, &mut success)?;
                let mut failure = Vec::new();
                collect_writes(&t.failure, &mut failure)?;
                out.extend(if success.len() >= failure.len() {
                    success
                } else {
                    failure
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// etcd rejects a transaction that puts one key twice, or puts a key that the same
/// transaction deletes.
fn check_overlaps(writes: &[(KeyRange, bool)]) -> Result<()> {
    let puts: Vec<&KeyRange> = writes.iter().filter(|(_, is_put)| *is_put).map(|(r, _)| r).collect();
    for (i, a) in puts.iter().enumerate() {
        if puts[i + 1..].iter().any(|b| b.start == a.start) {
            return Err(StoreError::DuplicateKey);
        }
    }
    for (range, _) in writes.iter().filter(|(_, is_put)| !*is_put) {
        if puts.iter().any(|p| range.contains(&p.start)) {
            return Err(StoreError::DuplicateKey);
        }
    }
    Ok(())
}

pub fn lease_grant(req: &LeaseGrantRequest) -> Result<()> {
    if req.ttl > MAX_LEASE_TTL_SECONDS {
        return Err(StoreError::LeaseTtlTooLarge { ttl: req.ttl });
    }
    if req.id < 0 {
        return Err(StoreError::InvalidArgument(format!("lease ID {} is negative", req.id)));
    }
    Ok(())
}

/// A log command as a client's request would be checked before it became one: what
/// a leader runs on the commands a follower forwards, which it cannot take on trust
/// (the follower may run another version, or not be a berth replica at all).
pub fn command(command: &Command, max_request_bytes: usize) -> Result<()> {
    match &command.command {
        Some(command::Command::Put(req)) => {
            put(req)?;
            size(req, max_request_bytes)
        }
        Some(command::Command::DeleteRange(req)) => {
            delete_range(req)?;
            size(req, max_request_bytes)
        }
        Some(command::Command::Txn(req)) => {
            txn(req)?;
            size(req, max_request_bytes)
        }
        Some(command::Command::LeaseGrant(req)) => lease_grant(req),
        Some(command::Command::Compaction(_)) | Some(command::Command::LeaseRevoke(_)) => Ok(()),
        Some(command::Command::Alarm(req)) => alarm_change(req),
        // Checked (the caller is root, the password hashed) by the member that took it.
        Some(command::Command::Auth(_)) => Ok(()),
        Some(command::Command::Authorized(authorized)) => match authorized.command.as_deref() {
            Some(Command {
                command: Some(command::Command::Authorized(_)),
            }) => Err(StoreError::InvalidArgument(
                "an authorized command inside another".into(),
            )),
            Some(inner) => self::command(inner, max_request_bytes),
            None => Err(StoreError::InvalidArgument(
                "an authorized command without a command".into(),
            )),
        },
        None => Err(StoreError::InvalidArgument("command has no request".into())),
    }
}

/// An alarm change as a log command: ACTIVATE or DEACTIVATE of a known alarm type
/// (a GET is answered locally and never logged).
pub fn alarm_change(req: &AlarmRequest) -> Result<()> {
    let action = AlarmAction::try_from(req.action)
        .map_err(|_| StoreError::InvalidArgument(format!("unknown alarm action {}", req.action)))?;
    let alarm = AlarmType::try_from(req.alarm)
        .map_err(|_| StoreError::InvalidArgument(format!("unknown alarm type {}", req.alarm)))?;
    match (action, alarm) {
        (AlarmAction::Get, _) => Err(StoreError::InvalidArgument("an alarm GET is not a log command".into())),
        (AlarmAction::Activate, AlarmType::None) => Err(StoreError::InvalidArgument(
            "alarm type NONE cannot be activated".into(),
        )),
        _ => Ok(()),
    }
}

pub fn txn_has_writes(req: &TxnRequest) -> bool {
    fn any_writes(ops: &[RequestOp]) -> bool {
        ops.iter().any(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) | Some(request_op::Request::RequestDeleteRange(_)) => true,
            Some(request_op::Request::RequestTxn(t)) => txn_has_writes(t),
            _ => false,
        })
    }
    any_writes(&req.success) || any_writes(&req.failure)
}

/// A transaction with a put in either branch, at any depth: what etcd's quota counts
/// and refuses under the NOSPACE alarm (a delete frees space, so it is served).
pub fn txn_has_puts(req: &TxnRequest) -> bool {
    fn any_puts(ops: &[RequestOp]) -> bool {
        ops.iter().any(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) => true,
            Some(request_op::Request::RequestTxn(t)) => txn_has_puts(t),
            _ => false,
        })
    }
    any_puts(&req.success) || any_puts(&req.failure)
}

/// A read-only transaction whose every range asks for serializable reads.
pub fn txn_is_serializable(req: &TxnRequest) -> bool {
    fn all_serializable(ops: &[RequestOp]) -> bool {
        ops.iter().all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(t)) => txn_is_serializable(t),
            _ => true,
        })
    }
    all_serializable(&req.success) && all_serializable(&req.failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::etcdserverpb::request_op::Request;

    fn put_op(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_puts_are_rejected() {
        let req = TxnRequest {
            success: vec![put_op("a"), put_op("a")],
            ..Default::default()
        };
        assert!(matches!(txn(&req), Err(StoreError::DuplicateKey)));
        let ok = TxnRequest {
            success: vec![put_op("a")],
            failure: vec![put_op("a")],
            ..Default::default()
        };
        assert!(txn(&ok).is_ok());
    }

    #[test]
    fn put_inside_a_deleted_range_is_rejected() {
        let del = RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: "a".into(),
                range_end: "b".into(),
                ..Default::default()
            })),
        };
        let req = TxnRequest {
            success: vec![del, put_op("ab")],
            ..Default::default()
        };
        assert!(matches!(txn(&req), Err(StoreError::DuplicateKey)));
    }

    #[test]
    fn too_many_ops_are_rejected() {
        let req = TxnRequest {
            success: (0..129).map(|i| put_op(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        assert!(matches!(txn(&req), Err(StoreError::TooManyOps { ops: 129, max: 128 })));
    }

    fn put_command(key: &str, value_bytes: usize) -> Command {
        Command {
            command: Some(command::Command::Put(PutRequest {
                key: key.into(),
                value: vec![b'v'; value_bytes],
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_command_is_checked_as_the_client_request_it_came_from() {
        assert_eq!(command(&put_command("k", 10), 1024), Ok(()));
        assert_eq!(command(&put_command("", 10), 1024), Err(StoreError::EmptyKey));
        assert!(matches!(
            command(&put_command("k", 2000), 1024),
            Err(StoreError::RequestTooLarge { max: 1024, .. })
        ));
        let duplicate = Command {
            command: Some(command::Command::Txn(TxnRequest {
                success: vec![put_op("a"), put_op("a")],
                ..Default::default()
            })),
        };
        assert_eq!(command(&duplicate, 1024), Err(StoreError::DuplicateKey));
        let grant = Command {
            command: Some(command::Command::LeaseGrant(LeaseGrantRequest {
                ttl: MAX_LEASE_TTL_SECONDS + 1,
                id: 5,
            })),
        };
        assert!(matches!(
            command(&grant, 1024),
            Err(StoreError::LeaseTtlTooLarge { .. })
        ));
        assert!(matches!(
            command(&Command { command: None }, 1024),
            Err(StoreError::InvalidArgument(_))
        ));
    }

    #[test]
    fn empty_keys_are_rejected() {
        assert!(matches!(put(&PutRequest::default()), Err(StoreError::EmptyKey)));
        assert!(matches!(range(&RangeRequest::default()), Err(StoreError::EmptyKey)));
    }
}
