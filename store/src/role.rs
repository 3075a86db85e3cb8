//! `berth store`: one store replica as an etcd-compatible server, configured by
//! etcd's flags ([`crate::flags`]); `berth store snapshot ...` runs the snapshot tools
//! instead ([`crate::snapshot_tool`]). The `berth` binary hands its arguments here; the
//! process-wide pieces every long-running role shares (logging, the stop signal) live
//! here too, since every role starts from a store replica or talks to one.

use std::process::ExitCode;

use crate::Server;
use crate::flags::{self, FlagError};
use crate::store::ETCD_VERSION;

/// `berth version`'s line: berth's version and the etcd API it speaks.
pub fn version_line(berth_version: &str) -> String {
    format!("berth {berth_version} (etcd API {ETCD_VERSION})")
}

/// Runs `berth store ARGS` until SIGINT or SIGTERM; `berth_version` is the binary's.
pub fn run(args: &[String], berth_version: &str) -> ExitCode {
    if args.first().map(String::as_str) == Some("snapshot") {
        return crate::snapshot_tool::run(&args[1..]);
    }
    let flags = match flags::parse_store_flags(args) {
        Ok(flags) => flags,
        Err(FlagError::Help) => {
            print!("{}", flags::STORE_USAGE);
            return ExitCode::SUCCESS;
        }
        Err(FlagError::Version) => {
            println!("{}", version_line(berth_version));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("berth store: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&flags.log_level);
    let config = match flags.to_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berth store: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio_runtime("store") {
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
        let failure = wait_for_signal_or_failure(server.store()).await;
        tracing::info!("stopping");
        server.shutdown().await;
        match failure {
            None => ExitCode::SUCCESS,
            Some(reason) => {
                eprintln!("berth store: {reason}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Waits for SIGINT or SIGTERM (`None`), or for the replica's Raft core to stop on an
/// error (why, naming the file and the error where a disk failed). A replica whose
/// core stopped cannot take part any more: its process exits, non-zero, so that a
/// supervisor restarts it, instead of answering on as a zombie.
pub async fn wait_for_signal_or_failure(store: &crate::Store) -> Option<String> {
    tokio::select! {
        () = wait_for_signal() => None,
        reason = store.raft_stopped() => {
            // A disk that filled is named with the file that could not be written.
            let full: Vec<String> = store.space_reports().iter().map(ToString::to_string).collect();
            let full = if full.is_empty() { String::new() } else { format!(" (out of space: {})", full.join("; ")) };
            let reason = format!(
                "the raft core stopped: {reason}{full}; exiting so that a supervisor restarts this replica"
            );
            tracing::error!("{reason}");
            Some(reason)
        }
    }
}

/// The multi-threaded runtime a long-running command runs on.
pub fn tokio_runtime(command: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("berth {command}: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// The runtime of a store replica that shares its process with other work (`berth
/// server`): threads named `store` that the process's other runtime cannot starve.
pub fn store_runtime(command: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("store")
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("berth {command}: cannot start the store's runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Logs to stderr at etcd's `--log-level` (its panic levels read as `error`);
/// `RUST_LOG` overrides it.
pub fn init_logging(level: &str) {
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
