//! Snapshots: `etcdctl snapshot save` from a running cluster, `berth store snapshot
//! status` and `restore`, and a new cluster started from the restored data dirs.

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::{Cluster, ClusterSpec};
use etcd_client::{GetOptions, PutOptions};

use super::common::{etcdctl, start, stdout};

/// Key, value, create and mod revisions, version.
type KeyValueFields = (Vec<u8>, Vec<u8>, i64, i64, i64);

fn berth_snapshot(args: &[&str]) -> Output {
    Command::new(berth_testkit::berth_binary())
        .args(["store", "snapshot"])
        .args(args)
        .output()
        .expect("running berth")
}

/// `etcdctl endpoint hashkv --rev` of every endpoint, as (hash, compact revision).
fn hashkv(endpoints: &[String], revision: i64) -> Vec<(u64, i64)> {
    let out = stdout(&etcdctl(
        endpoints,
        &["endpoint", "hashkv", "--rev", &revision.to_string(), "-w", "json"],
    ));
    let parsed: serde_json::Value = serde_json::from_str(&out).expect(&out);
    parsed
        .as_array()
        .expect(&out)
        .iter()
        .map(|e| {
            let hash = &e["HashKV"];
            (
                hash["hash"].as_u64().expect(&out),
                hash["compact_revision"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn restore_into(cluster: &Cluster, index: usize, file: &Path, extra: &[&str]) -> Output {
    let args = cluster.args(index);
    let mut restore: Vec<&str> = vec!["restore", file.to_str().unwrap()];
    restore.extend(args.iter().skip(1).map(String::as_str));
    restore.extend(extra);
    berth_snapshot(&restore)
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "berth failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_snapshot_restores_into_a_new_cluster_with_the_same_history() {
    let source = start(3, &[]).await;
    let mut c = source.client().await;
    for i in 0..50 {
        c.put(format!("k/{i:02}"), format!("v{i}"), None).await.unwrap();
    }
    c.delete("k/00", None).await.unwrap();
    let compact_at = c.put("k/01", "again", None).await.unwrap().header().unwrap().revision();
    c.compact(compact_at - 10, None).await.unwrap();
    let lease = c.lease_grant(600, None).await.unwrap().id();
    c.put("leased", "x", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let last = c.get("k/", Some(GetOptions::new().with_prefix())).await.unwrap();
    let revision = last.header().unwrap().revision();
    let source_cluster_id = last.header().unwrap().cluster_id();
    // Users and roles travel in snapshots too (they make no key revision).
    c.user_add("keeper", "pw", None).await.unwrap();
    c.role_add("keepers").await.unwrap();
    c.user_grant_role("keeper", "keepers").await.unwrap();
    let source_hash = hashkv(&source.endpoints(), revision);
    assert!(source_hash.windows(2).all(|w| w[0] == w[1]), "{source_hash:?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let saved = stdout(&etcdctl(
        &[source.replicas[1].endpoint()],
        &["snapshot", "save", file.to_str().unwrap()],
    ));
    assert!(saved.contains("Snapshot saved at"), "{saved}");

    let status = succeeded(&berth_snapshot(&["status", file.to_str().unwrap(), "-w", "json"]));
    let status: serde_json::Value = serde_json::from_str(&status).expect(&status);
    assert_eq!(status["revision"].as_i64(), Some(revision), "{status}");
    assert_eq!(status["totalKey"].as_i64(), Some(50), "49 k/ keys and leased: {status}");
    assert_eq!(
        status["totalSize"].as_u64(),
        Some(std::fs::metadata(&file).unwrap().len())
    );
    let table = succeeded(&berth_snapshot(&["status", file.to_str().unwrap(), "-w", "table"]));
    assert!(table.contains("| REVISION |"), "{table}");

    // A new cluster on other ports, under another token, from the same file.
    let mut restored = Cluster::new(ClusterSpec::berth_store(3).token("restored-cluster")).unwrap();
    for index in 0..3 {
        let out = succeeded(&restore_into(&restored, index, &file, &[]));
        assert!(out.contains(&format!("revision {revision}")), "{out}");
    }
    let again = restore_into(&restored, 0, &file, &[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists"),
        "a restore never overwrites a data dir: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    restored.start_all().unwrap();
    restored.wait_for_leader().await.unwrap();

    assert_eq!(
        hashkv(&restored.endpoints(), revision),
        source_hash,
        "the restored members' history hashes as the source's at revision {revision}"
    );
    let mut r = restored.client().await;
    let keeper = r.user_get("keeper").await.unwrap();
    assert_eq!(keeper.roles(), ["keepers"], "the auth state came with the snapshot");
    let got = r.get("k/", Some(GetOptions::new().with_prefix())).await.unwrap();
    let fields = |kvs: &[etcd_client::KeyValue]| -> Vec<KeyValueFields> {
        kvs.iter()
            .map(|kv| {
                let (key, value) = (kv.key().to_vec(), kv.value().to_vec());
                (key, value, kv.create_revision(), kv.mod_revision(), kv.version())
            })
            .collect()
    };
    assert_eq!(
        fields(got.kvs()),
        fields(last.kvs()),
        "the same keys, values and revisions"
    );
    let header = got.header().unwrap();
    assert_eq!(header.revision(), revision);
    assert_ne!(header.cluster_id(), source_cluster_id, "a new cluster ID");
    let members = r.member_list().await.unwrap();
    let mut names: Vec<&str> = members.members().iter().map(|m| m.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["n1", "n2", "n3"]);
    let peer_urls: Vec<String> = restored.replicas.iter().map(|r| r.peer_url()).collect();
    assert!(
        members.members().iter().all(|m| peer_urls.contains(&m.peer_urls()[0])),
        "the new members only: {members:?}"
    );
    let ttl = r.lease_time_to_live(lease, None).await.unwrap();
    assert!(ttl.ttl() > 0, "the lease survives the restore: {ttl:?}");
    let leased = r.get("leased", None).await.unwrap();
    assert_eq!(leased.kvs()[0].lease(), lease);
    let next = r.put("after-restore", "y", None).await.unwrap();
    assert_eq!(next.header().unwrap().revision(), revision + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused_unless_the_hash_check_is_skipped() {
    let source = start(1, &[]).await;
    let mut c = source.client().await;
    c.put("a", "1", None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    stdout(&etcdctl(
        &source.endpoints(),
        &["snapshot", "save", file.to_str().unwrap()],
    ));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // the hash itself
    std::fs::write(&file, &bytes).unwrap();

    let target = Cluster::new(ClusterSpec::berth_store(1).token("from-a-damaged-file")).unwrap();
    let refused = restore_into(&target, 0, &file, &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("integrity check failed"), "{stderr}");
    assert!(!target.replicas[0].data_dir.exists(), "nothing written");
    let status = berth_snapshot(&["status", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&status.stderr).contains("integrity check failed"));

    succeeded(&restore_into(&target, 0, &file, &["--skip-hash-check"]));
    assert!(target.replicas[0].data_dir.join("member").exists());

    let missing = berth_snapshot(&["restore", "--name", "n1"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("needs the snapshot file first"));
}
