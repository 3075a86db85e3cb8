//! The `berth` binary: a store replica (`berth store`, an etcd-compatible server), a
//! control-plane replica (`berth server`), a node supervisor (`berth agent`), a local
//! cluster of both (`berth up`), and the kubectl-like commands that drive them.

mod agent;
mod api;
mod apiserver;
mod cli;
mod controllers;
mod http_client;
mod informer;
mod kv;
mod leader;
mod registry;
mod roles;
mod runtime;
mod scheduler;
mod store_flags;
#[cfg(test)]
mod testing;

use std::process::ExitCode;
use std::time::Duration;

use berth_store::{AutoCompaction, ClusterState, Server, StoreConfig, TestFaults};
use store_flags::{CompactionRetention, FlagError, StoreFlags};

/// Every replica allocates per request (decoded messages, log entries, records);
/// mimalloc's thread-local free lists cost less than glibc's arenas under that load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
berth: a Raft-replicated, etcd-compatible cluster-state store with a container orchestrator

Usage:
  berth up                start a local cluster: 3 control-plane replicas and 2 agents
                          (berth up --help)
  berth server [flags]    run a control-plane replica: store + API server + controllers
                          (berth server --help)
  berth agent [flags]     run a node agent (berth agent --help)
  berth store [flags]     run a store replica alone; etcd's flags (berth store --help)
  berth apply -f FILE     create or update objects from YAML or JSON manifests (a file, a directory, or -)
  berth get TYPE [NAME]   list objects; TYPE: pods, deployments, replicasets, nodes, namespaces
                          (-n NS | -A, -l SELECTOR, -o wide|yaml|json|name, -w to watch)
  berth describe TYPE [NAME]
                          show objects in detail
  berth delete TYPE NAME  delete objects (or -f FILE, or TYPE -l SELECTOR)
  berth logs POD          print a container's logs (-c CONTAINER, -f to follow)
  berth scale deployment/NAME --replicas N
                          set a deployment's number of replicas
  berth version           print the version

Environment:
  BERTH_SERVER            the API server(s) for the commands above, comma-separated
                          (else --server/-s, else http://127.0.0.1:8080,:8081,:8082)
  RUST_LOG                log filter (overrides --log-level), e.g. RUST_LOG=berth_store=debug
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("store") => run_store(&args[1..]),
        Some("server") => roles::server::run(&args[1..]),
        Some("agent") => roles::agent::run(&args[1..]),
        Some("up") => roles::up::run(&args[1..]),
        Some(c @ ("apply" | "get" | "describe" | "delete" | "logs" | "scale")) => cli::run(c, &args[1..]),
        Some("version" | "--version") => {
            println!(
                "berth {} (etcd API {})",
                env!("CARGO_PKG_VERSION"),
                berth_store::store::ETCD_VERSION
            );
            ExitCode::SUCCESS
        }
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Some(other) => {
            eprintln!("berth: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run_store(args: &[String]) -> ExitCode {
    let flags = match store_flags::parse_store_flags(args) {
        Ok(flags) => flags,
        Err(FlagError::Help) => {
            print!("{}", store_flags::STORE_USAGE);
            return ExitCode::SUCCESS;
        }
        Err(FlagError::Version) => {
            println!(
                "berth {} (etcd API {})",
                env!("CARGO_PKG_VERSION"),
                berth_store::store::ETCD_VERSION
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("berth store: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&flags.log_level);
    let config = match store_config(&flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berth store: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match roles::tokio_runtime("store") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("berth store: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            name = %flags.name,
            member_id = format!("{:x}", server.store().id()),
            clients = ?flags.listen_client_urls,
            peers = ?flags.listen_peer_urls,
            "serving"
        );
        wait_for_signal().await;
        tracing::info!("stopping");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn store_config(flags: &StoreFlags) -> Result<StoreConfig, FlagError> {
    let auto_compaction = match flags.compaction_retention()? {
        CompactionRetention::Disabled => None,
        CompactionRetention::Periodic { retention_ms } => {
            Some(AutoCompaction::Periodic(Duration::from_millis(retention_ms)))
        }
        CompactionRetention::Revision { revisions } => Some(AutoCompaction::Revision(revisions as i64)),
    };
    Ok(StoreConfig {
        name: flags.name.clone(),
        data_dir: flags.data_dir(),
        listen_client_urls: flags.listen_client_urls.clone(),
        advertise_client_urls: flags.advertise_client_urls.clone(),
        listen_peer_urls: flags.listen_peer_urls.clone(),
        initial_advertise_peer_urls: flags.initial_advertise_peer_urls.clone(),
        initial_cluster: flags
            .initial_cluster_members()
            .into_iter()
            .map(|(name, urls)| (name.to_string(), urls.into_iter().map(str::to_string).collect()))
            .collect(),
        initial_cluster_state: match flags.initial_cluster_state {
            store_flags::ClusterState::New => ClusterState::New,
            store_flags::ClusterState::Existing => ClusterState::Existing,
        },
        initial_cluster_token: flags.initial_cluster_token.clone(),
        heartbeat_interval: Duration::from_millis(flags.heartbeat_interval_ms),
        election_timeout: Duration::from_millis(flags.election_timeout_ms),
        snapshot_count: flags.snapshot_count,
        quota_backend_bytes: flags.effective_quota_backend_bytes(),
        max_request_bytes: flags.max_request_bytes as usize,
        auto_compaction,
        listen_metrics_urls: flags.listen_metrics_urls.clone(),
        watch_progress_notify_interval: Duration::from_millis(flags.experimental_watch_progress_notify_interval_ms),
        dial_peer_urls: flags.dial_peer_urls.iter().cloned().collect(),
        test_faults: TestFaults {
            stale_reads: flags.test_fault.as_deref() == Some("stale-reads"),
        },
    })
}

fn init_logging(level: &str) {
    let level = match level {
        "dpanic" | "panic" | "fatal" => "error",
        other => other,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
