//! A replica whose disk fills: its data dir is a small tmpfs, filled by a file of the
//! test's. The replica raises NOSPACE, reports unhealthy, refuses writes with etcd's
//! error and serves reads; once the space is freed and the alarm disarmed, writes
//! succeed again, and no acknowledged write is lost. Needs root (to mount); skipped
//! with the reason otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::{Cluster, ClusterSpec, eventually};
use etcd_client::GetOptions;

use crate::common;
use crate::health::{alarm_line, alarm_list, endpoint_status, health, member_id, with_metrics_urls};

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
/// Room for the log's first segment (16 MiB, allocated up front), the database and
/// the reserve the state machine leaves (4 MiB).
const TMPFS_SIZE: &str = "size=40m";

/// A tmpfs mounted on a dir for the life of the value.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir: dir.to_path_buf() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes a file in `dir` until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 256 * 1024];
    loop {
        if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_data()) {
            assert!(
                matches!(e.raw_os_error(), Some(28)),
                "filling the tmpfs failed otherwise: {e}"
            );
            return path;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_raises_nospace_and_the_replica_resumes_when_space_returns() {
    if !rustix::process::geteuid().is_root() {
        berth_testkit::skip("root, to mount a tmpfs as a replica's data dir");
        return;
    }
    // Dropped in reverse: the cluster (its processes killed), the mount, the dir.
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(ClusterSpec::berth_store(3).dir(dir.path())).unwrap();
    let metrics = with_metrics_urls(&mut cluster);
    let full = 2;
    let _tmpfs = match Tmpfs::mount(&cluster.replicas[full].data_dir) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            berth_testkit::skip(&format!("a tmpfs this test may mount: {why}"));
            return;
        }
    };
    cluster.start_all().unwrap();
    cluster.wait_for_leader().await.unwrap();
    let endpoints = cluster.endpoints();
    let full_endpoint = endpoints[full].clone();
    let full_id = member_id(&full_endpoint).await;

    let mut client = common::connect(&endpoints[..full]).await;
    let mut acked = Vec::new();
    for i in 0..30 {
        let key = format!("acked/{i:04}");
        client.put(key.clone(), "before", None).await.unwrap();
        acked.push(key);
    }

    let filler = fill(&cluster.replicas[full].data_dir);
    // Writes go on until the full replica notices and NOSPACE is raised; then every
    // write is refused with etcd's error.
    let started = std::time::Instant::now();
    loop {
        let key = format!("acked/{:04}", acked.len());
        match client.put(key.clone(), "during", None).await {
            Ok(_) => acked.push(key),
            Err(e) if e.to_string().contains(NO_SPACE) => break,
            Err(e) => panic!("a put failed otherwise: {e}"),
        }
        assert!(
            started.elapsed() < berth_testkit::HANG_TIMEOUT,
            "writes were never refused after the disk filled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    eprintln!(
        "writes refused {:?} after the disk filled; {} writes acknowledged in all",
        started.elapsed(),
        acked.len()
    );
    let nospace = alarm_line(full_id, "NOSPACE");
    assert!(
        alarm_list(&full_endpoint).contains(&nospace),
        "the full member lists its alarm"
    );
    let status = endpoint_status(&full_endpoint);
    assert!(status.contains("alarm:NOSPACE"), "endpoint status: {status}");
    let (code, body) = health(metrics[full]);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("NOSPACE"), "{body}");
    let mut on_full = common::connect(std::slice::from_ref(&full_endpoint)).await;
    let refused = on_full.put("on-the-full-member", "v", None).await.unwrap_err();
    assert!(refused.to_string().contains(NO_SPACE), "{refused}");
    // It still serves what it holds.
    let read = on_full
        .get("acked/0000", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(read.kvs().len(), 1, "a serializable read on the full member");
    assert!(cluster.replicas[full].is_running(), "the full member exited");

    // Space returns: the member writes again, and once disarmed the cluster takes writes.
    std::fs::remove_file(&filler).unwrap();
    eventually("the full member to find space again", || {
        let status = endpoint_status(&full_endpoint);
        async move { (!status.contains("No space") && !status.contains("bytes free")).then_some(()) }
    })
    .await;
    common::stdout(&common::etcdctl(&endpoints, &["alarm", "disarm"]));
    eventually("writes to succeed after the disarm", || {
        let mut client = client.clone();
        async move { client.put("after", "v", None).await.ok() }
    })
    .await;
    let (code, body) = health(metrics[full]);
    assert_eq!(code, 200, "{body}");

    // Nothing acknowledged was lost, on any member, the full one included.
    for endpoint in &endpoints {
        let mut member = common::connect(std::slice::from_ref(endpoint)).await;
        let want = acked.len();
        eventually("every member to hold every acknowledged write", || {
            let mut member = member.clone();
            async move {
                let got = member
                    .get(
                        "acked/",
                        Some(GetOptions::new().with_prefix().with_serializable().with_count_only()),
                    )
                    .await
                    .ok()?;
                (got.count() as usize == want).then_some(())
            }
        })
        .await;
        member
            .put(format!("written-through/{endpoint}"), "v", None)
            .await
            .unwrap();
    }
    assert!(cluster.replicas[full].is_running(), "the full member exited");
}
