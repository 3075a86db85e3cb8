//! The latency phase, as ClusterLoader2's density test measures pod startup: once the
//! load's pods all run, Deployments of one pod each are created at a steady rate
//! (its `Uniform5qps`, 500 of them), and the Kubernetes pod startup SLO (p99 ≤ 5 s)
//! is read on their pods alone. The load's own startup figures, taken while pods
//! are created far faster than they can be placed, measure the queue instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::watch::Seen;
use super::{NAMESPACE, ScaleOptions, create, deployment};
use crate::api::http::Connection;

/// The prefix of the latency Deployments' (and so their pods') names.
pub const PREFIX: &str = "latency-";

/// Creates `--latency-pods` one-pod Deployments at `--latency-rate` per second and
/// waits until the watch has seen all their pods Running and Ready. On a connection
/// of its own to `api` (one left idle through the load is closed by then).
pub async fn run(options: &ScaleOptions, api: &str, seen: &Mutex<Seen>) -> anyhow::Result<()> {
    let count = options.latency_pods;
    if count == 0 {
        return Ok(());
    }
    let c = &mut Connection::open(api).await?;
    eprintln!(
        "-- {count} latency Deployments of one pod, {} a second",
        options.latency_rate
    );
    let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / options.latency_rate.max(0.01)));
    for i in 0..count {
        tick.tick().await;
        create(c, &path, &deployment(&format!("{PREFIX}{i}"), 1)).await?;
    }
    let started = Instant::now();
    loop {
        let running = seen.lock().expect("seen lock").running_with_prefix(PREFIX);
        if running as u64 >= count {
            return Ok(());
        }
        if started.elapsed() > options.timeout {
            bail!("after {:?}: {running} of {count} latency pods running", options.timeout);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
