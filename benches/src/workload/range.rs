//! `range`: each request reads one key of a preloaded key space, linearizable or
//! serializable.

use std::sync::Arc;

use etcd_client::{Client, GetOptions, KvClient};

use crate::budget::Budget;
use crate::connection::{connect_pool, resolve_endpoints};
use crate::driver::{Operation, drive};
use crate::keys::{KeySpace, Rng, value_bytes};
use crate::options::{Consistency, LoadOptions};
use crate::report::Report;
use crate::workload::preload;
use crate::workload::put::drive_options;

struct RangeOperation {
    kv: KvClient,
    keys: KeySpace,
    consistency: Consistency,
    rng: Rng,
}

impl RangeOperation {
    fn new(connection: &Client, keys: &KeySpace, consistency: Consistency, client: usize) -> Self {
        Self {
            kv: connection.kv_client(),
            keys: keys.clone(),
            consistency,
            rng: Rng::new(client as u64 + 1),
        }
    }
}

impl Operation for RangeOperation {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let key = self.keys.pick(ticket, &mut self.rng);
        let options = match self.consistency {
            Consistency::L => None,
            Consistency::S => Some(GetOptions::new().with_serializable()),
        };
        let response = self.kv.get(key, options).await?;
        anyhow::ensure!(response.kvs().len() == 1, "a preloaded key was not found");
        Ok(())
    }
}

pub async fn run(options: &LoadOptions, consistency: Consistency) -> anyhow::Result<Report> {
    options.validate()?;
    let endpoints = resolve_endpoints(&options.endpoints, options.target_leader).await?;
    let pool = connect_pool(&endpoints, options.conns).await?;
    let keys = KeySpace::new("r", options.key_size, options.key_space_size, options.sequential_keys);
    let value = value_bytes(options.val_size);
    preload(&pool, &keys, &value, options.clients, options.request_timeout).await?;
    let operations = (0..options.clients)
        .map(|client| RangeOperation::new(&pool[client % pool.len()], &keys, consistency, client))
        .collect();
    let budget = Arc::new(Budget::new(options.total, options.duration));
    let (_, outcome) = drive("range", operations, budget, drive_options(options)).await;
    Ok(
        Report::new("range", &endpoints, options.clients, options.conns, outcome)
            .with_detail("consistency", consistency.name())
            .with_detail("key_size", options.key_size)
            .with_detail("val_size", options.val_size)
            .with_detail("key_space_size", options.key_space_size),
    )
}
