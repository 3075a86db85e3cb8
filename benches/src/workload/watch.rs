//! `watch`: N watchers on a prefix, each on its own connection; writers put keys under
//! the prefix. Measures put-to-event latency and checks that every acknowledged put
//! reaches every watcher exactly once and in revision order.
//!
//! ```text
//!  writer ──► Ledger.sent_at[ticket] = now ──► Put(key, value = ticket ‖ filler)
//!                                                 └─► Ledger.acked_revision[ticket]
//!  watcher i ◄── events ── decode ticket from the value
//!       latency = now − sent_at[ticket]; seen_i[ticket] (second time: a duplicate);
//!       a revision not above the last one seen: out of order
//!  after the writers: wait until every watcher reached the last acknowledged revision
//!  (or the drain timeout), then stop; missing = acknowledged tickets a watcher never saw
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use etcd_client::{EventType, KvClient, WatchOptions, WatchStream};
use tokio::sync::watch as signal;

use crate::budget::Budget;
use crate::connection::{connect, connect_pool, resolve_endpoints};
use crate::driver::{Operation, Outcome, drive};
use crate::keys::{KeySpace, Rng, value_bytes};
use crate::latency::{LatencySummary, ms};
use crate::options::LoadOptions;
use crate::report::Report;
use crate::workload::put::drive_options;

/// The most puts one watch run tracks (each costs 16 bytes plus a bit per watcher).
const MAX_TRACKED_PUTS: u64 = 10_000_000;

const TICKET_BYTES: usize = 8;

/// Options of the watch workload besides the shared ones.
#[derive(Clone, Copy, Debug)]
pub struct WatchSettings {
    pub watchers: usize,
    /// How long watchers may take to catch up after the last put.
    pub drain_timeout: Duration,
}

/// When each put was sent and at which revision it was acknowledged, by ticket.
struct Ledger {
    base: Instant,
    /// Nanoseconds since `base` plus one; zero means not sent.
    sent_at_ns: Vec<AtomicU64>,
    /// The put's revision; zero means not acknowledged.
    acked_revision: Vec<AtomicI64>,
}

impl Ledger {
    fn new(total: u64) -> Self {
        Self {
            base: Instant::now(),
            sent_at_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
            acked_revision: (0..total).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    fn since_base_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }
}

struct WatchPutOperation {
    kv: KvClient,
    keys: KeySpace,
    filler: Vec<u8>,
    rng: Rng,
    ledger: Arc<Ledger>,
}

impl Operation for WatchPutOperation {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let key = self.keys.pick(ticket, &mut self.rng);
        let mut value = ticket.to_le_bytes().to_vec();
        value.extend_from_slice(&self.filler);
        let slot = ticket as usize;
        self.ledger.sent_at_ns[slot].store(self.ledger.since_base_ns(), Ordering::Release);
        let response = self.kv.put(key, value, None).await?;
        let revision = response.header().map_or(0, |header| header.revision());
        ensure!(revision > 0, "the put's response has no revision");
        self.ledger.acked_revision[slot].store(revision, Ordering::Release);
        Ok(())
    }
}

/// What one watcher saw.
#[derive(Default)]
struct WatcherLog {
    latencies: Vec<Duration>,
    /// One bit per ticket.
    seen: Vec<u64>,
    events: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Events whose value does not carry a ticket of this run.
    foreign_events: u64,
    error: Option<String>,
}

impl WatcherLog {
    fn mark_seen(&mut self, ticket: usize) -> bool {
        let (word, bit) = (ticket / 64, 1u64 << (ticket % 64));
        let was_seen = self.seen[word] & bit != 0;
        self.seen[word] |= bit;
        !was_seen
    }

    fn has_seen(&self, ticket: usize) -> bool {
        self.seen[ticket / 64] & (1u64 << (ticket % 64)) != 0
    }
}

async fn watch_events(
    mut stream: WatchStream,
    ledger: Arc<Ledger>,
    last_revision: Arc<AtomicI64>,
    mut stop: signal::Receiver<bool>,
) -> WatcherLog {
    let total = ledger.sent_at_ns.len();
    let mut log = WatcherLog {
        seen: vec![0; total.div_ceil(64)],
        ..WatcherLog::default()
    };
    let mut last_seen_revision = 0;
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = stop.changed() => break,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                log.error = Some("the watch stream closed".to_owned());
                break;
            }
            Err(error) => {
                log.error = Some(format!("watch stream: {error}"));
                break;
            }
        };
        if response.canceled() {
            log.error = Some(format!("watch canceled: {:?}", response.cancel_reason()));
            break;
        }
        let received_ns = ledger.since_base_ns();
        for event in response.events() {
            let Some(kv) = event.kv() else {
                log.foreign_events += 1;
                continue;
            };
            let ticket = match kv.value().get(..TICKET_BYTES) {
                Some(bytes) if event.event_type() == EventType::Put => {
                    u64::from_le_bytes(bytes.try_into().expect("eight bytes")) as usize
                }
                _ => usize::MAX,
            };
            if ticket >= total {
                log.foreign_events += 1;
                continue;
            }
            log.events += 1;
            if !log.mark_seen(ticket) {
                log.duplicates += 1;
            } else if kv.mod_revision() <= last_seen_revision {
                log.out_of_order += 1;
            }
            last_seen_revision = last_seen_revision.max(kv.mod_revision());
            let sent_ns = ledger.sent_at_ns[ticket].load(Ordering::Acquire);
            if sent_ns != 0 {
                log.latencies
                    .push(Duration::from_nanos(received_ns.saturating_sub(sent_ns)));
            }
        }
        last_revision.store(last_seen_revision, Ordering::Release);
    }
    log
}

pub async fn run(options: &LoadOptions, settings: WatchSettings) -> anyhow::Result<Report> {
    options.validate()?;
    ensure!(settings.watchers >= 1, "--watchers must be at least 1");
    ensure!(
        options.total <= MAX_TRACKED_PUTS,
        "watch tracks at most {MAX_TRACKED_PUTS} puts; lower --total"
    );
    let endpoints = resolve_endpoints(&options.endpoints, options.target_leader).await?;
    let keys = KeySpace::new("w", options.key_size, options.key_space_size, options.sequential_keys);
    let ledger = Arc::new(Ledger::new(options.total));
    let (stop_sender, stop) = signal::channel(false);

    // Watchers first, each on its own connection, all created before the first put.
    let mut watchers = Vec::with_capacity(settings.watchers);
    let mut connections = Vec::with_capacity(settings.watchers);
    for index in 0..settings.watchers {
        let endpoint = &endpoints[index % endpoints.len()];
        let client = connect(endpoint).await?;
        let mut stream = client
            .watch_client()
            .watch(keys.prefix(), Some(WatchOptions::new().with_prefix()))
            .await
            .with_context(|| format!("watching on {endpoint}"))?;
        let created = tokio::time::timeout(options.request_timeout, stream.message())
            .await
            .context("waiting for the watch to be created")??;
        match created {
            Some(response) if response.created() => {}
            other => bail!("expected the watch's created response, got {other:?}"),
        }
        let last_revision = Arc::new(AtomicI64::new(0));
        let task = tokio::spawn(watch_events(
            stream,
            ledger.clone(),
            last_revision.clone(),
            stop.clone(),
        ));
        watchers.push((task, last_revision));
        connections.push(client);
    }

    let pool = connect_pool(&endpoints, options.conns).await?;
    let filler = value_bytes(options.val_size.saturating_sub(TICKET_BYTES));
    let operations = (0..options.clients)
        .map(|client| WatchPutOperation {
            kv: pool[client % pool.len()].kv_client(),
            keys: keys.clone(),
            filler: filler.clone(),
            rng: Rng::new(client as u64 + 1),
            ledger: ledger.clone(),
        })
        .collect();
    let budget = Arc::new(Budget::new(options.total, options.duration));
    let (_, put_outcome) = drive("watch", operations, budget, drive_options(options)).await;

    // Drain: wait until every watcher reached the last acknowledged revision.
    let last_acked = ledger
        .acked_revision
        .iter()
        .map(|revision| revision.load(Ordering::Acquire))
        .max()
        .unwrap_or(0);
    let drain_started = Instant::now();
    let drain_deadline = drain_started + settings.drain_timeout;
    loop {
        let behind = watchers
            .iter()
            .filter(|(task, revision)| !task.is_finished() && revision.load(Ordering::Acquire) < last_acked)
            .count();
        if behind == 0 || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain_time = drain_started.elapsed();
    let _ = stop_sender.send(true);

    let mut logs = Vec::with_capacity(watchers.len());
    for (task, _) in watchers {
        logs.push(task.await.context("a watcher task failed")?);
    }
    drop(connections);

    let acked: Vec<usize> = (0..options.total as usize)
        .filter(|&ticket| ledger.acked_revision[ticket].load(Ordering::Acquire) > 0)
        .collect();
    let is_acked = |ticket: usize| ledger.acked_revision[ticket].load(Ordering::Acquire) > 0;
    let mut event_outcome = Outcome::default();
    let (mut events, mut missing, mut duplicates, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let (mut foreign_events, mut unacked_events, mut watcher_errors) = (0u64, 0u64, 0u64);
    for log in logs {
        events += log.events;
        duplicates += log.duplicates;
        out_of_order += log.out_of_order;
        foreign_events += log.foreign_events;
        missing += acked.iter().filter(|&&ticket| !log.has_seen(ticket)).count() as u64;
        unacked_events += (0..options.total as usize)
            .filter(|&ticket| log.has_seen(ticket) && !is_acked(ticket))
            .count() as u64;
        if let Some(error) = &log.error {
            watcher_errors += 1;
            event_outcome.record_error(error.clone());
        }
        event_outcome.latencies.extend(log.latencies);
    }

    let puts = acked.len() as u64;
    let put_elapsed = put_outcome.elapsed;
    let put_latency = LatencySummary::from_samples(put_outcome.latencies.clone());
    let events_expected = puts * settings.watchers as u64;
    let events_per_s = events as f64 / (put_elapsed + drain_time).as_secs_f64().max(1e-9);
    event_outcome.elapsed = put_elapsed;
    let put_errors = put_outcome.errors;
    let error_counts = put_outcome.error_counts;
    let mut report = Report::new("watch", &endpoints, options.clients, options.conns, event_outcome);
    report.requests = puts;
    report.errors += put_errors;
    for (message, count) in error_counts {
        *report.error_counts.entry(message).or_default() += count;
    }
    Ok(report
        .with_detail("watchers", settings.watchers)
        .with_detail("latency_is", "put sent to event received, over every watcher")
        .with_detail("events_expected", events_expected)
        .with_detail("events_delivered", events)
        .with_detail("missing", missing)
        .with_detail("duplicates", duplicates)
        .with_detail("out_of_order", out_of_order)
        .with_detail("unacked_events", unacked_events)
        .with_detail("foreign_events", foreign_events)
        .with_detail("watcher_errors", watcher_errors)
        .with_detail("events_per_s", (events_per_s * 10.0).round() / 10.0)
        .with_detail("drain_ms", ms(drain_time))
        .with_detail("put_latency_ms", put_latency.to_json())
        .with_detail("put_rate", options.rate)
        .with_detail("key_size", options.key_size)
        .with_detail("val_size", options.val_size)
        .with_detail("key_space_size", options.key_space_size))
}
