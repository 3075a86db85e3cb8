//! `lease-keepalive`: each client holds one lease and keeps it alive over its own
//! keep-alive stream; one request is one keep-alive round trip.

use std::sync::Arc;

use anyhow::{Context, bail};
use etcd_client::{LeaseClient, LeaseKeepAliveStream, LeaseKeeper};

use crate::budget::Budget;
use crate::connection::{connect_pool, resolve_endpoints};
use crate::driver::{Operation, drive};
use crate::options::LoadOptions;
use crate::report::Report;
use crate::workload::put::drive_options;

struct KeepAliveOperation {
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
}

impl Operation for KeepAliveOperation {
    async fn run(&mut self, _ticket: u64) -> anyhow::Result<()> {
        self.keeper.keep_alive().await?;
        match self.responses.message().await? {
            Some(response) if response.ttl() > 0 => Ok(()),
            Some(response) => bail!("lease {:x} expired (ttl {})", response.id(), response.ttl()),
            None => bail!("the keep-alive stream closed"),
        }
    }
}

pub async fn run(options: &LoadOptions, ttl_s: i64) -> anyhow::Result<Report> {
    options.validate()?;
    let endpoints = resolve_endpoints(&options.endpoints, options.target_leader).await?;
    let pool = connect_pool(&endpoints, options.conns).await?;
    let mut leases: Vec<(LeaseClient, i64)> = Vec::with_capacity(options.clients);
    let mut operations = Vec::with_capacity(options.clients);
    for client in 0..options.clients {
        let mut lease_client = pool[client % pool.len()].lease_client();
        let grant = tokio::time::timeout(options.request_timeout, lease_client.grant(ttl_s, None))
            .await
            .context("LeaseGrant timed out")??;
        let (keeper, responses) = lease_client.keep_alive(grant.id()).await?;
        leases.push((lease_client, grant.id()));
        operations.push(KeepAliveOperation { keeper, responses });
    }
    let budget = Arc::new(Budget::new(options.total, options.duration));
    let (operations, outcome) = drive("lease-keepalive", operations, budget, drive_options(options)).await;
    drop(operations);
    for (mut lease_client, id) in leases {
        // Best effort: the leases expire on their own after ttl_s anyway.
        let _ = tokio::time::timeout(options.request_timeout, lease_client.revoke(id)).await;
    }
    Ok(Report::new("lease-keepalive", &endpoints, options.clients, options.conns, outcome).with_detail("ttl_s", ttl_s))
}
