//! The v3 JSON gateway on the client port, as etcd's: requests and answers in JSON
//! (keys and values in base64, 64-bit integers as strings), gRPC's errors in the
//! gateway's shape, and watch answers streamed one JSON object per line.

use serde_json::json;

use super::common::{etcdctl, start, stdout};
use super::http_client::{Stream, b64, call, int, post, post_with, unb64};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_calls_read_and_write_what_grpc_clients_see() {
    let cluster = start(1, &[]).await;
    let e = &cluster.replicas[0].endpoint();

    let put = call(e, "/v3/kv/put", json!({"key": b64("greeting"), "value": b64("hello")})).await;
    let first = int(&put["header"]["revision"]);
    assert!(
        int(&put["header"]["cluster_id"]) != 0 && int(&put["header"]["member_id"]) != 0,
        "{put}"
    );
    let got = stdout(&etcdctl(
        std::slice::from_ref(e),
        &["get", "greeting", "--print-value-only"],
    ));
    assert_eq!(got.trim(), "hello", "a gateway put is what etcdctl reads");

    assert_eq!(
        stdout(&etcdctl(std::slice::from_ref(e), &["put", "greeting", "bye"])).trim(),
        "OK"
    );
    let range = call(e, "/v3/kv/range", json!({"key": b64("greeting")})).await;
    assert_eq!(int(&range["count"]), 1, "{range}");
    let kv = &range["kvs"][0];
    assert_eq!(
        (unb64(&kv["key"]), unb64(&kv["value"])),
        ("greeting".into(), "bye".into())
    );
    assert_eq!((int(&kv["create_revision"]), int(&kv["version"])), (first, 2), "{kv}");

    // A prefix range by its lowerCamelCase names, newest first, one at a time.
    call(e, "/v3/kv/put", json!({"key": b64("greetinh"), "value": b64("x")})).await;
    let range = call(
        e,
        "/v3/kv/range",
        json!({"key": b64("greeting"), "rangeEnd": b64("greetinz"), "limit": 1, "sortOrder": "DESCEND"}),
    )
    .await;
    assert_eq!(
        (unb64(&range["kvs"][0]["key"]), range["more"].as_bool()),
        ("greetinh".into(), Some(true))
    );
    assert_eq!(int(&range["count"]), 2);

    let txn = call(
        e,
        "/v3/kv/txn",
        json!({
            "compare": [{"key": b64("greeting"), "result": "EQUAL", "target": "VALUE", "value": b64("bye")}],
            "success": [{"request_put": {"key": b64("greeting"), "value": b64("again")}},
                        {"request_range": {"key": b64("greeting")}}],
            "failure": [{"request_delete_range": {"key": b64("greeting")}}]
        }),
    )
    .await;
    assert_eq!(txn["succeeded"], true, "{txn}");
    assert_eq!(
        unb64(&txn["responses"][1]["response_range"]["kvs"][0]["value"]),
        "again"
    );

    let deleted = call(
        e,
        "/v3/kv/deleterange",
        json!({"key": b64("greetinh"), "prev_kv": true}),
    )
    .await;
    assert_eq!(int(&deleted["deleted"]), 1);
    assert_eq!(unb64(&deleted["prev_kvs"][0]["value"]), "x");
    let gone = call(e, "/v3/kv/range", json!({"key": b64("greetinh")})).await;
    assert!(
        gone.get("kvs").is_none() && gone.get("count").is_none(),
        "nothing left, so no fields: {gone}"
    );

    let now = int(&gone["header"]["revision"]);
    call(e, "/v3/kv/compaction", json!({"revision": now.to_string()})).await;
    let compacted = post(
        e,
        "/v3/kv/range",
        &json!({"key": b64("greeting"), "revision": first}).to_string(),
    )
    .await;
    assert_eq!(compacted.status, 400, "{compacted:?}");
    let error = compacted.json();
    assert_eq!(error["error"], "etcdserver: mvcc: required revision has been compacted");
    assert_eq!(error["message"], error["error"]);
    assert_eq!(error["code"], 11, "gRPC's OUT_OF_RANGE");

    let no_key = post(e, "/v3/kv/put", "{}").await;
    assert_eq!(
        (no_key.status, no_key.json()["error"].as_str()),
        (400, Some("etcdserver: key is not provided"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_a_400_that_names_the_problem() {
    let cluster = start(1, &[]).await;
    let e = &cluster.replicas[0].endpoint();
    let cases = [
        ("/v3/kv/put", r#"{"key":"#, "not valid JSON"),
        (
            "/v3/kv/put",
            r#"{"key":"!!","value":"eA=="}"#,
            "key: \"!!\" is not base64",
        ),
        (
            "/v3/kv/range",
            r#"{"key":"eA==","limit":"ten"}"#,
            "limit: expected a 64-bit integer",
        ),
        (
            "/v3/kv/range",
            r#"{"key":"eA==","sort_order":"UP"}"#,
            "sort_order: unknown value \"UP\"",
        ),
        (
            "/v3/kv/txn",
            r#"{"success":[{"request_put":{"key":7}}]}"#,
            "success[0].request_put.key",
        ),
        ("/v3/lease/grant", "[1]", "expected a JSON object"),
    ];
    for (path, body, problem) in cases {
        let answer = post(e, path, body).await;
        assert_eq!(answer.status, 400, "{path} {body}: {answer:?}");
        let error = answer.json();
        assert_eq!(error["code"], 3, "gRPC's INVALID_ARGUMENT: {error}");
        assert!(
            error["error"].as_str().unwrap().contains(problem),
            "{path} {body}: {error}"
        );
    }
    let range = call(e, "/v3/kv/range", json!({"key": b64("x")})).await;
    assert!(range.get("kvs").is_none(), "no bad request wrote anything: {range}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_granted_kept_alive_inspected_and_revoked() {
    let cluster = start(1, &[]).await;
    let e = &cluster.replicas[0].endpoint();
    let granted = call(e, "/v3/lease/grant", json!({"TTL": 60})).await;
    let id = int(&granted["ID"]);
    assert_eq!(int(&granted["TTL"]), 60);
    call(
        e,
        "/v3/kv/put",
        json!({"key": b64("leased"), "value": b64("1"), "lease": id.to_string()}),
    )
    .await;

    let kept = post(e, "/v3/lease/keepalive", &json!({"ID": id.to_string()}).to_string()).await;
    assert_eq!(kept.status, 200, "{kept:?}");
    let line: serde_json::Value = serde_json::from_str(kept.body.lines().next().unwrap()).unwrap();
    assert_eq!(
        (int(&line["result"]["ID"]), int(&line["result"]["TTL"])),
        (id, 60),
        "{line}"
    );

    let ttl = call(e, "/v3/lease/timetolive", json!({"ID": id.to_string(), "keys": true})).await;
    assert_eq!(int(&ttl["grantedTTL"]), 60);
    assert!((1..=60).contains(&int(&ttl["TTL"])), "{ttl}");
    assert_eq!(unb64(&ttl["keys"][0]), "leased");
    let leases = call(e, "/v3/lease/leases", json!({})).await;
    assert_eq!(int(&leases["leases"][0]["ID"]), id, "{leases}");

    call(e, "/v3/lease/revoke", json!({"ID": id.to_string()})).await;
    let gone = call(e, "/v3/kv/range", json!({"key": b64("leased")})).await;
    assert!(gone.get("kvs").is_none(), "the lease's key went with it: {gone}");
    let ttl = call(e, "/v3/kv/lease/timetolive", json!({"ID": id.to_string()})).await;
    assert_eq!(int(&ttl["TTL"]), -1, "{ttl}");
    let again = post(e, "/v3/lease/revoke", &json!({"ID": id.to_string()}).to_string()).await;
    assert_eq!(again.status, 404, "{again:?}");
    assert_eq!(again.json()["error"], "etcdserver: requested lease not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_status_alarms_and_hashes_of_a_cluster() {
    let cluster = start(3, &[]).await;
    let e = &cluster.replicas[1].endpoint();
    let members = call(e, "/v3/cluster/member/list", json!({})).await;
    let members = members["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 3, "{members:?}");
    for replica in &cluster.replicas {
        let member = members.iter().find(|m| m["name"] == replica.name.as_str());
        let member = member.unwrap_or_else(|| panic!("{} is not listed: {members:?}", replica.name));
        assert_eq!(member["peerURLs"][0], replica.peer_url(), "{member}");
        assert!(int(&member["ID"]) != 0);
    }

    let status = call(e, "/v3/maintenance/status", json!({})).await;
    assert!(status["version"].as_str().unwrap().starts_with("3.4."), "{status}");
    let leader = status["leader"].as_str().unwrap();
    assert!(
        members.iter().any(|m| m["ID"] == leader),
        "the leader is a member: {status}"
    );
    assert!(status["raftIndex"].as_str().is_some_and(|i| i != "0"), "{status}");

    let alarms = call(e, "/v3/maintenance/alarm", json!({"action": "GET"})).await;
    assert!(alarms.get("alarms").is_none(), "no alarm is raised: {alarms}");

    call(e, "/v3/kv/put", json!({"key": b64("h"), "value": b64("1")})).await;
    let hash = call(e, "/v3/maintenance/hashkv", json!({})).await;
    assert!(hash["hash"].is_u64(), "a 32-bit hash is a JSON number: {hash}");
    let again = call(
        e,
        "/v3/maintenance/hashkv",
        json!({"revision": hash["header"]["revision"]}),
    )
    .await;
    assert_eq!(again["hash"], hash["hash"], "the same revision hashes the same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_the_puts_and_deletes_made_after_it() {
    let cluster = start(1, &[]).await;
    let e = &cluster.replicas[0].endpoint();
    let body = json!({"create_request": {"key": b64("w/"), "range_end": b64("w0"), "prev_kv": true}});
    let mut watch = Stream::open(e, "/v3/watch", &body.to_string()).await;
    let created = watch.next().await;
    assert_eq!(created["result"]["created"], true, "{created}");

    call(e, "/v3/kv/put", json!({"key": b64("w/a"), "value": b64("1")})).await;
    assert_eq!(
        stdout(&etcdctl(std::slice::from_ref(e), &["put", "w/a", "2"])).trim(),
        "OK"
    );
    assert_eq!(stdout(&etcdctl(std::slice::from_ref(e), &["del", "w/a"])).trim(), "1");

    let put = watch.next().await;
    let event = &put["result"]["events"][0];
    assert!(event.get("type").is_none(), "a PUT is the default, left out: {put}");
    assert_eq!(
        (unb64(&event["kv"]["key"]), unb64(&event["kv"]["value"])),
        ("w/a".into(), "1".into())
    );
    let second = watch.next().await;
    assert_eq!(
        unb64(&second["result"]["events"][0]["prev_kv"]["value"]),
        "1",
        "{second}"
    );
    let deleted = watch.next().await;
    let event = &deleted["result"]["events"][0];
    assert_eq!(event["type"], "DELETE", "{deleted}");
    assert_eq!(
        int(&event["kv"]["mod_revision"]),
        int(&deleted["result"]["header"]["revision"]),
        "{deleted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_body_carries_several_stream_requests() {
    let cluster = start(1, &[]).await;
    let e = &cluster.replicas[0].endpoint();
    let body = format!(
        "{}\n{}",
        json!({"create_request": {"key": b64("s"), "watch_id": "7"}}),
        json!({"create_request": {"key": b64("t"), "watch_id": "8"}})
    );
    let mut watch = Stream::open(e, "/v3/watch", &body).await;
    let mut created = [watch.next().await, watch.next().await].map(|c| {
        assert_eq!(c["result"]["created"], true, "{c}");
        c["result"]["watch_id"].as_str().unwrap().to_string()
    });
    created.sort();
    assert_eq!(created, ["7", "8"]);
    call(e, "/v3/kv/put", json!({"key": b64("t"), "value": b64("1")})).await;
    let event = watch.next().await;
    assert_eq!(event["result"]["watch_id"], "8", "{event}");
    assert_eq!(unb64(&event["result"]["events"][0]["kv"]["key"]), "t");

    let first = int(&call(e, "/v3/lease/grant", json!({"TTL": 30})).await["ID"]);
    let second = int(&call(e, "/v3/lease/grant", json!({"TTL": 40})).await["ID"]);
    let body = format!(
        "{}{}",
        json!({"ID": first.to_string()}),
        json!({"ID": second.to_string()})
    );
    let kept = post(e, "/v3/lease/keepalive", &body).await;
    let lines: Vec<serde_json::Value> = kept.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let renewed: Vec<(i128, i128)> = lines
        .iter()
        .map(|l| (int(&l["result"]["ID"]), int(&l["result"]["TTL"])))
        .collect();
    assert_eq!(renewed, [(first, 30), (second, 40)], "{kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_calls_go_through_the_gateway() {
    let cluster = start(1, &[]).await;
    let e = &cluster.replicas[0].endpoint();
    let status = call(e, "/v3/auth/status", json!({})).await;
    assert!(
        status["header"].is_object() && status.get("enabled").is_none(),
        "auth is off: {status}"
    );
    let add = post(e, "/v3/auth/role/add", &json!({"name": "r1"}).to_string()).await;
    assert_eq!(add.status, 200, "{add:?}");
    let again = post(e, "/v3/auth/role/add", &json!({"name": "r1"}).to_string()).await;
    assert_eq!(
        again.json()["error"],
        "etcdserver: role name already exists",
        "{again:?}"
    );
    let roles = call(e, "/v3/auth/role/list", json!({})).await;
    assert_eq!(roles["roles"], json!(["r1"]), "{roles}");
    let status = call(e, "/v3/auth/status", json!({})).await;
    assert_eq!(status["authRevision"], "1", "one change: {status}");

    // With auth on, a token from /v3/auth/authenticate goes in the Authorization header.
    call(e, "/v3/auth/user/add", json!({"name": "root", "password": "pw"})).await;
    call(e, "/v3/auth/user/grant", json!({"user": "root", "role": "root"})).await;
    call(e, "/v3/auth/enable", json!({})).await;
    let range = json!({"key": b64("k")}).to_string();
    let anonymous = post(e, "/v3/kv/range", &range).await;
    assert_eq!(
        anonymous.json()["error"],
        "etcdserver: user name is empty",
        "{anonymous:?}"
    );
    let token = call(e, "/v3/auth/authenticate", json!({"name": "root", "password": "pw"})).await;
    let token = token["token"].as_str().unwrap().to_string();
    let header = format!("Authorization: {token}\r\n");
    let read = post_with(e, "/v3/kv/range", &header, &range).await;
    assert_eq!(read.status, 200, "{read:?}");
    let forged = post_with(e, "/v3/kv/range", "Authorization: forged.1\r\n", &range).await;
    assert_eq!(forged.json()["error"], "etcdserver: invalid auth token", "{forged:?}");
    let keep_alive = post(e, "/v3/lease/keepalive", &json!({"ID": "1"}).to_string()).await;
    assert_eq!(
        keep_alive.json()["error"],
        "etcdserver: user name is empty",
        "{keep_alive:?}"
    );
    let bad = post(e, "/v3/auth/role/grant", r#"{"name":"r1","perm":{"permType":"ALL"}}"#).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("perm.permType: unknown value \"ALL\""),
        "{bad:?}"
    );
}

/// A create and a cancel sent back to back: the watcher's `created` still comes
/// first and its `canceled` after it. (Postmortem: the watcher's task sent `created`
/// and the cancel aborted that task, sometimes before it had sent it, so the client
/// never learnt the watch existed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_canceled_at_once_is_still_created_first() {
    let cluster = start(1, &[]).await;
    let e = &cluster.replicas[0].endpoint();
    for round in 0..20 {
        let body = format!(
            "{}\n{}",
            json!({"create_request": {"key": b64("c"), "watch_id": "3"}}),
            json!({"cancel_request": {"watch_id": "3"}})
        );
        let mut watch = Stream::open(e, "/v3/watch", &body).await;
        let created = watch.next().await;
        assert_eq!(created["result"]["created"], true, "round {round}: {created}");
        let canceled = watch.next().await;
        assert_eq!(canceled["result"]["canceled"], true, "round {round}: {canceled}");
        assert_eq!(canceled["result"]["watch_id"], "3", "round {round}: {canceled}");
    }
}
