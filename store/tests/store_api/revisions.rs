//! etcd's revision numbering, checked against what etcd 3.4 answers: an empty store
//! is at revision 1 and never compacted (-1), its first write gets revision 2, and
//! reads, watches, compaction and HashKV count the same way.

use std::time::Duration;

use berth_testkit::eventually;
use etcd_client::WatchOptions;

use super::common::{etcdctl, start, stdout};

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output)).expect("etcdctl's JSON")
}

/// Regression: an empty berth store reported revision 0 and gave its first write
/// revision 1, one lower than etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_are_numbered_as_etcd_numbers_them() {
    let cluster = start(3, &[]).await;
    let all = cluster.endpoints();
    let one = vec![cluster.replicas[0].endpoint()];

    // The new leader starts the numbering right after its election.
    eventually("the empty store at revision 1", || {
        let one = one.clone();
        async move {
            let got = json(&etcdctl(&one, &["get", "k", "-w", "json"]));
            (got["header"]["revision"] == 1).then_some(())
        }
    })
    .await;
    let hashes = json(&etcdctl(&one, &["endpoint", "hashkv", "-w", "json"]));
    assert_eq!(hashes[0]["HashKV"]["compact_revision"], -1, "never compacted: {hashes}");

    let put = json(&etcdctl(&one, &["put", "k", "v1", "-w", "json"]));
    assert_eq!(put["header"]["revision"], 2, "the first write: {put}");
    let got = json(&etcdctl(&one, &["get", "k", "-w", "json"]));
    let kv = &got["kvs"][0];
    assert_eq!(
        (&kv["create_revision"], &kv["mod_revision"], &kv["version"]),
        (&2.into(), &2.into(), &1.into()),
        "{got}"
    );
    // Revision 1 is readable, and empty; revision 3 is in the future.
    assert_eq!(stdout(&etcdctl(&one, &["get", "k", "--rev=1"])), "");
    let future = etcdctl(&one, &["get", "k", "--rev=3"]);
    assert!(
        String::from_utf8_lossy(&future.stderr).contains("etcdserver: mvcc: required revision is a future revision"),
        "{future:?}"
    );

    // A watch from revision 1 replays the first write; one from 0 starts now.
    let mut client = cluster.client_of(0).await;
    let mut from_one = client
        .watch("k", Some(WatchOptions::new().with_start_revision(1)))
        .await
        .unwrap();
    let mut from_now = client.watch("k", None).await.unwrap();
    for stream in [&mut from_one, &mut from_now] {
        assert!(stream.message().await.unwrap().unwrap().created());
    }
    let put = json(&etcdctl(&one, &["put", "k", "v2", "-w", "json"]));
    assert_eq!(put["header"]["revision"], 3);
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), from_one.message())
            .await
            .expect("the watch from revision 1 hangs")
            .unwrap()
            .unwrap();
        replayed.extend(message.events().iter().map(|e| e.kv().unwrap().mod_revision()));
    }
    assert_eq!(replayed, [2, 3]);
    let now = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = from_now.message().await.unwrap().unwrap();
            if let Some(event) = message.events().first() {
                return event.kv().unwrap().mod_revision();
            }
        }
    })
    .await
    .expect("the watch from now hangs");
    assert_eq!(now, 3);

    // As in etcd, even revision 0 may be compacted once; then 1, at which a read
    // still succeeds; compacting 1 again is refused.
    assert_eq!(stdout(&etcdctl(&one, &["compact", "0"])).trim(), "compacted revision 0");
    assert_eq!(stdout(&etcdctl(&one, &["compact", "1"])).trim(), "compacted revision 1");
    assert_eq!(stdout(&etcdctl(&one, &["get", "k", "--rev=1"])), "");
    let again = etcdctl(&one, &["compact", "1"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("etcdserver: mvcc: required revision has been compacted"),
        "{again:?}"
    );

    // Every replica numbered alike.
    eventually("every replica's HashKV at revision 3", || {
        let all = all.clone();
        async move {
            let hashes = json(&etcdctl(&all, &["endpoint", "hashkv", "-w", "json"]));
            let seen: Vec<(i64, i64, u64)> = hashes
                .as_array()?
                .iter()
                .map(|h| {
                    let h = &h["HashKV"];
                    (
                        h["header"]["revision"].as_i64().unwrap_or(0),
                        h["compact_revision"].as_i64().unwrap_or(0),
                        h["hash"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            (seen.len() == 3 && seen.iter().all(|s| *s == seen[0] && s.0 == 3 && s.1 == 1)).then_some(())
        }
    })
    .await;
}
