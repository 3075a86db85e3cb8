//! `berth-bench api`: the API server at scale. One `berth server` replica on loopback,
//! N small pods created through the REST API, then paged LISTs of all of them and a
//! WATCH of N pod events, with the server's RSS between the phases.
//!
//! ```text
//!  start `berth server` (release build; the store, the API server and the leader's
//!  loops in one process) ──► /readyz ──► RSS "started"
//!  create:  --conns writers, each on its own keep-alive connection, POST pod i
//!           (bound to a node with no agent) ──► RSS "created"
//!  list:    one client, --lists whole lists in pages of --page (limit/continue)
//!           ──► RSS "listed"
//!  watch:   watch from the revision after the lists; the writers PATCH one label of
//!           each pod (N MODIFIED events); ack-to-event latency ──► RSS "watched"
//!           then a second watch from the same revision replays the N events from
//!           the store's history, as fast as the server sends them ──► RSS "replayed"
//!  stop the server, delete its data; print the machine, the command, a table and
//!  one JSON line per phase
//! ```
//!
//! The server's RSS is the whole process: the store (its MVCC index, caches and the
//! write-behind state), the API server, and the control plane's informer caches, which
//! hold every pod while this replica leads. kube-apiserver keeps etcd in another
//! process and the controllers' and scheduler's caches in others again.

pub mod http;
pub mod list;
pub mod pods;
pub mod server;
pub mod summary;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tokio::sync::Notify;

use crate::berth_binary::BerthBinary;
use crate::budget::Budget;
use crate::compare::machine;
use crate::driver::{DriveOptions, Outcome, drive};
use crate::duration::parse_duration;
use crate::latency::LatencySummary;
use crate::report::Report;
use http::Connection;
use pods::{CreatePod, TouchPod, WriteTimes};
use server::{Memory, ServerUnderTest};
use summary::{ApiRun, Checkpoint, ListFigures, WatchFigures};

/// One write may take this long before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Clone, Debug)]
pub struct ApiOptions {
    /// Pods to create; the watch sees as many events (one label patch per pod).
    #[arg(long, default_value_t = 20_000)]
    pub pods: u64,

    /// Items per page of the paged lists (`limit`).
    #[arg(long, default_value_t = 500)]
    pub page: usize,

    /// Whole paged lists to time, one after another.
    #[arg(long, default_value_t = 20)]
    pub lists: u64,

    /// Keep-alive connections that create and patch the pods, one writer on each.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,

    /// Longest time each phase (creates, lists, patches) may run.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub duration: Duration,

    /// How long a watch may take to deliver its last events after the last patch.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub binary: BerthBinary,
}

impl ApiOptions {
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.pods >= 1, "--pods must be at least 1");
        ensure!(self.page >= 1, "--page must be at least 1");
        ensure!(self.lists >= 1, "--lists must be at least 1");
        ensure!(self.conns >= 1, "--conns must be at least 1");
        Ok(())
    }
}

/// [`run`], stopped by Ctrl-C or SIGTERM (the server is killed, its data deleted).
pub async fn run_until_interrupted(options: &ApiOptions) -> anyhow::Result<()> {
    crate::compare::until_interrupted(run(options)).await
}

pub async fn run(options: &ApiOptions) -> anyhow::Result<()> {
    options.validate()?;
    let (binary, temp) = options.binary.prepare("berth-bench-api-")?;
    let cpu_before = machine::CpuSample::now();
    let mut server = ServerUnderTest::start(&binary, &temp.path().join("server"))?;
    server.wait_until_ready().await?;
    let mut run = measure(options, &mut server).await?;
    run.data_dir_bytes = server.data_dir_bytes();
    // Killed and reaped, so its CPU time counts as this program's children's.
    drop(server);
    if let (Some(before), Some(after)) = (cpu_before, machine::CpuSample::now()) {
        run.others_cpu_share = Some(before.others_share(&after));
    }
    run.machine = machine::describe(temp.path());
    run.berth_version = format!(
        "{}{}",
        machine::first_line(machine::command_output(&binary.display().to_string(), &["version"])),
        crate::compare::berth_provenance(&binary)
    );
    print!("{}", summary::render(&run));
    Ok(())
}

async fn measure(options: &ApiOptions, server: &mut ServerUnderTest) -> anyhow::Result<ApiRun> {
    let authority = server.api_authority.clone();
    let endpoints = [format!("http://{authority}")];
    let mut run = ApiRun::new(options);
    run.checkpoints.push(checkpoint("started", server)?);
    let mut setup = Connection::open(&authority).await?;
    pods::create_namespace(&mut setup).await?;

    eprintln!("-- creating {} pods over {} connections", options.pods, options.conns);
    let mut creators = Vec::with_capacity(options.conns);
    for _ in 0..options.conns {
        creators.push(CreatePod {
            connection: Connection::open(&authority).await?,
            path: pods::collection_path(),
        });
    }
    let (creators, created) = drive(
        "create",
        creators,
        Arc::new(Budget::new(options.pods, options.duration)),
        write_options(),
    )
    .await;
    let create = Report::new("api-create", &endpoints, options.conns, options.conns, created);
    eprint!("{}", create.human());
    if create.errors > 0 || create.requests < options.pods {
        bail!(
            "{} of {} pods were created ({} errors: {:?}); the lists and the watch need them all",
            create.requests,
            options.pods,
            create.errors,
            create.error_counts
        );
    }
    run.create = Some(create);
    server.check_running()?;
    run.checkpoints.push(checkpoint("created", server)?);

    eprintln!(
        "-- {} whole lists in pages of {} on one connection",
        options.lists, options.page
    );
    let outcome = list::run(
        &mut setup,
        options.page,
        options.pods,
        &Budget::new(options.lists, options.duration),
    )
    .await;
    let figures = ListFigures::new(&outcome);
    let list = figures.add_details(Report::new("api-list", &endpoints, 1, 1, outcome.pages), options.page);
    eprint!("{}", list.human());
    run.list = Some((list, figures));
    server.check_running()?;
    run.checkpoints.push(checkpoint("listed", server)?);

    eprintln!(
        "-- a watch, then {} label patches over {} connections",
        options.pods, options.conns
    );
    let resource_version = watch::current_resource_version(&mut setup).await?;
    let live = watch::open(&authority, resource_version).await?;
    let stop = Arc::new(Notify::new());
    let reader = tokio::spawn(watch::read_events(live, options.pods, stop.clone()));
    let times = Arc::new(WriteTimes::new(options.pods));
    let patchers = creators
        .into_iter()
        .map(|creator| TouchPod {
            connection: creator.connection,
            times: times.clone(),
        })
        .collect();
    let budget = Arc::new(Budget::new(options.pods, options.duration));
    let writes_started_at = budget.started_at();
    let (_, patched) = drive("patch", patchers, budget, write_options()).await;
    let writes = Report::new("api-patch", &endpoints, options.conns, options.conns, patched);
    eprint!("{}", writes.human());
    let arrivals = drain(reader, &stop, options.drain_timeout).await?;
    server.check_running()?;
    run.checkpoints.push(checkpoint("watched", server)?);

    eprintln!("-- a second watch from the same revision: the events from history");
    let replay_started_at = Instant::now();
    let replay = watch::open(&authority, resource_version).await?;
    let stop = Arc::new(Notify::new());
    let reader = tokio::spawn(watch::read_events(replay, options.pods, stop.clone()));
    let replayed = drain(reader, &stop, options.drain_timeout + options.duration).await?;
    server.check_running()?;
    run.checkpoints.push(checkpoint("replayed", server)?);

    let figures = WatchFigures::new(&arrivals, &times, &replayed, replay_started_at, writes);
    let watch = watch_report(&endpoints, options.conns, &figures, &arrivals, writes_started_at);
    eprint!("{}", watch.human());
    run.watch = Some((watch, figures));
    Ok(run)
}

fn write_options() -> DriveOptions {
    DriveOptions {
        request_timeout: REQUEST_TIMEOUT,
        rate: 0.0,
    }
}

fn checkpoint(name: &'static str, server: &ServerUnderTest) -> anyhow::Result<Checkpoint> {
    let memory: Memory = server.memory()?;
    Ok(Checkpoint {
        name,
        memory,
        cpu_time: server.cpu_time()?,
    })
}

/// Waits for the reader to see every event, at most `timeout`; then stops it.
async fn drain(
    mut reader: tokio::task::JoinHandle<watch::Arrivals>,
    stop: &Notify,
    timeout: Duration,
) -> anyhow::Result<watch::Arrivals> {
    if let Ok(arrivals) = tokio::time::timeout(timeout, &mut reader).await {
        return arrivals.context("the watch reader failed");
    }
    stop.notify_one();
    reader.await.context("the watch reader failed")
}

/// The live watch as a report: its latencies run from each patch's answer to its event
/// (`latency_from_send_ms` from sending the patch), its throughput is events per second
/// from the first patch sent to the last event.
fn watch_report(
    endpoints: &[String],
    conns: usize,
    figures: &WatchFigures,
    arrivals: &watch::Arrivals,
    writes_started_at: Instant,
) -> Report {
    let mut outcome = Outcome {
        latencies: figures.delays.from_ack.clone(),
        elapsed: arrivals
            .last_arrival
            .map_or(Duration::ZERO, |last| last.saturating_duration_since(writes_started_at)),
        ..Outcome::default()
    };
    for _ in 0..figures.delays.missing {
        outcome.record_error("an acknowledged patch's event never arrived".to_owned());
    }
    for _ in 0..arrivals.duplicates {
        outcome.record_error("an event arrived twice".to_owned());
    }
    if let Some(error) = &arrivals.error {
        outcome.record_error(format!("the watch: {error}"));
    }
    Report::new("api-watch", endpoints, 1, conns, outcome)
        .with_detail("events_delivered", arrivals.delivered)
        .with_detail("events_before_ack", figures.delays.before_ack)
        .with_detail(
            "latency_from_send_ms",
            LatencySummary::from_samples(figures.delays.from_send.clone()).to_json(),
        )
        .with_detail("missing", figures.delays.missing)
        .with_detail("duplicates", arrivals.duplicates)
        .with_detail(
            "replay_events_per_s",
            (figures.replay_events_per_s * 10.0).round() / 10.0,
        )
        .with_detail("replay_events_delivered", figures.replay_delivered)
}
