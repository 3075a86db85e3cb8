//! The list-append workload: transactions that read a few keys and append a unique
//! element to the list in each, guarded by compares on the revisions they read.

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::{ERROR_BACKOFF, OP_TIMEOUT, THINK_TIME, WorkloadConfig, classify_write_error, text};
use crate::history::{Kind, Op};
use crate::recorder::Recorder;
use crate::rng::Rng;

pub const PREFIX: &str = "a/";

pub fn key(i: u64) -> String {
    format!("{PREFIX}{i}")
}

pub fn parse_list(value: &str) -> Vec<u64> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn format_list(list: &[u64]) -> String {
    list.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

pub async fn run(config: WorkloadConfig, recorder: Recorder, clients: u64, keys: u64) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let config = config.clone();
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move { client(c, config, recorder, keys).await }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn client(id: u64, config: WorkloadConfig, recorder: Recorder, keys: u64) {
    let mut rng = Rng::new(config.seed).fork(0x4150_5000 + id);
    let mut process = 2_000_000 + id;
    let mut element = id << 32;
    let endpoint = config.endpoints[(id as usize) % config.endpoints.len()].clone();
    let mut client = None;
    while tokio::time::Instant::now() < config.deadline {
        let Some(c) = super::ensure_connected(&mut client, &endpoint, config.tls.as_ref()).await else {
            continue;
        };
        let first = rng.below(keys);
        let second = (first + 1 + rng.below(keys - 1)) % keys;
        let op_keys = vec![key(first), key(second)];
        element += 1;
        let op = Op::Append {
            keys: op_keys.clone(),
            element,
            read: None,
        };
        recorder.invoke(process, &op);
        match tokio::time::timeout(OP_TIMEOUT, append(c, &op_keys, element)).await {
            Ok(Ok(Some((read, revision)))) => {
                let done = Op::Append {
                    keys: op_keys,
                    element,
                    read: Some(read),
                };
                recorder.complete(process, Kind::Ok, done, Some(revision), None);
                tokio::time::sleep(THINK_TIME).await;
            }
            // The compare failed: the transaction wrote nothing.
            Ok(Ok(None)) => {
                recorder.complete(process, Kind::Fail, op, None, Some("compare failed".into()));
                tokio::time::sleep(THINK_TIME).await;
            }
            Ok(Err(e)) => {
                let kind = classify_write_error(&e);
                recorder.complete(process, kind, op, None, Some(e.to_string()));
                if kind == Kind::Info {
                    process += 1000;
                }
                client = None;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
            Err(_) => {
                recorder.complete(process, Kind::Info, op, None, Some("timed out".into()));
                process += 1000;
                client = None;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Reads the lists, then appends if nobody changed them in between. `None`: the
/// compare failed and nothing was written.
async fn append(
    c: &mut etcd_client::Client,
    keys: &[String],
    element: u64,
) -> Result<Option<(Vec<Vec<u64>>, i64)>, etcd_client::Error> {
    let reads = Txn::new().and_then(keys.iter().map(|k| TxnOp::get(k.as_str(), None)).collect::<Vec<_>>());
    let resp = c.txn(reads).await?;
    let mut lists = Vec::new();
    let mut compares = Vec::new();
    for (k, r) in keys.iter().zip(resp.op_responses()) {
        let TxnOpResponse::Get(get) = r else { continue };
        let (list, mod_revision) = match get.kvs().first() {
            Some(kv) => (parse_list(&text(kv.value())), kv.mod_revision()),
            None => (Vec::new(), 0),
        };
        compares.push(Compare::mod_revision(k.as_str(), CompareOp::Equal, mod_revision));
        lists.push(list);
    }
    let puts: Vec<TxnOp> = keys
        .iter()
        .zip(&lists)
        .map(|(k, list)| {
            let mut next = list.clone();
            next.push(element);
            TxnOp::put(k.as_str(), format_list(&next), None)
        })
        .collect();
    let resp = c.txn(Txn::new().when(compares).and_then(puts)).await?;
    if !resp.succeeded() {
        return Ok(None);
    }
    Ok(Some((lists, resp.header().map_or(0, |h| h.revision()))))
}
