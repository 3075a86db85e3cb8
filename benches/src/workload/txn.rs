//! `txn`: compare-and-swap updates, the way kube-apiserver updates an object.
//!
//! One request is one completed update:
//!
//! ```text
//!  Get key ──► mod_revision R
//!     └─► Txn  if mod_revision(key) == R  then Put key  else Get key
//!            ├─ succeeded: done
//!            └─ failed (a conflict): R = the else-branch's mod_revision, Txn again
//! ```
//!
//! The latency covers the read and every attempt. Conflicts (failed compares) and
//! retried updates are counted; an update that conflicts more than `max_retries` times
//! counts as an error.

use std::sync::Arc;

use anyhow::bail;
use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp, TxnOpResponse};

use crate::budget::Budget;
use crate::connection::{connect_pool, resolve_endpoints};
use crate::driver::{Operation, drive};
use crate::keys::{KeySpace, Rng, value_bytes};
use crate::options::LoadOptions;
use crate::report::Report;
use crate::workload::preload;
use crate::workload::put::drive_options;

struct CasOperation {
    kv: KvClient,
    keys: KeySpace,
    value: Vec<u8>,
    rng: Rng,
    max_retries: u32,
    conflicts: u64,
    retried_updates: u64,
}

impl Operation for CasOperation {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let key = self.keys.pick(ticket, &mut self.rng);
        let read = self.kv.get(key.clone(), None).await?;
        let mut revision = read.kvs().first().map_or(0, |kv| kv.mod_revision());
        for attempt in 0..=self.max_retries {
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
                .and_then([TxnOp::put(key.clone(), self.value.clone(), None)])
                .or_else([TxnOp::get(key.clone(), None)]);
            let response = self.kv.txn(txn).await?;
            if response.succeeded() {
                if attempt > 0 {
                    self.retried_updates += 1;
                }
                return Ok(());
            }
            self.conflicts += 1;
            revision = match response.op_responses().into_iter().next() {
                Some(TxnOpResponse::Get(get)) => get.kvs().first().map_or(0, |kv| kv.mod_revision()),
                other => bail!("the else branch answered {other:?} instead of a range"),
            };
        }
        bail!("gave up after {} conflicts", self.max_retries + 1)
    }
}

pub async fn run(options: &LoadOptions, max_retries: u32) -> anyhow::Result<Report> {
    options.validate()?;
    let endpoints = resolve_endpoints(&options.endpoints, options.target_leader).await?;
    let pool = connect_pool(&endpoints, options.conns).await?;
    let keys = KeySpace::new("t", options.key_size, options.key_space_size, options.sequential_keys);
    let value = value_bytes(options.val_size);
    preload(&pool, &keys, &value, options.clients, options.request_timeout).await?;
    let operations = (0..options.clients)
        .map(|client| CasOperation {
            kv: pool[client % pool.len()].kv_client(),
            keys: keys.clone(),
            value: value.clone(),
            rng: Rng::new(client as u64 + 1),
            max_retries,
            conflicts: 0,
            retried_updates: 0,
        })
        .collect();
    let budget = Arc::new(Budget::new(options.total, options.duration));
    let (operations, outcome) = drive("txn", operations, budget, drive_options(options)).await;
    let conflicts: u64 = operations.iter().map(|operation| operation.conflicts).sum();
    let retried_updates: u64 = operations.iter().map(|operation| operation.retried_updates).sum();
    Ok(Report::new("txn", &endpoints, options.clients, options.conns, outcome)
        .with_detail("conflicts", conflicts)
        .with_detail("retried_updates", retried_updates)
        .with_detail("key_size", options.key_size)
        .with_detail("val_size", options.val_size)
        .with_detail("key_space_size", options.key_space_size))
}
