//! The lease workload: clients grant short leases with a key attached, keep some
//! alive for a while, revoke some and let the others expire, and read the keys.

use std::time::Duration;

use etcd_client::PutOptions;

use super::{ERROR_BACKOFF, OP_TIMEOUT, WorkloadConfig, classify_write_error, connect};
use crate::history::{Kind, Op};
use crate::recorder::Recorder;
use crate::rng::Rng;

pub const PREFIX: &str = "l/";
pub const TTL_S: i64 = 3;

pub async fn run(config: WorkloadConfig, recorder: Recorder, clients: u64) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let config = config.clone();
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move { client(c, config, recorder).await }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn client(id: u64, config: WorkloadConfig, recorder: Recorder) {
    let mut rng = Rng::new(config.seed).fork(0x4c45_4100 + id);
    let process_base = 1_000_000 + id;
    let mut process = process_base;
    let mut round = 0u64;
    while tokio::time::Instant::now() < config.deadline {
        let Some(mut c) = connect(&config.endpoints, config.tls.as_ref()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        round += 1;
        let key = format!("{PREFIX}{id}-{round}");
        // Grant, then attach the key: one operation in the history.
        let grant = Op::LeaseGrant {
            lease: 0,
            ttl_s: TTL_S,
            key: key.clone(),
        };
        recorder.invoke(process, &grant);
        let granted = tokio::time::timeout(OP_TIMEOUT, async {
            let lease = c.lease_grant(TTL_S, None).await?.id();
            let put = c
                .put(key.as_str(), "leased", Some(PutOptions::new().with_lease(lease)))
                .await?;
            Ok::<_, etcd_client::Error>((lease, put.header().map_or(0, |h| h.revision())))
        })
        .await;
        let lease = match granted {
            Ok(Ok((lease, revision))) => {
                let done = Op::LeaseGrant {
                    lease,
                    ttl_s: TTL_S,
                    key: key.clone(),
                };
                recorder.complete(process, Kind::Ok, done, Some(revision), None);
                lease
            }
            Ok(Err(e)) => {
                recorder.complete(process, classify_write_error(&e), grant, None, Some(e.to_string()));
                process += 100;
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
            Err(_) => {
                recorder.complete(process, Kind::Info, grant, None, Some("timed out".into()));
                process += 100;
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        // Keep it alive for a while, reading the key between keepalives.
        let keepalives = rng.between(2, 8);
        let mut keeper = c.lease_keep_alive(lease).await.ok();
        for _ in 0..keepalives {
            if tokio::time::Instant::now() >= config.deadline {
                break;
            }
            let op = Op::LeaseKeepAlive { lease, ttl_s: None };
            recorder.invoke(process, &op);
            let answer = match keeper.as_mut() {
                Some((k, responses)) => {
                    tokio::time::timeout(OP_TIMEOUT, async {
                        k.keep_alive().await?;
                        responses.message().await
                    })
                    .await
                }
                None => Ok(Ok(None)),
            };
            match answer {
                Ok(Ok(Some(resp))) => {
                    let revision = resp.header().map(|h| h.revision());
                    recorder.complete(
                        process,
                        Kind::Ok,
                        Op::LeaseKeepAlive {
                            lease,
                            ttl_s: Some(resp.ttl()),
                        },
                        revision,
                        None,
                    );
                }
                other => {
                    let error = match other {
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".into(),
                        _ => "keepalive stream closed".into(),
                    };
                    recorder.complete(process, Kind::Fail, op, None, Some(error));
                    keeper = c.lease_keep_alive(lease).await.ok();
                }
            }
            read(&mut c, &recorder, process, lease, &key).await;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        drop(keeper);
        if rng.chance(50) {
            let op = Op::LeaseRevoke { lease };
            recorder.invoke(process, &op);
            match tokio::time::timeout(OP_TIMEOUT, c.lease_revoke(lease)).await {
                Ok(Ok(resp)) => {
                    recorder.complete(process, Kind::Ok, op, resp.header().map(|h| h.revision()), None);
                    read(&mut c, &recorder, process, lease, &key).await;
                }
                Ok(Err(e)) => {
                    recorder.complete(process, classify_write_error(&e), op, None, Some(e.to_string()));
                    process += 100;
                }
                Err(_) => {
                    recorder.complete(process, Kind::Info, op, None, Some("timed out".into()));
                    process += 100;
                }
            }
        }
        // Otherwise the lease is left to expire; the final check looks for its key.
    }
}

async fn read(c: &mut etcd_client::Client, recorder: &Recorder, process: u64, lease: i64, key: &str) {
    let op = Op::LeaseRead {
        lease,
        key: key.to_string(),
        present: None,
    };
    recorder.invoke(process, &op);
    match tokio::time::timeout(OP_TIMEOUT, c.get(key, None)).await {
        Ok(Ok(resp)) => {
            let present = Some(resp.count() > 0);
            let revision = resp.header().map(|h| h.revision());
            recorder.complete(
                process,
                Kind::Ok,
                Op::LeaseRead {
                    lease,
                    key: key.to_string(),
                    present,
                },
                revision,
                None,
            );
        }
        Ok(Err(e)) => recorder.complete(process, Kind::Fail, op, None, Some(e.to_string())),
        Err(_) => recorder.complete(process, Kind::Fail, op, None, Some("timed out".into())),
    }
}
