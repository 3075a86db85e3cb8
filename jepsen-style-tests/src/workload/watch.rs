//! The watch workload: watchers on the register prefix, each session starting where
//! the previous one stopped (a resumed watch), recording every response as it came.

use std::time::Duration;

use etcd_client::{EventType, WatchOptions};

use super::{ClientTls, WorkloadConfig, connect, text};
use crate::history::{WatchEvent, WatchSession};
use crate::recorder::Recorder;
use crate::rng::Rng;

pub async fn run(config: WorkloadConfig, recorder: Recorder, watchers: u64, prefix: &'static str) {
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let config = config.clone();
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move { watcher(w, config, recorder, prefix).await }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn watcher(id: u64, config: WorkloadConfig, recorder: Recorder, prefix: &str) {
    let mut rng = Rng::new(config.seed).fork(0x5741_5400 + id);
    // The first session replays everything from the first revision.
    let mut next_revision = 1;
    let mut session_index = 0;
    // Watch a little past the workload's end, to collect what was written last.
    let end = config.deadline + Duration::from_secs(2);
    while tokio::time::Instant::now() < end {
        let endpoint = rng.pick(&config.endpoints).clone();
        let length = Duration::from_millis(rng.between(2_000, 8_000));
        let session_end = (tokio::time::Instant::now() + length).min(end);
        let session = session(
            id * 1000 + session_index,
            &endpoint,
            config.tls.as_ref(),
            prefix,
            next_revision,
            session_end,
        )
        .await;
        session_index += 1;
        if let Some(session) = session {
            let last = session.responses.iter().flatten().map(|e| e.mod_revision).max();
            if let Some(last) = last {
                next_revision = last + 1;
            }
            let compacted = session.compacted.is_some();
            recorder.add_session(session);
            if compacted {
                return;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One watch from `start` until `until` or the first error.
async fn session(
    watcher: u64,
    endpoint: &str,
    tls: Option<&ClientTls>,
    prefix: &str,
    start: i64,
    until: tokio::time::Instant,
) -> Option<WatchSession> {
    let mut client = connect(&[endpoint.to_string()], tls).await?;
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start)
        .with_prev_key();
    let mut stream = tokio::time::timeout(Duration::from_secs(3), client.watch(prefix, Some(options)))
        .await
        .ok()?
        .ok()?;
    let mut session = WatchSession {
        watcher,
        start_revision: start,
        created_revision: 0,
        responses: Vec::new(),
        progress_revision: 0,
        compacted: None,
    };
    let mut progress_tick = tokio::time::interval(Duration::from_millis(1500));
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            _ = progress_tick.tick() => {
                let _ = stream.request_progress().await;
                continue;
            }
            _ = tokio::time::sleep_until(until) => break,
        };
        let Ok(Some(resp)) = message else { break };
        if resp.created() {
            session.created_revision = resp.header().map_or(0, |h| h.revision());
        }
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                session.compacted = Some(resp.compact_revision());
            }
            break;
        }
        if resp.events().is_empty() {
            // A progress response: everything up to its revision has been sent.
            if !resp.created() {
                let revision = resp.header().map_or(0, |h| h.revision());
                session.progress_revision = session.progress_revision.max(revision);
            }
            continue;
        }
        let events = resp
            .events()
            .iter()
            .filter_map(|e| {
                let kv = e.kv()?;
                Some(WatchEvent {
                    key: text(kv.key()),
                    is_delete: e.event_type() == EventType::Delete,
                    value: text(kv.value()),
                    mod_revision: kv.mod_revision(),
                    create_revision: kv.create_revision(),
                    version: kv.version(),
                    prev_value: e.prev_kv().map(|p| text(p.value())),
                })
            })
            .collect();
        session.responses.push(events);
    }
    Some(session)
}
