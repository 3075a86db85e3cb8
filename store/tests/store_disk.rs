//! A damaged disk under real replicas: a flipped byte in the middle of a replica's log
//! or database, a torn tail, and the modes of what lands in the data dir. No
//! acknowledged write is lost, and a damaged replica either serves correctly or
//! refuses to start, saying which file is damaged where.
//!
//! (The power cut itself, which `kill -9` cannot show, is tested in process, under
//! the log: `raft::wal::power_cut_tests`.)

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use berth_testkit::{Cluster, HANG_TIMEOUT};

const HEADER_LEN: u64 = 16;
const SECTOR_BYTES: u64 = 512;

/// Values large enough that every log record spans several disk sectors.
fn value(i: usize) -> String {
    format!("{i:06}-{}", "v".repeat(2000))
}

/// Writes `count` keys under `prefix`, each acknowledged.
async fn write_acknowledged(cluster: &Cluster, prefix: &str, count: usize) -> BTreeSet<String> {
    let mut client = cluster.client().await;
    let mut acked = BTreeSet::new();
    for i in 0..count {
        let key = format!("{prefix}{i:06}");
        if let Err(e) = client.put(key.clone(), value(i), None).await {
            panic!("write {key} failed: {e}{}", cluster.log_tails(30));
        }
        acked.insert(key);
    }
    acked
}

/// The keys under `prefix` that replica `index` holds, read locally with etcdctl.
fn local_keys(cluster: &Cluster, index: usize, prefix: &str) -> Option<BTreeSet<String>> {
    let endpoint = cluster.replicas[index].endpoint();
    let output = common::etcdctl(
        &[endpoint],
        &["get", prefix, "--prefix", "--keys-only", "--consistency=s"],
    );
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(String::from)
            .collect()
    })
}

async fn wait_until_it_holds(cluster: &Cluster, index: usize, prefix: &str, keys: &BTreeSet<String>) {
    berth_testkit::eventually(&format!("replica {index} to hold every acknowledged key"), || {
        let held = local_keys(cluster, index, prefix);
        async move { (held.as_ref() == Some(keys)).then_some(()) }
    })
    .await;
}

/// A follower: the replica the test damages.
async fn a_follower(cluster: &mut Cluster) -> usize {
    let leader = cluster.wait_for_leader().await.unwrap();
    (leader + 1) % cluster.replicas.len()
}

fn member_dir(cluster: &Cluster, index: usize) -> PathBuf {
    cluster.replicas[index].data_dir.join("member")
}

/// The log's last segment file.
fn last_segment(cluster: &Cluster, index: usize) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(member_dir(cluster, index).join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    segments.sort();
    segments.pop().expect("a log segment")
}

/// Where each record of a segment starts, and its payload length (the layout is in
/// `raft::wal`: len u32, crc u32, index u64, payload).
fn records(path: &Path) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0u64;
    while at + HEADER_LEN <= bytes.len() as u64 {
        let len = u64::from(u32::from_le_bytes(
            bytes[at as usize..at as usize + 4].try_into().unwrap(),
        ));
        if len == 0 {
            break;
        }
        out.push((at, len));
        at += HEADER_LEN + len;
    }
    out
}

fn change_bytes(path: &Path, range: std::ops::Range<u64>, change: impl Fn(u8) -> u8) {
    let mut bytes = std::fs::read(path).unwrap();
    for at in range {
        bytes[at as usize] = change(bytes[at as usize]);
    }
    std::fs::write(path, bytes).unwrap();
}

/// Waits for replica `index` to exit on its own.
fn wait_for_exit(cluster: &mut Cluster, index: usize) -> Option<ExitStatus> {
    let deadline = Instant::now() + HANG_TIMEOUT;
    while Instant::now() < deadline {
        if let Some((_, status)) = cluster.reap_exited().into_iter().find(|(i, _)| *i == index) {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_mid_log_stops_the_replica_naming_the_file_and_offset() {
    let mut cluster = common::start(3, &[]).await;
    let victim = a_follower(&mut cluster).await;
    let acked = write_acknowledged(&cluster, "wal/", 60).await;
    wait_until_it_holds(&cluster, victim, "wal/", &acked).await;
    cluster.kill(victim);

    let segment = last_segment(&cluster, victim);
    let records = records(&segment);
    let (at, len) = records[records.len() / 2];
    change_bytes(
        &segment,
        at + HEADER_LEN + len / 2..at + HEADER_LEN + len / 2 + 1,
        |b| b ^ 0x40,
    );
    cluster.start_replica(victim).unwrap();

    let status = wait_for_exit(&mut cluster, victim).expect("the replica serves from a damaged log");
    assert!(!status.success());
    let log = cluster.replicas[victim].log_text();
    assert!(
        log.contains(&segment.display().to_string()) && log.contains(&format!("damaged at offset {at}")),
        "the refusal names no file or offset:\n{log}"
    );
    // The others hold every acknowledged write.
    for survivor in (0..3).filter(|i| *i != victim) {
        assert_eq!(local_keys(&cluster, survivor, "wal/").as_ref(), Some(&acked));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_the_replica_catches_up() {
    let mut cluster = common::start(3, &[]).await;
    let victim = a_follower(&mut cluster).await;
    let acked = write_acknowledged(&cluster, "torn/", 40).await;
    wait_until_it_holds(&cluster, victim, "torn/", &acked).await;
    cluster.kill(victim);

    // An append in flight when the power went: the next entry's record, of which only
    // the first sector reached the disk. (Never an acknowledged one: a replica answers
    // only once its record is synced, and openraft's leader stops outright when a
    // follower's log goes back behind what it acknowledged.)
    let segment = last_segment(&cluster, victim);
    let (at, len) = *records(&segment).last().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let last_index = u64::from_le_bytes(bytes[at as usize + 8..at as usize + 16].try_into().unwrap());
    let torn_at = at + HEADER_LEN + len;
    let mut torn = Vec::new();
    torn.extend_from_slice(&2000u32.to_le_bytes());
    torn.extend_from_slice(&0x5eed_f00du32.to_le_bytes());
    torn.extend_from_slice(&(last_index + 1).to_le_bytes());
    let written_to = (torn_at + HEADER_LEN + 1).next_multiple_of(SECTOR_BYTES);
    torn.resize((written_to - torn_at) as usize, 0xab);
    let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &torn, torn_at).unwrap();
    drop(file);
    cluster.start_replica(victim).unwrap();

    wait_until_it_holds(&cluster, victim, "torn/", &acked).await;
    let log = cluster.replicas[victim].log_text();
    assert!(log.contains("torn append"), "no word of the torn append:\n{log}");
    let more = write_acknowledged(&cluster, "torn-after/", 5).await;
    wait_until_it_holds(&cluster, victim, "torn-after/", &more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_mid_database_loses_no_acknowledged_write() {
    let mut cluster = common::start(3, &[]).await;
    let victim = a_follower(&mut cluster).await;
    let acked = write_acknowledged(&cluster, "db/", 200).await;
    wait_until_it_holds(&cluster, victim, "db/", &acked).await;
    cluster.stop(victim);

    let db = member_dir(&cluster, victim).join("db").join("db");
    let size = std::fs::metadata(&db).unwrap().len();
    change_bytes(&db, size / 2..size / 2 + 1, |b| b ^ 0x40);
    cluster.start_replica(victim).unwrap();

    // sled rolls back to what it can read; the log replays the rest. Either the
    // replica serves every acknowledged write, or it refuses to start, saying why.
    let deadline = Instant::now() + HANG_TIMEOUT;
    loop {
        if let Some((_, status)) = cluster.reap_exited().into_iter().find(|(i, _)| *i == victim) {
            let log = cluster.replicas[victim].log_text();
            assert!(!status.success());
            assert!(
                log.contains("lost writes it had synced") || log.contains("is corrupt"),
                "the replica stopped without saying why:\n{log}"
            );
            eprintln!("the damaged replica refused to start");
            break;
        }
        if local_keys(&cluster, victim, "db/").as_ref() == Some(&acked) {
            // And the values, not only the keys.
            let endpoint = cluster.replicas[victim].endpoint();
            let key = acked.iter().next().unwrap();
            let output = common::etcdctl(&[endpoint], &["get", key, "--print-value-only", "--consistency=s"]);
            assert_eq!(common::stdout(&output).trim(), value(0));
            eprintln!("the damaged replica serves every acknowledged write");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the damaged replica neither serves nor stops"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for survivor in (0..3).filter(|i| *i != victim) {
        assert_eq!(local_keys(&cluster, survivor, "db/").as_ref(), Some(&acked));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_private_files_0600_directories_0700() {
    // A small snapshot count, so that a snapshot file is written too.
    let mut cluster = common::start(1, &["--snapshot-count", "20"]).await;
    write_acknowledged(&cluster, "modes/", 50).await;
    cluster.stop(0);
    let data_dir = cluster.replicas[0].data_dir.clone();
    let mut seen = (0, 0);
    let mut pending = vec![data_dir.clone()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "directory {} is {mode:o}", path.display());
            seen.0 += 1;
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "file {} is {mode:o}", path.display());
            seen.1 += 1;
        }
    }
    assert!(
        member_dir(&cluster, 0).join("snap").join("current.snap").exists(),
        "no snapshot was written"
    );
    eprintln!("{} directories, {} files checked", seen.0, seen.1);
}
