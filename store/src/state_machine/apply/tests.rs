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
fn compares_see_the_value_at_their_revision_and_deleted_keys_as_zero() {
    let mut s = fixture();
    let holds = |s: &AppliedState, key, target, value, at| {
        s.compare_holds(&cmp(key, "", target, CompareResult::Equal, value), at)
            .unwrap()
    };
    // At revision 1 "a" was its first value: what the index does not keep is read.
    assert!(holds(&s, "a", CompareTarget::Mod, TargetUnion::ModRevision(1), 1));
    assert!(holds(&s, "a", CompareTarget::Version, TargetUnion::Version(1), 1));
    assert!(holds(&s, "a", CompareTarget::Lease, TargetUnion::Lease(0), 1));
    assert!(holds(&s, "b", CompareTarget::Version, TargetUnion::Version(0), 1));
    run(
        &mut s,
        command::Command::DeleteRange(DeleteRangeRequest {
            key: b"b".to_vec(),
            ..Default::default()
        }),
    )
    .unwrap();
    let at = s.kv.current_revision();
    for (target, zero) in [
        (CompareTarget::Version, TargetUnion::Version(0)),
        (CompareTarget::Create, TargetUnion::CreateRevision(0)),
        (CompareTarget::Mod, TargetUnion::ModRevision(0)),
        (CompareTarget::Lease, TargetUnion::Lease(0)),
    ] {
        assert!(holds(&s, "b", target, zero, at), "{target:?}");
    }
    assert!(holds(&s, "b", CompareTarget::Mod, TargetUnion::ModRevision(3), 3));
    // Put again: a new life, created at the put.
    run(&mut s, put("b", "b2", 0)).unwrap();
    let at = s.kv.current_revision();
    assert!(holds(
        &s,
        "b",
        CompareTarget::Create,
        TargetUnion::CreateRevision(at),
        at
    ));
    assert!(holds(&s, "b", CompareTarget::Version, TargetUnion::Version(1), at));
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

fn alarm(
    action: berth_proto::etcdserverpb::alarm_request::AlarmAction,
    member_id: u64,
    alarm: i32,
) -> command::Command {
    command::Command::Alarm(berth_proto::etcdserverpb::AlarmRequest {
        action: action as i32,
        member_id,
        alarm,
    })
}

#[test]
fn under_nospace_apply_refuses_what_adds_data_and_serves_the_rest() {
    use berth_proto::etcdserverpb::AlarmType;
    use berth_proto::etcdserverpb::alarm_request::AlarmAction;
    let mut s = fixture();
    let raised = run(&mut s, alarm(AlarmAction::Activate, 9, AlarmType::Nospace as i32)).unwrap();
    let command_result::Result::Alarm(raised) = raised else {
        panic!("an alarm command answered {raised:?}")
    };
    assert_eq!(raised.alarms.len(), 1, "the new alarm is listed");
    let revision = s.kv.current_revision();

    assert_eq!(run(&mut s, put("c", "c1", 0)), Err(StoreError::NoSpace));
    assert_eq!(
        run(
            &mut s,
            command::Command::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 8 })
        ),
        Err(StoreError::NoSpace)
    );
    let txn_put = TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"d".to_vec(),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    assert_eq!(
        run(&mut s, command::Command::Txn(txn_put.clone())),
        Err(StoreError::NoSpace)
    );
    assert_eq!(s.kv.current_revision(), revision, "a refused command wrote nothing");

    // Deletes and compactions free space: served.
    let deleted = run(
        &mut s,
        command::Command::DeleteRange(DeleteRangeRequest {
            key: b"b".to_vec(),
            ..Default::default()
        }),
    )
    .unwrap();
    assert!(matches!(deleted, command_result::Result::DeleteRange(r) if r.deleted == 1));
    run(
        &mut s,
        command::Command::Compaction(CompactionRequest {
            revision: 2,
            physical: false,
        }),
    )
    .unwrap();

    // Disarmed, writes apply again.
    run(&mut s, alarm(AlarmAction::Deactivate, 9, AlarmType::Nospace as i32)).unwrap();
    run(&mut s, command::Command::Txn(txn_put)).unwrap();
}

#[test]
fn under_corrupt_apply_refuses_every_request_but_alarms() {
    use berth_proto::etcdserverpb::AlarmType;
    use berth_proto::etcdserverpb::alarm_request::AlarmAction;
    let mut s = fixture();
    run(&mut s, alarm(AlarmAction::Activate, 3, AlarmType::Corrupt as i32)).unwrap();
    let delete = command::Command::DeleteRange(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    });
    for cmd in [
        put("c", "c1", 0),
        delete.clone(),
        command::Command::LeaseRevoke(LeaseRevokeRequest { id: 7 }),
        command::Command::Compaction(CompactionRequest {
            revision: 2,
            physical: false,
        }),
    ] {
        assert_eq!(run(&mut s, cmd.clone()), Err(StoreError::Corrupt), "{cmd:?}");
    }
    // The alarm can still be cleared, and then requests apply again.
    let cleared = run(&mut s, alarm(AlarmAction::Deactivate, 3, AlarmType::Corrupt as i32)).unwrap();
    assert!(matches!(cleared, command_result::Result::Alarm(r) if r.alarms.len() == 1));
    run(&mut s, delete).unwrap();
}

#[test]
fn alarms_are_kept_with_the_data() {
    use berth_proto::etcdserverpb::AlarmType;
    use berth_proto::etcdserverpb::alarm_request::AlarmAction;
    let mut s = fixture();
    run(&mut s, alarm(AlarmAction::Activate, 5, AlarmType::Nospace as i32)).unwrap();
    let reloaded = AppliedState::load(s.kv.backend()).unwrap();
    assert!(reloaded.alarms.is_raised(AlarmType::Nospace));
    assert!(!reloaded.alarms.is_raised(AlarmType::Corrupt));
}

fn auth_op(op: berth_proto::berthpb::auth_command::Op) -> command::Command {
    command::Command::Auth(AuthCommand { op: Some(op) })
}

fn as_user(user: &str, auth_revision: u64, cmd: command::Command) -> command::Command {
    command::Command::Authorized(Box::new(AuthorizedCommand {
        user: user.into(),
        auth_revision,
        command: Some(Box::new(Command { command: Some(cmd) })),
    }))
}

/// A write let through before its permission was revoked is refused by apply, the
/// same on every replica; one checked at the current auth revision is applied as is.
/// The auth state is stored with the data and read back.
#[test]
fn a_write_whose_permission_was_revoked_on_its_way_to_the_log_is_refused() {
    use berth_proto::authpb::{Permission, permission};
    use berth_proto::berthpb::auth_command::Op;
    use berth_proto::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest,
        AuthUserAddRequest, AuthUserGrantRoleRequest,
    };
    let mut s = state();
    for (user, role) in [("root", "root"), ("u", "w")] {
        run(
            &mut s,
            auth_op(Op::UserAdd(AuthUserAddRequest {
                name: user.into(),
                hashed_password: "h".into(),
                ..Default::default()
            })),
        )
        .unwrap();
        if role != "root" {
            run(&mut s, auth_op(Op::RoleAdd(AuthRoleAddRequest { name: role.into() }))).unwrap();
        }
        run(
            &mut s,
            auth_op(Op::UserGrantRole(AuthUserGrantRoleRequest {
                user: user.into(),
                role: role.into(),
            })),
        )
        .unwrap();
    }
    run(
        &mut s,
        auth_op(Op::RoleGrantPermission(AuthRoleGrantPermissionRequest {
            name: "w".into(),
            perm: Some(Permission {
                perm_type: permission::Type::Write as i32,
                key: b"k".to_vec(),
                range_end: Vec::new(),
            }),
        })),
    )
    .unwrap();
    run(&mut s, auth_op(Op::Enable(AuthEnableRequest {}))).unwrap();
    let checked_at = s.auth.revision;
    let before = s.kv.current_revision();
    run(&mut s, as_user("u", checked_at, put("k", "1", 0))).unwrap();
    assert_eq!(
        s.kv.current_revision(),
        before + 1,
        "applied: nothing changed since the check"
    );

    run(
        &mut s,
        auth_op(Op::RoleRevokePermission(AuthRoleRevokePermissionRequest {
            role: "w".into(),
            key: b"k".to_vec(),
            range_end: Vec::new(),
        })),
    )
    .unwrap();
    let refused = run(&mut s, as_user("u", checked_at, put("k", "2", 0)));
    assert_eq!(
        refused.unwrap_err(),
        StoreError::Auth(crate::auth::AuthError::PermissionDenied)
    );
    assert_eq!(s.kv.current_revision(), before + 1, "the refused write changed nothing");
    run(&mut s, as_user("root", checked_at, put("k", "3", 0))).unwrap();

    let reloaded = AppliedState::load(s.kv.backend()).unwrap();
    assert_eq!(reloaded.auth, s.auth);
    assert!(reloaded.auth.enabled);
}
