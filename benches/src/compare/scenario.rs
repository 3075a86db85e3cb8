//! The workloads the comparison runs, with their sizes.

use std::time::Duration;

use crate::options::{Consistency, LoadOptions};
use crate::report::Report;
use crate::workload::{lease_keepalive, put, range, txn, watch};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Put,
    Range(Consistency),
    Txn,
    Watch { watchers: usize },
    LeaseKeepalive,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    /// Stable name used in the JSON lines and the table (`put-100`).
    pub id: &'static str,
    pub title: &'static str,
    pub kind: Kind,
    pub options: LoadOptions,
}

pub const KEY_SIZE: usize = 8;
pub const VAL_SIZE: usize = 256;
const TXN_MAX_RETRIES: u32 = 100;
const LEASE_TTL_S: i64 = 60;
const WATCH_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The comparison's workloads. `total` is the request count of the 100-client put;
/// the others are sized from it so each takes a few seconds on etcd.
pub fn scenarios(total: u64, duration: Duration) -> Vec<Scenario> {
    let base = LoadOptions {
        key_size: KEY_SIZE,
        val_size: VAL_SIZE,
        duration,
        ..LoadOptions::default()
    };
    let many = |total: u64, key_space_size: u64| LoadOptions {
        clients: 100,
        conns: 10,
        total,
        key_space_size,
        ..base.clone()
    };
    vec![
        Scenario {
            id: "put-100",
            title: "put, 100 clients / 10 conns",
            kind: Kind::Put,
            options: many(total, 100_000),
        },
        Scenario {
            id: "put-1",
            title: "put, 1 client (to the leader)",
            kind: Kind::Put,
            options: LoadOptions {
                clients: 1,
                conns: 1,
                total: (total / 20).max(50),
                key_space_size: 100_000,
                target_leader: true,
                ..base.clone()
            },
        },
        Scenario {
            id: "range-l",
            title: "linearizable range, 100 clients",
            kind: Kind::Range(Consistency::L),
            options: many(2 * total, 1000),
        },
        Scenario {
            id: "range-s",
            title: "serializable range, 100 clients",
            kind: Kind::Range(Consistency::S),
            options: many(2 * total, 1000),
        },
        Scenario {
            id: "txn",
            title: "txn CAS updates, 100 clients",
            kind: Kind::Txn,
            options: many((total / 2).max(100), 1000),
        },
        Scenario {
            id: "watch",
            title: "watch, 100 watchers (10 writers at 500 puts/s)",
            kind: Kind::Watch { watchers: 100 },
            options: LoadOptions {
                clients: 10,
                conns: 10,
                total: (total / 40).max(50),
                key_space_size: 1000,
                rate: 500.0,
                ..base.clone()
            },
        },
        Scenario {
            id: "lease-keepalive",
            title: "lease keepalive, 100 leases",
            kind: Kind::LeaseKeepalive,
            options: many(total, 1),
        },
    ]
}

impl Scenario {
    pub async fn run(&self, endpoints: &[String]) -> anyhow::Result<Report> {
        let options = LoadOptions {
            endpoints: endpoints.to_vec(),
            ..self.options.clone()
        };
        match self.kind {
            Kind::Put => put::run(&options).await,
            Kind::Range(consistency) => range::run(&options, consistency).await,
            Kind::Txn => txn::run(&options, TXN_MAX_RETRIES).await,
            Kind::Watch { watchers } => {
                let settings = watch::WatchSettings {
                    watchers,
                    drain_timeout: WATCH_DRAIN_TIMEOUT,
                };
                watch::run(&options, settings).await
            }
            Kind::LeaseKeepalive => lease_keepalive::run(&options, LEASE_TTL_S).await,
        }
    }
}
