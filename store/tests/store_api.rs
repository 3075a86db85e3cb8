//! The etcd v3 API of a three-replica `berth store` cluster, driven by etcdctl and
//! by the `etcd-client` crate as real users drive etcd.

mod common;

use std::time::Duration;

use common::{Cluster, eventually, stdout};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, EventType, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    WatchOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_works_against_the_cluster() {
    let cluster = Cluster::start(3, &[]).await;
    let all = cluster.endpoints();
    let one = vec![cluster.replicas[1].endpoint()];

    assert_eq!(
        stdout(&cluster.etcdctl(&one, &["put", "greeting", "hello"])).trim(),
        "OK"
    );
    let got = stdout(&cluster.etcdctl(&[cluster.replicas[2].endpoint()], &["get", "greeting"]));
    assert_eq!(got.lines().collect::<Vec<_>>(), ["greeting", "hello"]);

    let txn = "value(\"greeting\") = \"hello\"\n\nput greeting bye\n\nput greeting never\n\n";
    let mut child = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", all.join(",").replace("http://", "")))
        .arg("txn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(txn.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("SUCCESS"), "{out:?}");
    let got = stdout(&cluster.etcdctl(&all, &["get", "greeting", "--print-value-only"]));
    assert_eq!(got.trim(), "bye");

    assert_eq!(stdout(&cluster.etcdctl(&all, &["del", "greeting"])).trim(), "1");
    assert_eq!(stdout(&cluster.etcdctl(&all, &["get", "greeting"])).trim(), "");

    let members = stdout(&cluster.etcdctl(&all, &["member", "list"]));
    for r in &cluster.replicas {
        assert!(members.contains(&r.name), "member list lacks {}: {members}", r.name);
        assert!(members.contains(&format!("127.0.0.1:{}", r.peer_port)), "{members}");
    }
    let status = stdout(&cluster.etcdctl(&all, &["endpoint", "status", "-w", "json"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let leaders: Vec<u64> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert_eq!(leaders.len(), 3);
    assert!(
        leaders.iter().all(|l| *l == leaders[0] && *l != 0),
        "replicas disagree on the leader: {leaders:?}"
    );
    assert!(status[0]["Status"]["version"].as_str().unwrap().starts_with("3.4"));
    // Every replica hashes the same history (a follower may be a moment behind).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hashes = stdout(&cluster.etcdctl(&all, &["endpoint", "hashkv", "-w", "json"]));
        let hashes: serde_json::Value = serde_json::from_str(&hashes).unwrap();
        let hashes: Vec<(u64, i64)> = hashes
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let h = &h["HashKV"];
                (h["hash"].as_u64().unwrap(), h["header"]["revision"].as_i64().unwrap())
            })
            .collect();
        assert_eq!(hashes.len(), 3);
        if hashes.iter().all(|h| *h == hashes[0]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replicas' hashes differ: {hashes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let members = stdout(&cluster.etcdctl(&one, &["endpoint", "status", "--cluster", "-w", "json"]));
    let members: serde_json::Value = serde_json::from_str(&members).unwrap();
    assert_eq!(members.as_array().unwrap().len(), 3, "every member answers: {members}");
    let defrag = stdout(&cluster.etcdctl(&one, &["defrag"]));
    assert!(defrag.starts_with("Finished defragmenting etcd member"), "{defrag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_semantics_match_etcd() {
    let cluster = Cluster::start(3, &[]).await;
    let mut c = cluster.client_of(1).await;

    let first = c.put("k1", "v1", None).await.unwrap();
    let rev1 = first.header().unwrap().revision();
    let second = c
        .put("k1", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(second.header().unwrap().revision(), rev1 + 1, "one revision per write");
    assert_eq!(second.prev_key().unwrap().value(), b"v1");
    for k in ["k2", "k3", "k4"] {
        c.put(k, k, None).await.unwrap();
    }

    let kv = c.get("k1", None).await.unwrap();
    let kv = &kv.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (rev1, rev1 + 1, 2)
    );

    // Historical read.
    let old = c.get("k1", Some(GetOptions::new().with_revision(rev1))).await.unwrap();
    assert_eq!(old.kvs()[0].value(), b"v1");

    // Prefix with limit: count is the full count, more says there is more.
    let page = c
        .get("k", Some(GetOptions::new().with_prefix().with_limit(2)))
        .await
        .unwrap();
    assert_eq!(page.kvs().len(), 2);
    assert_eq!(page.count(), 4);
    assert!(page.more());

    let sorted = c
        .get(
            "k",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Key, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = sorted.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [b"k4", b"k3", b"k2", b"k1"]);

    let newer = c
        .get(
            "k",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_min_mod_revision(rev1 + 2)
                    .with_max_create_revision(rev1 + 3),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = newer.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [b"k2", b"k3"], "filters on mod and create revision");
    let from = c.get("k3", Some(GetOptions::new().with_from_key())).await.unwrap();
    assert_eq!(from.count(), 2);
    let count_only = c
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap();
    assert_eq!((count_only.count(), count_only.kvs().len()), (4, 0));
    let keys_only = c.get("k2", Some(GetOptions::new().with_keys_only())).await.unwrap();
    assert!(keys_only.kvs()[0].value().is_empty());
    let serializable = c.get("k2", Some(GetOptions::new().with_serializable())).await.unwrap();
    assert_eq!(serializable.kvs()[0].value(), b"k2");

    // Txn: compares on value, version, create and mod revision; both branches.
    let txn = Txn::new()
        .when([
            Compare::value("k1", CompareOp::Equal, "v2"),
            Compare::version("k1", CompareOp::Equal, 2),
            Compare::create_revision("k1", CompareOp::Equal, rev1),
            Compare::mod_revision("k1", CompareOp::Greater, rev1),
        ])
        .and_then([TxnOp::put("k1", "v3", None), TxnOp::get("k1", None)])
        .or_else([TxnOp::put("failed", "yes", None)]);
    let resp = c.txn(txn).await.unwrap();
    assert!(resp.succeeded());
    let read = match &resp.op_responses()[1] {
        etcd_client::TxnOpResponse::Get(get) => get.kvs()[0].value().to_vec(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(read, b"v3", "a read in a txn sees the txn's own write");
    let missing = Txn::new()
        .when([Compare::value("absent", CompareOp::Equal, "x")])
        .and_then([TxnOp::put("never", "x", None)])
        .or_else([TxnOp::put("else", "x", None)]);
    assert!(!c.txn(missing).await.unwrap().succeeded());
    assert_eq!(c.get("else", None).await.unwrap().count(), 1);
    assert_eq!(c.get("never", None).await.unwrap().count(), 0);

    // Delete with prev_kv over a range.
    let del = c
        .delete("k", Some(DeleteOptions::new().with_prefix().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(del.deleted(), 4);
    assert_eq!(del.prev_kvs().len(), 4);

    // Compaction: reads before it fail, reads after it work.
    let current = c.get("else", None).await.unwrap().header().unwrap().revision();
    c.compact(current - 1, None).await.unwrap();
    let err = c
        .get("k1", Some(GetOptions::new().with_revision(rev1)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("required revision has been compacted"),
        "{err}"
    );
    let err = c
        .get("k1", Some(GetOptions::new().with_revision(current + 100)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("required revision is a future revision"),
        "{err}"
    );
    let err = c.compact(current - 2, None).await.unwrap_err();
    assert!(
        err.to_string().contains("required revision has been compacted"),
        "{err}"
    );

    // Every replica reports the same hash of the key space. A linearizable read on
    // each first makes it apply everything committed, the compaction included (a
    // compaction changes no revision, so the revision alone does not show it).
    let mut hashes = Vec::new();
    for i in 0..3 {
        let mut ci = cluster.client_of(i).await;
        ci.get("else", None).await.unwrap();
        let r = ci.hash_kv(current).await.unwrap();
        assert_eq!(r.compact_version(), current - 1, "replica {i} applied the compaction");
        hashes.push(r.hash());
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "replicas diverge: {hashes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_etcds_errors_and_change_nothing() {
    let cluster = Cluster::start(3, &[]).await;
    let mut c = cluster.client().await;
    c.put("keep", "me", None).await.unwrap();
    let before = c.get("keep", None).await.unwrap().header().unwrap().revision();

    let err = c.put("", "v", None).await.unwrap_err().to_string();
    assert!(err.contains("key is not provided"), "{err}");

    let too_many = Txn::new().and_then(
        (0..129)
            .map(|i| TxnOp::put(format!("t{i}"), "v", None))
            .collect::<Vec<_>>(),
    );
    let err = c.txn(too_many).await.unwrap_err().to_string();
    assert!(err.contains("too many operations in txn request"), "{err}");

    let duplicate = Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]);
    let err = c.txn(duplicate).await.unwrap_err().to_string();
    assert!(err.contains("duplicate key given in txn request"), "{err}");

    // Over --max-request-bytes (1.5 MiB): etcd's own error.
    let big = vec![b'x'; 1600 * 1024];
    let err = c.put("big", big, None).await.unwrap_err().to_string();
    assert!(err.contains("etcdserver: request is too large"), "{err}");
    // Past the gRPC limit as well: refused by the transport, as etcd's is.
    let huge = vec![b'x'; 3 * 1024 * 1024];
    assert!(c.put("huge", huge, None).await.is_err());

    let err = c
        .put("leased", "v", Some(PutOptions::new().with_lease(0x1234)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("requested lease not found"), "{err}");

    let err = c.lease_grant(9_000_000_001, None).await.unwrap_err().to_string();
    assert!(err.contains("too large lease TTL"), "{err}");

    let err = c
        .put("x", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("key not found"), "{err}");

    // Nothing above wrote anything, and the store still serves.
    let after = c.get("keep", None).await.unwrap();
    assert_eq!(after.header().unwrap().revision(), before);
    assert_eq!(after.kvs()[0].value(), b"me");
    c.put("still", "serving", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_deliver_every_change_in_order() {
    let cluster = Cluster::start(3, &[]).await;
    let mut writer = cluster.client_of(0).await;
    let mut watcher_client = cluster.client_of(2).await;

    let start = writer.put("w/a", "1", None).await.unwrap().header().unwrap().revision();
    writer.put("w/b", "2", None).await.unwrap();
    writer.put("other", "x", None).await.unwrap();
    writer.delete("w/a", None).await.unwrap();

    // Replay from history with prev_kv, then live events.
    let mut stream = watcher_client
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(start)
                    .with_prev_key(),
            ),
        )
        .await
        .unwrap();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());
    writer.put("w/c", "3", None).await.unwrap();
    let txn = Txn::new().and_then([TxnOp::put("w/d", "4", None), TxnOp::put("w/e", "5", None)]);
    writer.txn(txn).await.unwrap();
    writer.put("w/b", "2b", None).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 7 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let revisions: Vec<i64> = resp.events().iter().map(|e| e.kv().unwrap().mod_revision()).collect();
        if resp.events().iter().any(|e| e.kv().unwrap().key() == b"w/d") {
            assert!(
                resp.events().iter().any(|e| e.kv().unwrap().key() == b"w/e"),
                "a transaction's events arrive together"
            );
        }
        for event in resp.events() {
            let kv = event.kv().unwrap();
            seen.push((
                event.event_type(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.mod_revision(),
                event.prev_kv().map(|p| p.value().to_vec()),
            ));
        }
        assert!(revisions.windows(2).all(|w| w[0] <= w[1]));
    }
    assert_eq!(seen[0].0, EventType::Put);
    assert_eq!(seen[0].1, "w/a");
    assert_eq!(seen[2].0, EventType::Delete);
    assert_eq!(
        seen[2].3.as_deref(),
        Some(b"1".as_slice()),
        "a delete carries the deleted value as prev_kv"
    );
    assert_eq!(seen[1].3, None, "a created key has no prev_kv");
    assert_eq!(
        (seen[6].1.as_str(), seen[6].3.as_deref()),
        ("w/b", Some(b"2".as_slice())),
        "an overwrite carries the value it replaced"
    );
    let revs: Vec<i64> = seen.iter().map(|s| s.2).collect();
    assert!(revs.windows(2).all(|w| w[0] <= w[1]), "in order: {revs:?}");
    assert!(!seen.iter().any(|s| s.1 == "other"), "only the prefix");

    // Progress: the reported revision covers everything delivered.
    stream.request_progress().await.unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.events().is_empty());
    assert!(progress.header().unwrap().revision() >= *revs.last().unwrap());

    // NOPUT filter and cancel.
    let mut deletes = watcher_client
        .watch(
            "f",
            Some(WatchOptions::new().with_filters([etcd_client::WatchFilterType::NoPut])),
        )
        .await
        .unwrap();
    assert!(deletes.message().await.unwrap().unwrap().created());
    writer.put("f", "1", None).await.unwrap();
    writer.delete("f", None).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), deletes.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events().len(), 1);
    assert_eq!(resp.events()[0].event_type(), EventType::Delete);
    let id = resp.watch_id();
    deletes.cancel(id).await.unwrap();
    let canceled = tokio::time::timeout(Duration::from_secs(10), deletes.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(canceled.canceled());

    // A watch on a compacted revision is cancelled with the compact revision.
    let current = writer
        .put("late", "x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    writer.compact(current, None).await.unwrap();
    // A linearizable read makes the watcher's replica apply the compaction first.
    watcher_client.get("late", None).await.unwrap();
    let mut old = watcher_client
        .watch("w/", Some(WatchOptions::new().with_prefix().with_start_revision(start)))
        .await
        .unwrap();
    let mut compacted = None;
    for _ in 0..3 {
        let resp = tokio::time::timeout(Duration::from_secs(10), old.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if resp.canceled() {
            compacted = Some(resp.compact_revision());
            break;
        }
    }
    assert_eq!(compacted, Some(current));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_keep_keys_alive_and_expire_them() {
    let cluster = Cluster::start(3, &["--election-timeout", "1000"]).await;
    let mut c = cluster.client_of(1).await;

    // Keepalive holds a 2-second lease well past its TTL (sent to a follower).
    let kept = c.lease_grant(2, None).await.unwrap().id();
    c.put("kept", "v", Some(PutOptions::new().with_lease(kept)))
        .await
        .unwrap();
    let (mut keeper, mut responses) = c.lease_keep_alive(kept).await.unwrap();
    // Revoked and expiring leases, with keys attached.
    let revoked = c.lease_grant(60, None).await.unwrap().id();
    c.put("revoked/a", "v", Some(PutOptions::new().with_lease(revoked)))
        .await
        .unwrap();
    c.put("revoked/b", "v", Some(PutOptions::new().with_lease(revoked)))
        .await
        .unwrap();
    let expiring = c.lease_grant(2, None).await.unwrap().id();
    c.put("expiring", "v", Some(PutOptions::new().with_lease(expiring)))
        .await
        .unwrap();

    let ttl = c
        .lease_time_to_live(revoked, Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    assert_eq!(ttl.keys().len(), 2);
    let chosen = c
        .lease_grant(30, Some(etcd_client::LeaseGrantOptions::new().with_id(0x7777)))
        .await
        .unwrap();
    assert_eq!(chosen.id(), 0x7777, "a client may choose the lease ID");
    let err = c
        .lease_grant(30, Some(etcd_client::LeaseGrantOptions::new().with_id(0x7777)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease already exists"), "{err}");
    let listed = c.leases().await.unwrap();
    assert_eq!(listed.leases().len(), 4);

    let from = c.get("revoked/a", None).await.unwrap().header().unwrap().revision();
    let mut events = c
        .watch(
            "revoked/",
            Some(WatchOptions::new().with_prefix().with_start_revision(from + 1)),
        )
        .await
        .unwrap();
    assert!(events.message().await.unwrap().unwrap().created());
    c.lease_revoke(revoked).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events().len(), 2, "both keys deleted in one revision");
    assert!(resp.events().iter().all(|e| e.event_type() == EventType::Delete));

    for _ in 0..8 {
        keeper.keep_alive().await.unwrap();
        let resp = responses.message().await.unwrap().unwrap();
        assert_eq!(resp.ttl(), 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // 4 s have passed: the kept lease lives, the other is gone with its key.
    assert_eq!(c.get("kept", None).await.unwrap().count(), 1);
    eventually(Duration::from_secs(10), "the expiring key to be deleted", || {
        let mut c = c.clone();
        async move { (c.get("expiring", None).await.ok()?.count() == 0).then_some(()) }
    })
    .await;
    let gone = c.lease_time_to_live(expiring, None).await.unwrap();
    assert_eq!(gone.ttl(), -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reads_are_linearizable() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let mut to_leader = cluster.client_of(leader).await;
    let mut to_follower = cluster.client_of(follower).await;
    for i in 0..50 {
        let value = format!("v{i}");
        to_leader.put("register", value.clone(), None).await.unwrap();
        let read = to_follower.get("register", None).await.unwrap();
        assert_eq!(
            read.kvs()[0].value(),
            value.as_bytes(),
            "a read after an acknowledged write sees it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_as_learners_promoted_and_removed() {
    let mut cluster = Cluster::start(3, &[]).await;
    let all = cluster.endpoints();
    let mut c = cluster.client().await;
    c.put("before-join", "x", None).await.unwrap();

    let new = cluster.push_replica();
    let peer_url = format!("http://127.0.0.1:{}", cluster.replicas[new].peer_port);
    let added = stdout(&cluster.etcdctl(
        &all,
        &[
            "member",
            "add",
            &cluster.replicas[new].name,
            "--learner",
            "--peer-urls",
            &peer_url,
        ],
    ));
    assert!(added.contains("added to cluster"), "{added}");
    let id = c
        .member_list()
        .await
        .unwrap()
        .members()
        .iter()
        .find(|m| m.peer_urls().contains(&peer_url))
        .unwrap()
        .id();
    assert!(
        c.member_list()
            .await
            .unwrap()
            .members()
            .iter()
            .any(|m| m.id() == id && m.is_learner())
    );

    cluster.start_replica_with(new, &["--initial-cluster-state", "existing"]);
    let mut learner = cluster.client_of(new).await;
    eventually(Duration::from_secs(20), "the learner to replicate", || {
        let mut learner = learner.clone();
        async move {
            let r = learner
                .get("before-join", Some(GetOptions::new().with_serializable()))
                .await
                .ok()?;
            (r.count() == 1).then_some(())
        }
    })
    .await;
    let promoted = eventually(Duration::from_secs(20), "promotion to succeed", || {
        let mut c = c.clone();
        async move { c.member_promote(id).await.ok() }
    })
    .await;
    assert!(promoted.members().iter().any(|m| m.id() == id && !m.is_learner()));
    let err = c.member_promote(id).await.unwrap_err().to_string();
    assert!(err.contains("can only promote a learner member"), "{err}");
    // The promoted member votes and serves linearizable reads.
    c.put("after-promote", "y", None).await.unwrap();
    assert_eq!(learner.get("after-promote", None).await.unwrap().count(), 1);

    let removed = c.member_remove(id).await.unwrap();
    assert!(!removed.members().iter().any(|m| m.id() == id));
    let err = c.member_remove(id).await.unwrap_err().to_string();
    assert!(err.contains("member not found"), "{err}");
    c.put("after-remove", "z", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_many_watches_and_progress_notifications() {
    let cluster = Cluster::start(1, &["--experimental-watch-progress-notify-interval", "1s"]).await;
    let mut c = cluster.client().await;
    let (mut sender, mut stream) = c.watch("a", None).await.unwrap().split();
    assert!(stream.message().await.unwrap().unwrap().created());
    sender
        .watch("b", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    let created_b = stream.message().await.unwrap().unwrap();
    assert!(created_b.created());
    let (id_a, id_b) = (0, created_b.watch_id());
    assert_ne!(id_a, id_b);

    let rev_a = c.put("a", "1", None).await.unwrap().header().unwrap().revision();
    let rev_b = c.put("b", "2", None).await.unwrap().header().unwrap().revision();
    let mut got = Vec::new();
    let mut progress_seen = false;
    while got.len() < 2 || !progress_seen {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if resp.events().is_empty() {
            // A periodic progress notification for the idle watcher b.
            if resp.watch_id() == id_b && got.len() == 2 {
                assert!(resp.header().unwrap().revision() >= rev_b);
                progress_seen = true;
            }
            continue;
        }
        for e in resp.events() {
            got.push((resp.watch_id(), e.kv().unwrap().mod_revision()));
        }
    }
    assert_eq!(got, vec![(id_a, rev_a), (id_b, rev_b)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_neither_blocks_writers_nor_misses_events() {
    let cluster = Cluster::start(1, &[]).await;
    let mut c = cluster.client().await;
    // The slow watcher is another client, on its own connection.
    let mut watcher = cluster.client().await;
    let mut stream = watcher
        .watch("slow/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());

    // Far more revisions than the hub keeps, and more bytes than the transport
    // buffers, while nobody reads the stream.
    const WRITES: usize = 3000;
    let value = "v".repeat(4096);
    let mut first = None;
    for i in 0..WRITES {
        let r = c.put(format!("slow/{i:05}"), value.clone(), None).await.unwrap();
        first.get_or_insert(r.header().unwrap().revision());
    }
    let first = first.unwrap();
    let mut next = first;
    while next < first + WRITES as i64 {
        let resp = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for e in resp.events() {
            assert_eq!(e.kv().unwrap().mod_revision(), next, "no gap, no duplicate, in order");
            next += 1;
        }
    }
    assert!(
        cluster.replicas[0].log_text().contains("watcher fell behind"),
        "the test must exercise the catch-up from history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backend_refuses_writes_with_nospace_and_keeps_serving_reads() {
    let cluster = Cluster::start(1, &["--quota-backend-bytes", "300000"]).await;
    let mut c = cluster.client().await;
    let value = "x".repeat(10_000);
    let mut refused = None;
    for i in 0..5000 {
        match c.put(format!("fill/{i}"), value.clone(), None).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("writes past the quota must be refused");
    assert!(refused.contains("database space exceeded"), "{refused}");
    let alarms = c
        .alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(alarms.alarms().len(), 1);
    assert_eq!(alarms.alarms()[0].alarm(), etcd_client::AlarmType::Nospace);
    assert!(c.get("fill/0", None).await.unwrap().count() == 1, "reads still work");
    c.delete("fill/0", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served_over_http() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cluster = Cluster::start(1, &["--listen-metrics-urls", &url]).await;
    let mut c = cluster.client().await;
    c.put("m", "1", None).await.unwrap();
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    let health = get("/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("{\"health\":\"true\"}"), "{health}");
    let metrics = get("/metrics");
    assert!(metrics.contains("etcd_server_has_leader 1"), "{metrics}");
    assert!(metrics.contains("etcd_debugging_mvcc_current_revision 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction_forgets_old_revisions() {
    let cluster = Cluster::start(
        1,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    )
    .await;
    let mut c = cluster.client().await;
    let old = c.put("ac", "1", None).await.unwrap().header().unwrap().revision();
    c.put("ac", "2", None).await.unwrap();
    eventually(Duration::from_secs(20), "auto-compaction past the first write", || {
        let mut c = c.clone();
        async move {
            let _ = c.put("tick", "x", None).await;
            let err = c.get("ac", Some(GetOptions::new().with_revision(old))).await.err()?;
            err.to_string().contains("compacted").then_some(())
        }
    })
    .await;
    assert_eq!(c.get("ac", None).await.unwrap().kvs()[0].value(), b"2");
}
