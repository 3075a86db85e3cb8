use berth_proto::authpb::{Permission, UserAddOptions, permission};
use berth_proto::berthpb::AuthToken;
use berth_proto::berthpb::auth_command::Op;
use berth_proto::etcdserverpb::{
    AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGrantPermissionRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserDeleteRequest, AuthUserGrantRoleRequest,
    AuthUserRevokeRoleRequest, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, request_op,
};

use super::*;
use crate::backend::{MemoryBackend, SharedBackend, Tree, WriteBatch};
use crate::lease::LeaseTable;

fn apply(state: &mut AuthState, op: Op) -> Result<state::AuthEffect, AuthError> {
    state.apply(&op, &mut WriteBatch::new())
}

fn user(name: &str) -> Op {
    Op::UserAdd(AuthUserAddRequest {
        name: name.into(),
        hashed_password: password::hash("pw"),
        ..Default::default()
    })
}

fn role(name: &str) -> Op {
    Op::RoleAdd(AuthRoleAddRequest { name: name.into() })
}

fn grant_role(user: &str, role: &str) -> Op {
    Op::UserGrantRole(AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    })
}

fn grant(role: &str, kind: permission::Type, key: &[u8], range_end: &[u8]) -> Op {
    Op::RoleGrantPermission(AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission {
            perm_type: kind as i32,
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }),
    })
}

/// A user `u` whose role `r` holds `perms`.
fn with_perms(perms: &[(permission::Type, &[u8], &[u8])]) -> AuthState {
    let mut state = AuthState::default();
    apply(&mut state, user("u")).unwrap();
    apply(&mut state, role("r")).unwrap();
    apply(&mut state, grant_role("u", "r")).unwrap();
    for (kind, key, end) in perms {
        apply(&mut state, grant("r", *kind, key, end)).unwrap();
    }
    state
}

#[test]
fn a_single_key_permission_allows_that_key_only() {
    let state = with_perms(&[(permission::Type::Read, b"a", b"")]);
    assert_eq!(state.check("u", b"a", b"", Access::Read), Ok(()));
    assert_eq!(
        state.check("u", b"a", b"", Access::Write),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        state.check("u", b"ab", b"", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        state.check("u", b"a", b"b", Access::Read),
        Err(AuthError::PermissionDenied),
        "a range past it"
    );
}

#[test]
fn a_prefix_covers_the_ranges_inside_it_and_nothing_outside() {
    // etcdctl role grant-permission r readwrite /app/ --prefix
    let state = with_perms(&[(permission::Type::Readwrite, b"/app/", b"/app0")]);
    assert_eq!(state.check("u", b"/app/x", b"", Access::Write), Ok(()));
    assert_eq!(state.check("u", b"/app/", b"/app0", Access::Read), Ok(()));
    assert_eq!(state.check("u", b"/app/a", b"/app/b", Access::Read), Ok(()));
    assert_eq!(
        state.check("u", b"/ap", b"/app0", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        state.check("u", b"/app/", b"/app1", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        state.check("u", b"/other", b"", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        state.check("u", b"/app/", &[0], Access::Read),
        Err(AuthError::PermissionDenied),
        "from key"
    );
}

#[test]
fn from_key_covers_everything_after_and_ranges_add_up() {
    let state = with_perms(&[
        (permission::Type::Read, b"m", &[0]),
        (permission::Type::Read, b"a", b"c"),
        (permission::Type::Write, b"c", b"m"),
    ]);
    assert_eq!(state.check("u", b"m", &[0], Access::Read), Ok(()));
    assert_eq!(state.check("u", b"zzz", b"", Access::Read), Ok(()));
    assert_eq!(state.check("u", b"a", b"c", Access::Read), Ok(()));
    // [a, c) read and [m, ∞) read leave [c, m) without read, though it has write.
    assert_eq!(
        state.check("u", b"b", b"n", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        state.check("u", b"b", b"n", Access::Write),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(state.check("u", b"c", b"m", Access::Write), Ok(()));
    assert_eq!(
        state.check("u", b"a", &[0], Access::Read),
        Err(AuthError::PermissionDenied)
    );
}

#[test]
fn root_may_do_anything_and_strangers_nothing() {
    let mut state = AuthState::default();
    apply(&mut state, user(ROOT)).unwrap();
    apply(&mut state, grant_role(ROOT, ROOT)).unwrap();
    assert_eq!(state.check(ROOT, b"", &[0], Access::Write), Ok(()));
    assert_eq!(checks::admin(&state, ROOT), Ok(()));
    assert_eq!(
        state.check("nobody", b"k", b"", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(checks::admin(&state, "nobody"), Err(AuthError::PermissionDenied));
}

#[test]
fn a_txn_needs_its_compares_and_both_branches() {
    let state = with_perms(&[(permission::Type::Readwrite, b"a", b"")]);
    let leases = LeaseTable::default();
    let put = |key: &[u8]| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    };
    let compare = |key: &[u8]| Compare {
        key: key.to_vec(),
        ..Default::default()
    };
    let ok = TxnRequest {
        compare: vec![compare(b"a")],
        success: vec![put(b"a")],
        failure: vec![put(b"a")],
    };
    assert_eq!(checks::txn(&state, &leases, "u", &ok), Ok(()));
    let mut bad_compare = ok.clone();
    bad_compare.compare = vec![compare(b"b")];
    assert_eq!(
        checks::txn(&state, &leases, "u", &bad_compare),
        Err(AuthError::PermissionDenied)
    );
    let mut bad_failure = ok.clone();
    bad_failure.failure.push(put(b"b"));
    assert_eq!(
        checks::txn(&state, &leases, "u", &bad_failure),
        Err(AuthError::PermissionDenied)
    );
    let mut nested = ok.clone();
    nested.success.push(RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: b"b".to_vec(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        })),
    });
    assert_eq!(
        checks::txn(&state, &leases, "u", &nested),
        Err(AuthError::PermissionDenied)
    );
}

#[test]
fn enable_needs_root_with_the_root_role_and_bumps_the_revision() {
    let mut state = AuthState::default();
    let enable = || Op::Enable(AuthEnableRequest {});
    assert_eq!(apply(&mut state, enable()), Err(AuthError::RootUserNotExist));
    apply(&mut state, user(ROOT)).unwrap();
    assert_eq!(apply(&mut state, enable()), Err(AuthError::RootRoleNotExist));
    apply(&mut state, grant_role(ROOT, ROOT)).unwrap();
    let before = state.revision;
    assert_eq!(apply(&mut state, enable()), Ok(state::AuthEffect::Enabled(true)));
    assert!(state.enabled);
    assert_eq!(state.revision, before + 1);
    assert_eq!(apply(&mut state, enable()), Ok(state::AuthEffect::None), "already on");
    assert_eq!(state.revision, before + 1);
    // While on, root cannot be taken away.
    let delete_root = Op::UserDelete(AuthUserDeleteRequest { name: ROOT.into() });
    assert_eq!(apply(&mut state, delete_root), Err(AuthError::InvalidAuthMgmt));
    let revoke = Op::UserRevokeRole(AuthUserRevokeRoleRequest {
        name: ROOT.into(),
        role: ROOT.into(),
    });
    assert_eq!(apply(&mut state, revoke), Err(AuthError::InvalidAuthMgmt));
}

#[test]
fn users_roles_and_permissions_refuse_as_etcd_does() {
    let mut state = with_perms(&[(permission::Type::Read, b"a", b"")]);
    assert_eq!(apply(&mut state, user("u")), Err(AuthError::UserAlreadyExists));
    assert_eq!(apply(&mut state, user("")), Err(AuthError::UserEmpty));
    assert_eq!(apply(&mut state, role("r")), Err(AuthError::RoleAlreadyExists));
    assert_eq!(apply(&mut state, grant_role("u", "nope")), Err(AuthError::RoleNotFound));
    assert_eq!(apply(&mut state, grant_role("nope", "r")), Err(AuthError::UserNotFound));
    let revision = state.revision;
    assert_eq!(apply(&mut state, grant_role("u", "r")), Ok(state::AuthEffect::None));
    assert_eq!(state.revision, revision, "granting a role again changes nothing");
    let revoke = |key: &[u8]| {
        Op::RoleRevokePermission(AuthRoleRevokePermissionRequest {
            role: "r".into(),
            key: key.to_vec(),
            range_end: Vec::new(),
        })
    };
    assert_eq!(apply(&mut state, revoke(b"b")), Err(AuthError::PermissionNotGranted));
    apply(&mut state, revoke(b"a")).unwrap();
    assert_eq!(
        state.check("u", b"a", b"", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    let revoke_role = Op::UserRevokeRole(AuthUserRevokeRoleRequest {
        name: "u".into(),
        role: "x".into(),
    });
    assert_eq!(apply(&mut state, revoke_role), Err(AuthError::RoleNotGranted));
    apply(&mut state, Op::RoleDelete(AuthRoleDeleteRequest { role: "r".into() })).unwrap();
    assert!(state.users["u"].roles.is_empty(), "a deleted role leaves its users");
}

#[test]
fn the_auth_state_survives_a_reload() {
    let backend: SharedBackend = std::sync::Arc::new(MemoryBackend::new());
    let mut state = AuthState::default();
    let mut batch = WriteBatch::new();
    state.apply(&user("u"), &mut batch).unwrap();
    let no_password = Op::UserAdd(AuthUserAddRequest {
        name: "cert".into(),
        options: Some(UserAddOptions { no_password: true }),
        ..Default::default()
    });
    state.apply(&no_password, &mut batch).unwrap();
    state.apply(&role("r"), &mut batch).unwrap();
    state
        .apply(&grant("r", permission::Type::Write, b"k", b"l"), &mut batch)
        .unwrap();
    backend.write(Tree::State, batch).unwrap();
    let loaded = AuthState::load(&backend).unwrap();
    assert_eq!(loaded, state);
    assert_eq!(loaded.revision, 4);
    assert_eq!(loaded.users["cert"].password, None);
}

#[test]
fn a_token_is_given_only_while_auth_is_on_and_lives_for_its_ttl() {
    let mut state = AuthState::default();
    apply(&mut state, user("u")).unwrap();
    let token = |name: &str| {
        Op::AssignToken(AuthToken {
            name: name.into(),
            token: "t.1".into(),
        })
    };
    assert_eq!(apply(&mut state, token("u")), Err(AuthError::AuthNotEnabled));
    state.enabled = true;
    assert_eq!(apply(&mut state, token("nope")), Err(AuthError::AuthFailed));
    let revision = state.revision;
    let effect = apply(&mut state, token("u")).unwrap();
    assert_eq!(state.revision, revision, "a token changes no state");

    let runtime = AuthRuntime::new(std::time::Duration::from_secs(300), true);
    runtime.applied(&effect);
    assert_eq!(runtime.user_of("t.1").as_deref(), Some("u"));
    assert_eq!(runtime.user_of("t.2"), None);
    runtime.applied(&state::AuthEffect::UserChanged("u".into()));
    assert_eq!(runtime.user_of("t.1"), None, "a changed user's tokens are void");
    let expired = AuthRuntime::new(std::time::Duration::ZERO, true);
    expired.applied(&effect);
    assert_eq!(expired.user_of("t.1"), None, "past its TTL");
}

#[test]
fn passwords_are_hashed_with_a_salt_and_checked() {
    let one = password::hash("secret");
    let two = password::hash("secret");
    assert_ne!(one, two, "salted");
    assert!(!one.contains("secret"));
    assert!(password::verify(&one, "secret"));
    assert!(!password::verify(&one, "Secret"));
    assert!(!password::verify("", "secret"));
}
