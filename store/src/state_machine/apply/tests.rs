use std::sync::Arc;

use berth_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use berth_proto::etcdserverpb::{Compare, RequestOp, TxnRequest, request_op};

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
            TargetUnion::CreateRevision(3),
            [false, false, true, true],
        ),
        (
            CompareTarget::Mod,
            TargetUnion::ModRevision(4),
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
