//! etcd's Auth API on a `berth store` cluster of real processes, driven by etcdctl as
//! an operator drives etcd's: users, roles and key-range permissions, `auth enable`
//! (refused without root), what a user with READ on a prefix may and may not do,
//! refused credentials, a refused write that never lands, tokens across members, and
//! the auth state after a restart and on every member. Certificate auth (the client
//! certificate's CN as the user) is in `tls.rs`.

#[path = "common/mod.rs"]
mod common;

use std::process::Output;

use berth_proto::etcdserverpb::auth_client::AuthClient;
use berth_proto::etcdserverpb::kv_client::KvClient;
use berth_proto::etcdserverpb::watch_client::WatchClient;
use berth_proto::etcdserverpb::{
    AuthenticateRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, watch_request,
};
use berth_testkit::eventually;
use common::{etcdctl, start, stdout};

/// etcdctl's whole output, for matching its error messages.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs etcdctl and expects it to fail saying `message`.
fn refused(output: Output, message: &str) {
    assert!(!output.status.success(), "etcdctl succeeded: {}", text(&output));
    assert!(
        text(&output).contains(message),
        "want {message:?}, got: {}",
        text(&output)
    );
}

fn as_user<'a>(user: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--user", user];
    all.extend_from_slice(args);
    all
}

/// A gRPC request carrying `token` as etcd's clients send it.
fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("token", token.parse().unwrap());
    request
}

const ROOT: &str = "root:rootpw";
const ALICE: &str = "alice:alicepw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_and_key_range_permissions_with_etcdctl() {
    let mut cluster = start(3, &[]).await;
    let all = cluster.endpoints();

    refused(
        etcdctl(&all, &["auth", "enable"]),
        "etcdserver: root user does not exist",
    );
    assert_eq!(
        stdout(&etcdctl(&all, &["user", "add", ROOT])).trim(),
        "User root created"
    );
    assert_eq!(
        stdout(&etcdctl(&all, &["user", "add", ALICE])).trim(),
        "User alice created"
    );
    refused(
        etcdctl(&all, &["user", "add", "alice:again"]),
        "etcdserver: user name already exists",
    );
    assert_eq!(
        stdout(&etcdctl(&all, &["user", "add", "bob:bobpw"])).trim(),
        "User bob created"
    );
    assert_eq!(
        stdout(&etcdctl(&all, &["user", "delete", "bob"])).trim(),
        "User bob deleted"
    );
    refused(
        etcdctl(&all, &["user", "get", "bob"]),
        "etcdserver: user name not found",
    );

    assert_eq!(
        stdout(&etcdctl(&all, &["role", "add", "reader"])).trim(),
        "Role reader created"
    );
    let granted = stdout(&etcdctl(
        &all,
        &["role", "grant-permission", "reader", "read", "/app/", "--prefix"],
    ));
    assert_eq!(granted.trim(), "Role reader updated");
    stdout(&etcdctl(
        &all,
        &["role", "grant-permission", "reader", "readwrite", "/scratch"],
    ));
    stdout(&etcdctl(&all, &["role", "revoke-permission", "reader", "/scratch"]));
    refused(
        etcdctl(&all, &["role", "revoke-permission", "reader", "/scratch"]),
        "etcdserver: permission is not granted to the role",
    );
    refused(
        etcdctl(&all, &["user", "grant-role", "alice", "writer"]),
        "etcdserver: role name not found",
    );
    let role_granted = stdout(&etcdctl(&all, &["user", "grant-role", "alice", "reader"]));
    assert_eq!(role_granted.trim(), "Role reader is granted to user alice");
    let alice = stdout(&etcdctl(&all, &["user", "get", "alice"]));
    assert_eq!(alice.lines().collect::<Vec<_>>(), ["User: alice", "Roles: reader"]);
    let users = stdout(&etcdctl(&all, &["user", "list"]));
    assert_eq!(users.lines().collect::<Vec<_>>(), ["alice", "root"]);
    let reader = stdout(&etcdctl(&all, &["role", "get", "reader"]));
    assert!(
        reader.contains("Role reader") && reader.contains("[/app/, /app0) (prefix /app/)"),
        "{reader}"
    );
    assert!(!reader.contains("/scratch"), "revoked: {reader}");
    stdout(&etcdctl(&all, &["put", "/app/config", "v1"]));

    // etcdctl gives root the root role itself when enable says it lacks it.
    let enabled = stdout(&etcdctl(&all, &["auth", "enable"]));
    assert_eq!(enabled.trim(), "Authentication Enabled");

    // No credentials, wrong ones.
    refused(etcdctl(&all, &["get", "/app/config"]), "etcdserver: user name is empty");
    refused(
        etcdctl(&all, &as_user("alice:wrong", &["get", "/app/config"])),
        "etcdserver: authentication failed, invalid user ID or password",
    );
    refused(
        etcdctl(&all, &as_user("mallory:pw", &["get", "/app/config"])),
        "etcdserver: authentication failed, invalid user ID or password",
    );
    refused(
        etcdctl(&all, &["put", "/app/anonymous", "x"]),
        "etcdserver: user name is empty",
    );

    // alice reads her prefix, writes nothing, reads nothing else.
    let got = stdout(&etcdctl(
        &all,
        &as_user(ALICE, &["get", "/app/config", "--print-value-only"]),
    ));
    assert_eq!(got.trim(), "v1");
    let listed = stdout(&etcdctl(
        &all,
        &as_user(ALICE, &["get", "/app/", "--prefix", "--keys-only"]),
    ));
    assert_eq!(listed.trim(), "/app/config");
    refused(
        etcdctl(&all, &as_user(ALICE, &["put", "/app/config", "v2"])),
        "etcdserver: permission denied",
    );
    refused(
        etcdctl(&all, &as_user(ALICE, &["del", "/app/config"])),
        "etcdserver: permission denied",
    );
    refused(
        etcdctl(&all, &as_user(ALICE, &["get", "/other"])),
        "etcdserver: permission denied",
    );
    refused(
        etcdctl(&all, &as_user(ALICE, &["get", "", "--from-key"])),
        "etcdserver: permission denied",
    );
    refused(
        etcdctl(&all, &as_user(ALICE, &["user", "list"])),
        "etcdserver: permission denied",
    );
    refused(
        etcdctl(&all, &as_user(ALICE, &["defrag"])),
        "etcdserver: permission denied",
    );

    // root does anything, and sees that the refused writes never landed.
    stdout(&etcdctl(&all, &as_user(ROOT, &["put", "/other", "o"])));
    let everything = stdout(&etcdctl(
        &all,
        &as_user(ROOT, &["get", "", "--from-key", "--keys-only"]),
    ));
    let keys: Vec<&str> = everything.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(keys, ["/app/config", "/other"], "{everything}");
    let value = stdout(&etcdctl(
        &all,
        &as_user(ROOT, &["get", "/app/config", "--print-value-only"]),
    ));
    assert_eq!(value.trim(), "v1", "alice's refused put must not have landed");

    // A token made on one member is good on another.
    let token = AuthClient::connect(cluster.replicas[0].endpoint())
        .await
        .unwrap()
        .authenticate(AuthenticateRequest {
            name: "alice".into(),
            password: "alicepw".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut other = KvClient::connect(cluster.replicas[2].endpoint()).await.unwrap();
    let read = eventually("alice's token on another member", async || {
        other
            .range(with_token(
                &token,
                RangeRequest {
                    key: b"/app/config".to_vec(),
                    ..Default::default()
                },
            ))
            .await
            .ok()
    })
    .await;
    assert_eq!(read.into_inner().kvs[0].value, b"v1");
    let put = other
        .put(with_token(
            &token,
            PutRequest {
                key: b"/app/config".to_vec(),
                value: b"v3".to_vec(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(put.code(), tonic::Code::PermissionDenied);
    let mut forged = tonic::Request::new(RangeRequest {
        key: b"/app/config".to_vec(),
        ..Default::default()
    });
    forged.metadata_mut().insert("token", "forged.1".parse().unwrap());
    let error = other.range(forged).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (tonic::Code::Unauthenticated, "etcdserver: invalid auth token")
    );

    // A watch needs READ on its range: refused outside alice's prefix, served inside.
    let mut watch = WatchClient::connect(cluster.replicas[2].endpoint()).await.unwrap();
    let create = |key: &[u8], range_end: &[u8]| WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            ..Default::default()
        })),
    };
    // The stream stays open after its requests: a watch stream ends with them.
    let requests = futures::StreamExt::chain(
        futures::stream::iter([create(b"/other", b""), create(b"/app/", b"/app0")]),
        futures::stream::pending(),
    );
    let mut responses = watch.watch(with_token(&token, requests)).await.unwrap().into_inner();
    let denied = responses.message().await.unwrap().unwrap();
    assert!(denied.canceled, "{denied:?}");
    assert_eq!(denied.cancel_reason, "etcdserver: permission denied");
    let created = responses.message().await.unwrap().unwrap();
    assert!(created.created && !created.canceled, "{created:?}");
    stdout(&etcdctl(&all, &as_user(ROOT, &["put", "/app/watched", "w"])));
    let event = responses.message().await.unwrap().unwrap();
    assert_eq!(event.events[0].kv.as_ref().unwrap().key, b"/app/watched");

    // Every member holds the same auth state, and keeps it over a restart.
    for endpoint in &all {
        let one = vec![endpoint.clone()];
        let users = stdout(&etcdctl(&one, &as_user(ROOT, &["user", "list"])));
        assert_eq!(users.lines().collect::<Vec<_>>(), ["alice", "root"], "on {endpoint}");
        let reader = stdout(&etcdctl(&one, &as_user(ROOT, &["role", "get", "reader"])));
        assert!(reader.contains("(prefix /app/)"), "on {endpoint}: {reader}");
    }
    for index in 0..3 {
        cluster.restart(index).unwrap();
    }
    cluster.wait_for_leader().await.unwrap();
    let restarted = vec![cluster.replicas[1].endpoint()];
    refused(
        etcdctl(&restarted, &["get", "/app/config"]),
        "etcdserver: user name is empty",
    );
    let got = eventually("alice reads after the restart", async || {
        let output = etcdctl(
            &restarted,
            &as_user(ALICE, &["get", "/app/config", "--print-value-only"]),
        );
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    })
    .await;
    assert_eq!(got.trim(), "v1");
    refused(
        etcdctl(&restarted, &as_user(ALICE, &["put", "/app/config", "v4"])),
        "etcdserver: permission denied",
    );
    refused(
        etcdctl(&restarted, &as_user(ROOT, &["user", "delete", "root"])),
        "etcdserver: invalid auth management",
    );

    let disabled = stdout(&etcdctl(&all, &as_user(ROOT, &["auth", "disable"])));
    assert_eq!(disabled.trim(), "Authentication Disabled");
    stdout(&etcdctl(&all, &["put", "/app/config", "open"]));
    // Credentials are no hindrance once auth is off (etcd's clients carry on when
    // Authenticate says it is not enabled).
    let got = stdout(&etcdctl(
        &all,
        &as_user(ALICE, &["get", "/app/config", "--print-value-only"]),
    ));
    assert_eq!(got.trim(), "open");
}
