//! The workloads. Each builds one [`Operation`](crate::driver::Operation) per client,
//! drives them and turns the outcome into a [`Report`](crate::report::Report).

pub mod lease_keepalive;
pub mod put;
pub mod range;
pub mod txn;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use etcd_client::Client;

use crate::budget::Budget;
use crate::driver::{DriveOptions, drive};
use crate::keys::KeySpace;

/// How long a preload may take before it gives up.
const PRELOAD_DURATION: Duration = Duration::from_secs(120);

/// Writes every key of `keys` once (untimed), so reads and updates find them.
pub async fn preload(
    pool: &[Client],
    keys: &KeySpace,
    value: &[u8],
    clients: usize,
    request_timeout: Duration,
) -> anyhow::Result<()> {
    let in_order = KeySpace::new(keys.prefix(), keys.key(0).len(), keys.size(), true);
    let operations = (0..clients)
        .map(|client| put::PutOperation::new(&pool[client % pool.len()], &in_order, value, client))
        .collect();
    let budget = Arc::new(Budget::new(keys.size(), PRELOAD_DURATION));
    let options = DriveOptions {
        request_timeout,
        rate: 0.0,
    };
    let (_, outcome) = drive("preload", operations, budget, options).await;
    ensure!(
        outcome.errors == 0 && outcome.latencies.len() as u64 == keys.size(),
        "preloading {} keys: {} written, {} errors {:?}",
        keys.size(),
        outcome.latencies.len(),
        outcome.errors,
        outcome.error_counts
    );
    Ok(())
}
