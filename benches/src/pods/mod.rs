//! `berth-bench pods`: how long a pod takes to start with its image cached, against the
//! floor of the container runtime alone, and the agent's memory with many pods.
//!
//! ```text
//!  floor:  bare `runc run -d` of a busybox bundle, --pods times, one after another,
//!          each left running (runc.rs)                       ──► p50, p99
//!  berth:  registry + `berth server` + `berth agent` on loopback (node.rs); a warm-up
//!          pod pulls the image; then --pods pods, one at a time, POST → Running on a
//!          watch (starts.rs)                                 ──► p50, p99, berth/runc
//!          then pods up to --rss-pods Running at once        ──► the agent's RSS
//!  stop:   delete the pods, stop the agent (it stops what is left), the server, the
//!          registry; delete the runc containers; print a table and JSON lines
//! ```
//!
//! The issue's targets: berth's p99 at most the Kubernetes pod startup SLO (5 s, which
//! excludes image pulls, hence the cached image); bare runc is the floor, and the ratio
//! is berth's overhead. TODO(issue 15): the berth half measures whatever runtime the
//! agent runs pods with; it is the figure of record only once the OCI runtime is the
//! agent's default (or chosen by --agent-arg / --runtime-class).

pub mod node;
pub mod runc;
pub mod starts;
mod summary;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::api::http::Connection;
use crate::compare::{ensure_berth, machine};
use crate::driver::Outcome;
use crate::duration::parse_duration;
use crate::report::Report;
use node::BerthNode;
use starts::{RunningWatch, pod, pod_name};
use summary::PodsRun;

#[derive(clap::Args, Clone, Debug)]
pub struct PodsOptions {
    /// Pods (and bare runc containers) to start one after another and time.
    #[arg(long, default_value_t = 50)]
    pub pods: u64,

    /// Pods running at once when the agent's RSS is read last (0: skip that phase).
    #[arg(long, default_value_t = 100)]
    pub rss_pods: u64,

    /// Only one half: `runc` (the floor) or `berth`.
    #[arg(long, value_parser = ["runc", "berth"])]
    pub only: Option<String>,

    /// The runc binary [default: runc on PATH, else /usr/sbin/runc].
    #[arg(long)]
    pub runc: Option<PathBuf>,

    /// The berth binary. Default: the release build in this program's target directory,
    /// built with `cargo build --release -p berth` when missing.
    #[arg(long)]
    pub berth: Option<PathBuf>,

    /// Build berth (`cargo build --release -p berth`) even when the binary exists.
    #[arg(long)]
    pub build: bool,

    /// A flag for `berth agent` (repeat for several), such as the runtime it should use.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,

    /// The pods' `spec.runtimeClassName` [default: none, the agent's default runtime].
    #[arg(long)]
    pub runtime_class: Option<String>,

    /// How long one pod may take to be Running before the run fails.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,

    /// Where the temporary dirs go [default: the system temp dir].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
}

impl PodsOptions {
    fn runs(&self, half: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == half)
    }
}

/// [`run`], stopped by Ctrl-C or SIGTERM (everything started is torn down).
pub async fn run_until_interrupted(options: &PodsOptions) -> anyhow::Result<()> {
    crate::compare::until_interrupted(run(options)).await
}

pub async fn run(options: &PodsOptions) -> anyhow::Result<()> {
    ensure!(options.pods >= 1, "--pods must be at least 1");
    if cfg!(debug_assertions) {
        eprintln!("warning: berth-bench is a debug build; run it with --release for real numbers");
    }
    let data_root = options.data_root.clone().unwrap_or_else(std::env::temp_dir);
    let temp = tempfile::Builder::new()
        .prefix("berth-bench-pods-")
        .tempdir_in(&data_root)
        .with_context(|| format!("creating a temp dir in {}", data_root.display()))?;
    let mut run = PodsRun::new(options, machine::describe(temp.path()));

    if options.runs("runc") {
        let runc = runc::find_runc(options.runc.as_deref())?;
        run.runc_version = machine::first_line(machine::command_output(&runc.display().to_string(), &["--version"]));
        eprintln!("-- bare runc: {} containers, one after another", options.pods);
        run.runc = Some(measure_runc(&runc, &temp.path().join("runc"), options.pods)?);
    }
    if options.runs("berth") {
        let binary = ensure_berth(options.berth.as_deref(), options.build)?;
        run.berth_version = format!(
            "{}{}",
            machine::first_line(machine::command_output(&binary.display().to_string(), &["version"])),
            crate::compare::berth_provenance(&binary)
        );
        let mut node = BerthNode::start(&binary, &temp.path().join("berth"), &options.agent_args).await?;
        let measured = measure_berth(&mut node, options, &mut run).await;
        let cleaned = delete_pods(&node, options.timeout).await;
        node.stop_agent();
        if let Err(error) = &measured {
            eprintln!("{}", node.log_tails());
            return Err(anyhow::anyhow!("{error:#}"));
        }
        cleaned?;
    }
    print!("{}", summary::render(&run));
    Ok(())
}

fn measure_runc(runc: &std::path::Path, dir: &std::path::Path, count: u64) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir)?;
    let mut floor = runc::RuncFloor::prepare(runc, dir)?;
    let started = Instant::now();
    let mut outcome = Outcome::default();
    for index in 0..count {
        outcome.latencies.push(floor.start(index)?);
    }
    outcome.elapsed = started.elapsed();
    let state = floor.state(0)?;
    ensure!(state == "running", "the first runc container is {state:?}, not running");
    Ok(Report::new("pods-runc", &[], 1, 1, outcome))
    // `floor` deletes its containers here.
}

async fn measure_berth(node: &mut BerthNode, options: &PodsOptions, run: &mut PodsRun) -> anyhow::Result<()> {
    let authority = node.server.api_authority.clone();
    let mut connection = Connection::open(&authority).await?;
    starts::create_namespace(&mut connection).await?;
    let watch = RunningWatch::open(&authority).await?;
    run.agent_rss_kib.push(("idle".to_owned(), node.agent_rss_kib()?));

    eprintln!("-- a warm-up pod pulls {}", node.image);
    let warm_up = pod("warm-up", &node.image, options.runtime_class.as_deref());
    starts::create_pod(&mut connection, &warm_up).await?;
    wait_running(&watch, &mut connection, "warm-up", options.timeout).await?;

    eprintln!("-- {} pods, one after another, POST → Running", options.pods);
    let started = Instant::now();
    let mut outcome = Outcome::default();
    for index in 0..options.pods {
        let name = pod_name(index);
        let sent_at = Instant::now();
        starts::create_pod(
            &mut connection,
            &pod(&name, &node.image, options.runtime_class.as_deref()),
        )
        .await?;
        let running_at = wait_running(&watch, &mut connection, &name, options.timeout).await?;
        outcome.latencies.push(running_at.saturating_duration_since(sent_at));
    }
    outcome.elapsed = started.elapsed();
    node.check_running()?;
    let running = options.pods + 1;
    run.agent_rss_kib
        .push((format!("{running} pods"), node.agent_rss_kib()?));
    run.berth = Some(Report::new(
        "pods-berth",
        &[format!("http://{authority}")],
        1,
        1,
        outcome,
    ));

    if options.rss_pods > running {
        eprintln!(
            "-- {} more pods at once, for the agent's RSS",
            options.rss_pods - running
        );
        let more: Vec<String> = (options.pods..options.rss_pods - 1).map(pod_name).collect();
        for name in &more {
            starts::create_pod(
                &mut connection,
                &pod(name, &node.image, options.runtime_class.as_deref()),
            )
            .await?;
        }
        for name in &more {
            wait_running(&watch, &mut connection, name, options.timeout).await?;
        }
        node.check_running()?;
        run.agent_rss_kib
            .push((format!("{} pods", options.rss_pods), node.agent_rss_kib()?));
    }
    Ok(())
}

/// [`RunningWatch::wait_running`], with the pod's status in the error.
async fn wait_running(
    watch: &RunningWatch,
    connection: &mut Connection,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    match watch.wait_running(name, timeout).await {
        Ok(at) => Ok(at),
        Err(error) => {
            let status = starts::pod_status(connection, name).await;
            Err(error.context(format!("pod {name}'s status: {status}")))
        }
    }
}

/// Deletes every pod of the bench's namespace and waits until they are gone.
async fn delete_pods(node: &BerthNode, timeout: Duration) -> anyhow::Result<()> {
    let mut connection = Connection::open(&node.server.api_authority).await?;
    let names = starts::pod_names(&mut connection).await?;
    eprintln!("-- deleting {} pods", names.len());
    for name in &names {
        connection
            .request(
                hyper::Method::DELETE,
                &format!("{}/{name}", starts::collection_path()),
                None,
            )
            .await?;
    }
    let deadline = Instant::now() + timeout.max(Duration::from_secs(60));
    loop {
        let left = starts::pod_names(&mut connection).await?;
        if left.is_empty() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} pods were not gone after deletion: {left:?}",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
