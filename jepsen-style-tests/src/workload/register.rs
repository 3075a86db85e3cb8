//! The register workload: reads (linearizable and serializable), writes of unique
//! values and compare-and-swaps on a few keys. Each client talks to one replica, so
//! a replica that serves stale data is seen doing so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::{ERROR_BACKOFF, OP_TIMEOUT, THINK_TIME, WorkloadConfig, classify_write_error, text};
use crate::history::{Consistency, Kind, Op};
use crate::recorder::Recorder;
use crate::rng::Rng;

pub const PREFIX: &str = "r/";

pub fn key(i: u64) -> String {
    format!("{PREFIX}{i}")
}

/// Values seen recently per key, so compare-and-swaps sometimes succeed.
type Seen = Arc<Mutex<HashMap<String, String>>>;

pub async fn run(config: WorkloadConfig, recorder: Recorder, clients: u64, keys: u64) {
    let seen: Seen = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let endpoint = config.endpoints[(c as usize) % config.endpoints.len()].clone();
        let recorder = recorder.clone();
        let seen = seen.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            client(c, clients, endpoint, config, recorder, keys, seen).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn client(
    first_process: u64,
    stride: u64,
    endpoint: String,
    config: WorkloadConfig,
    recorder: Recorder,
    keys: u64,
    seen: Seen,
) {
    let mut rng = Rng::new(config.seed).fork(0x5245_4700 + first_process);
    let mut process = first_process;
    let mut client = None;
    let mut counter = 0u64;
    while tokio::time::Instant::now() < config.deadline {
        let Some(c) = super::ensure_connected(&mut client, &endpoint, config.tls.as_ref()).await else {
            continue;
        };
        counter += 1;
        let k = key(rng.below(keys));
        let op = match rng.below(100) {
            0..40 => Op::Read {
                key: k,
                consistency: Consistency::Linearizable,
                value: None,
            },
            40..50 => Op::Read {
                key: k,
                consistency: Consistency::Serializable,
                value: None,
            },
            50..80 => Op::Write {
                key: k,
                value: format!("p{process}-{counter}"),
            },
            _ => match seen.lock().unwrap_or_else(|p| p.into_inner()).get(&k).cloned() {
                Some(from) => Op::Cas {
                    key: k,
                    from,
                    to: format!("p{process}-{counter}"),
                    succeeded: None,
                },
                None => Op::Read {
                    key: k,
                    consistency: Consistency::Linearizable,
                    value: None,
                },
            },
        };
        recorder.invoke(process, &op);
        let outcome = tokio::time::timeout(OP_TIMEOUT, execute(c, &op)).await;
        match outcome {
            Ok(Ok((done, revision))) => {
                remember(&seen, &done);
                recorder.complete(process, Kind::Ok, done, Some(revision), None);
                tokio::time::sleep(THINK_TIME).await;
            }
            Ok(Err(e)) => {
                let kind = if matches!(op, Op::Read { .. }) {
                    Kind::Fail
                } else {
                    classify_write_error(&e)
                };
                recorder.complete(process, kind, op, None, Some(e.to_string()));
                if kind == Kind::Info {
                    process += stride * 1000;
                }
                client = None;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
            Err(_) => {
                let kind = if matches!(op, Op::Read { .. }) {
                    Kind::Fail
                } else {
                    Kind::Info
                };
                recorder.complete(process, kind, op, None, Some("timed out".into()));
                if kind == Kind::Info {
                    process += stride * 1000;
                }
                client = None;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

fn remember(seen: &Seen, op: &Op) {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    match op {
        Op::Read {
            key, value: Some(v), ..
        }
        | Op::Write { key, value: v } => {
            seen.insert(key.clone(), v.clone());
        }
        Op::Cas {
            key,
            to,
            succeeded: Some(true),
            ..
        } => {
            seen.insert(key.clone(), to.clone());
        }
        _ => {}
    }
}

async fn execute(c: &mut etcd_client::Client, op: &Op) -> Result<(Op, i64), etcd_client::Error> {
    match op {
        Op::Read { key, consistency, .. } => {
            let options = match consistency {
                Consistency::Linearizable => None,
                Consistency::Serializable => Some(GetOptions::new().with_serializable()),
            };
            let resp = c.get(key.as_str(), options).await?;
            let value = resp.kvs().first().map(|kv| text(kv.value()));
            let revision = resp.header().map_or(0, |h| h.revision());
            Ok((
                Op::Read {
                    key: key.clone(),
                    consistency: *consistency,
                    value,
                },
                revision,
            ))
        }
        Op::Write { key, value } => {
            let resp = c.put(key.as_str(), value.as_str(), None).await?;
            Ok((op.clone(), resp.header().map_or(0, |h| h.revision())))
        }
        Op::Cas { key, from, to, .. } => {
            let txn = Txn::new()
                .when([Compare::value(key.as_str(), CompareOp::Equal, from.as_str())])
                .and_then([TxnOp::put(key.as_str(), to.as_str(), None)]);
            let resp = c.txn(txn).await?;
            let done = Op::Cas {
                key: key.clone(),
                from: from.clone(),
                to: to.clone(),
                succeeded: Some(resp.succeeded()),
            };
            Ok((done, resp.header().map_or(0, |h| h.revision())))
        }
        other => unreachable!("not a register operation: {other:?}"),
    }
}
