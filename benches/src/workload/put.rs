//! `put`: each request writes one key of the key space.

use std::sync::Arc;

use etcd_client::{Client, KvClient};

use crate::budget::Budget;
use crate::connection::{connect_pool, resolve_endpoints};
use crate::driver::{DriveOptions, Operation, drive};
use crate::keys::{KeySpace, Rng, value_bytes};
use crate::options::LoadOptions;
use crate::report::Report;

pub struct PutOperation {
    kv: KvClient,
    keys: KeySpace,
    value: Vec<u8>,
    rng: Rng,
}

impl PutOperation {
    pub fn new(connection: &Client, keys: &KeySpace, value: &[u8], client: usize) -> Self {
        Self {
            kv: connection.kv_client(),
            keys: keys.clone(),
            value: value.to_vec(),
            rng: Rng::new(client as u64 + 1),
        }
    }
}

impl Operation for PutOperation {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let key = self.keys.pick(ticket, &mut self.rng);
        self.kv.put(key, self.value.clone(), None).await?;
        Ok(())
    }
}

pub async fn run(options: &LoadOptions) -> anyhow::Result<Report> {
    options.validate()?;
    let endpoints = resolve_endpoints(&options.endpoints, options.target_leader).await?;
    let pool = connect_pool(&endpoints, options.conns).await?;
    let keys = KeySpace::new("p", options.key_size, options.key_space_size, options.sequential_keys);
    let value = value_bytes(options.val_size);
    let operations = (0..options.clients)
        .map(|client| PutOperation::new(&pool[client % pool.len()], &keys, &value, client))
        .collect();
    let budget = Arc::new(Budget::new(options.total, options.duration));
    let (_, outcome) = drive("put", operations, budget, drive_options(options)).await;
    Ok(Report::new("put", &endpoints, options.clients, options.conns, outcome)
        .with_detail("key_size", options.key_size)
        .with_detail("val_size", options.val_size)
        .with_detail("key_space_size", options.key_space_size))
}

pub fn drive_options(options: &LoadOptions) -> DriveOptions {
    DriveOptions {
        request_timeout: options.request_timeout,
        rate: options.rate,
    }
}
