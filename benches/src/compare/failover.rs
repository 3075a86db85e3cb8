//! The failover gap: how long writes stop when the leader is killed.
//!
//! One client writes continuously, each put to the next endpoint in turn, with a short
//! request timeout. When writes succeed steadily, the leader is killed with SIGKILL; the
//! gap is the time from the kill to the first success of a write sent after the kill. The killed replica is
//! then restarted on its data directory and the cluster given time to settle.
//!
//! Alongside, the survivors' Status is polled to note when one first names a new
//! leader, which tells the election's share of the gap from the client's.
//!
//! ```text
//!  writer:  put→n1 ✓  put→n2 ✓  put→n3 ✓ ... │ put→n1 ✗  put→n2 … ✗  put→n3 ✓
//!  main:    wait for steady writes ──► kill -9 leader ──────────────────────┘ gap
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::compare::cluster::Cluster;
use crate::connection::{connect, find_leader, member_status};
use crate::keys::value_bytes;

/// A put that takes longer than this is abandoned and the next endpoint tried; it bounds
/// how long a write lost with the dead leader holds the client up.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(250);
/// Pause after a failed write, so a refused connection does not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Longest gap measured before the run counts as failed.
const GAP_LIMIT: Duration = Duration::from_secs(30);
const STEADY_WRITES: u64 = 20;
const STATUS_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One leader kill.
#[derive(Clone, Copy, Debug)]
pub struct FailoverSample {
    /// From the kill to the next successful write.
    pub gap: Duration,
    /// From the kill to the first Status of a survivor that names a new leader.
    pub new_leader_after: Option<Duration>,
}

/// Kills the leader once and measures the gap; restarts the killed replica afterwards.
pub async fn measure_gap(cluster: &mut Cluster) -> anyhow::Result<FailoverSample> {
    let endpoints = cluster.endpoints();
    let mut kvs = Vec::with_capacity(endpoints.len());
    for endpoint in &endpoints {
        kvs.push(connect(endpoint).await?.kv_client());
    }
    let base = Instant::now();
    let successes = Arc::new(AtomicU64::new(0));
    // Nanoseconds since `base`: when the leader was killed (MAX until then), and when
    // the first put that started after the kill succeeded (0 until then). A put that
    // started before the kill may still succeed after it (committed just in time), so
    // it does not end the gap.
    let killed_at_ns = Arc::new(AtomicU64::new(u64::MAX));
    let first_success_after_kill_ns = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (successes, killed_at_ns, first_success_after_kill_ns, stop) = (
            successes.clone(),
            killed_at_ns.clone(),
            first_success_after_kill_ns.clone(),
            stop.clone(),
        );
        async move {
            let value = value_bytes(256);
            let hard_deadline = Instant::now() + 2 * GAP_LIMIT;
            let mut index = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < hard_deadline {
                let endpoint_count = kvs.len();
                let started_ns = base.elapsed().as_nanos() as u64;
                let put = kvs[index].put("f0000000", value.clone(), None);
                match tokio::time::timeout(WRITE_TIMEOUT, put).await {
                    Ok(Ok(_)) => {
                        if started_ns > killed_at_ns.load(Ordering::Acquire) {
                            let ended_ns = base.elapsed().as_nanos() as u64;
                            let _ = first_success_after_kill_ns.compare_exchange(
                                0,
                                ended_ns,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            );
                        }
                        successes.fetch_add(1, Ordering::Release);
                    }
                    _ => tokio::time::sleep(RETRY_PAUSE).await,
                }
                index = (index + 1) % endpoint_count;
            }
        }
    });

    let result = async {
        let steady_deadline = Instant::now() + Duration::from_secs(10);
        while successes.load(Ordering::Acquire) < STEADY_WRITES {
            if Instant::now() >= steady_deadline {
                bail!("writes did not succeed steadily before the kill");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let leader = find_leader(&endpoints, Duration::from_secs(10)).await?;
        let old_leader_id = member_status(&endpoints[leader]).await?.member_id;
        let killed_at = Instant::now();
        let kill_ns = base.elapsed().as_nanos() as u64;
        killed_at_ns.store(kill_ns, Ordering::Release);
        cluster.kill(leader);
        let survivors: Vec<String> = endpoints
            .iter()
            .enumerate()
            .filter(|&(index, _)| index != leader)
            .map(|(_, endpoint)| endpoint.clone())
            .collect();
        let election = tokio::spawn(new_leader_reported(survivors, old_leader_id, killed_at));
        let gap = loop {
            let success_ns = first_success_after_kill_ns.load(Ordering::Acquire);
            if success_ns != 0 {
                break Duration::from_nanos(success_ns - kill_ns);
            }
            if killed_at.elapsed() > GAP_LIMIT {
                bail!("no write succeeded within {GAP_LIMIT:?} of killing the leader");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let new_leader_after = election.await.ok().flatten();
        anyhow::Ok((leader, FailoverSample { gap, new_leader_after }))
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    let (leader, sample) = result?;

    cluster.restart(leader).context("restarting the killed leader")?;
    cluster.wait_for_leader().await?;
    // Let the restarted replica catch up before anything else is measured.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(sample)
}

/// How long after `killed_at` a survivor's Status first named a leader other than
/// `old_leader_id`; `None` when none did within the gap limit.
async fn new_leader_reported(survivors: Vec<String>, old_leader_id: u64, killed_at: Instant) -> Option<Duration> {
    while killed_at.elapsed() < GAP_LIMIT {
        for endpoint in &survivors {
            if let Ok(status) = member_status(endpoint).await
                && status.leader_id != 0
                && status.leader_id != old_leader_id
            {
                return Some(killed_at.elapsed());
            }
        }
        tokio::time::sleep(STATUS_POLL_INTERVAL).await;
    }
    None
}
