//! The failover gap: how long writes stop when the leader is killed.
//!
//! One client writes continuously, each put to the next endpoint in turn, with a short
//! request timeout. When writes succeed steadily, the leader is killed with SIGKILL; the
//! gap is the time from the kill to the next successful write. The killed replica is
//! then restarted on its data directory and the cluster given time to settle.
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
use crate::connection::{connect, find_leader};
use crate::keys::value_bytes;

/// A put that takes longer than this is abandoned and the next endpoint tried; it bounds
/// how long a write lost with the dead leader holds the client up.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(250);
/// Pause after a failed write, so a refused connection does not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Longest gap measured before the run counts as failed.
const GAP_LIMIT: Duration = Duration::from_secs(30);
const STEADY_WRITES: u64 = 20;

/// Kills the leader once and returns the gap; restarts the killed replica afterwards.
pub async fn measure_gap(cluster: &mut Cluster) -> anyhow::Result<Duration> {
    let endpoints = cluster.endpoints();
    let mut kvs = Vec::with_capacity(endpoints.len());
    for endpoint in &endpoints {
        kvs.push(connect(endpoint).await?.kv_client());
    }
    let base = Instant::now();
    let successes = Arc::new(AtomicU64::new(0));
    let last_success_ns = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (successes, last_success_ns, stop) = (successes.clone(), last_success_ns.clone(), stop.clone());
        async move {
            let value = value_bytes(256);
            let hard_deadline = Instant::now() + 2 * GAP_LIMIT;
            let mut index = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < hard_deadline {
                let endpoint_count = kvs.len();
                let put = kvs[index].put("f0000000", value.clone(), None);
                match tokio::time::timeout(WRITE_TIMEOUT, put).await {
                    Ok(Ok(_)) => {
                        last_success_ns.store(base.elapsed().as_nanos() as u64, Ordering::Release);
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
        let killed_at_ns = base.elapsed().as_nanos() as u64;
        cluster.kill(leader)?;
        let gap = loop {
            let last_ns = last_success_ns.load(Ordering::Acquire);
            if last_ns > killed_at_ns {
                break Duration::from_nanos(last_ns - killed_at_ns);
            }
            if base.elapsed() > Duration::from_nanos(killed_at_ns) + GAP_LIMIT {
                bail!("no write succeeded within {GAP_LIMIT:?} of killing the leader");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        anyhow::Ok((leader, gap))
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    let (leader, gap) = result?;

    cluster.restart(leader).context("restarting the killed leader")?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    // Let the restarted replica catch up before anything else is measured.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(gap)
}
