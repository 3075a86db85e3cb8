//! `berth server`: a control-plane replica. A store replica (etcd's flags; its
//! etcd API stays open for `etcdctl`), the API server, and — while this replica is the
//! Raft leader — the controllers and the scheduler, fenced by a leadership record
//! written through the log with the leader's term.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use berth_store::{Server, Store};

use super::take_flag;
use berth_apiserver::ApiServer;
use berth_client::kv::{Kv, KvError};
use berth_control_plane::ControlSettings;
use berth_scheduler::Strategy;
use berth_store::flags::{self, FlagError};

pub const SERVER_USAGE: &str = "\
berth server: a control-plane replica (store + API server + leader-only controllers)

Usage: berth server [store flags] [server flags]

Server flags:
  --api-listen ADDR                     where the API server listens (default 127.0.0.1:8080)
  --node-monitor-grace-period DURATION  how long a node may miss its heartbeat before it is
                                        NotReady and its pods move (default 10s)
  --scheduler-strategy spread|binpack   spread (least allocated, default) or bin-pack

Store flags are etcd's; see `berth store --help`.
";

pub struct ServerFlags {
    pub api_listen: SocketAddr,
    pub settings: ControlSettings,
}

/// Takes the server's own flags out of `args`, leaving the store's.
pub fn parse_server_flags(args: &mut Vec<String>) -> Result<ServerFlags, String> {
    let api_listen = match take_flag(args, "api-listen")? {
        Some(v) => v
            .parse()
            .map_err(|e| format!("--api-listen {v:?}: not an address such as 127.0.0.1:8080 ({e})"))?,
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let mut settings = ControlSettings::default();
    if let Some(v) = take_flag(args, "node-monitor-grace-period")? {
        let ms = flags::parse_duration_ms(&v).map_err(|e| format!("--node-monitor-grace-period: {e}"))?;
        if ms == 0 {
            return Err("--node-monitor-grace-period must be more than 0".into());
        }
        settings.node_monitor_grace_period = Duration::from_millis(ms);
    }
    if let Some(v) = take_flag(args, "scheduler-strategy")? {
        settings.scheduler_strategy = match v.as_str() {
            "spread" => Strategy::Spread,
            "binpack" | "bin-pack" => Strategy::BinPack,
            other => return Err(format!("--scheduler-strategy {other:?}: must be spread or binpack")),
        };
    }
    Ok(ServerFlags { api_listen, settings })
}

pub fn run(args: &[String]) -> ExitCode {
    let mut args = args.to_vec();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{SERVER_USAGE}");
        return ExitCode::SUCCESS;
    }
    let server_flags = match parse_server_flags(&mut args) {
        Ok(f) => f,
        Err(e) => {
            berth_cli::err_line(format_args!("berth server: {e}"));
            return ExitCode::from(2);
        }
    };
    let flags = match flags::parse_store_flags(&args) {
        Ok(flags) => flags,
        Err(FlagError::Help) => {
            print!("{SERVER_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            berth_cli::err_line(format_args!("berth server: {e}"));
            return ExitCode::from(2);
        }
    };
    super::init_logging(&flags.log_level);
    let config = match flags.to_config() {
        Ok(config) => config,
        Err(e) => {
            berth_cli::err_line(format_args!("berth server: {e}"));
            return ExitCode::from(2);
        }
    };
    let runtime = match super::tokio_runtime("server") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(server_flags.api_listen).await {
            Ok(l) => l,
            Err(e) => {
                berth_cli::err_line(format_args!(
                    "berth server: cannot listen on {} (--api-listen): {e}",
                    server_flags.api_listen
                ));
                return ExitCode::FAILURE;
            }
        };
        let server = match Server::start(config.clone()).await {
            Ok(server) => server,
            Err(e) => {
                berth_cli::err_line(format_args!("berth server: {e}"));
                return ExitCode::FAILURE;
            }
        };
        // The API server and the controllers reach the store through this replica.
        let kv = match Kv::connect(&config.advertise_client_urls[..1]) {
            Ok(kv) => kv,
            Err(e) => {
                berth_cli::err_line(format_args!("berth server: {e}"));
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(berth_apiserver::serve(listener, ApiServer::new(kv.clone())));
        let control = tokio::spawn(lead_when_leader(
            server.store().clone(),
            kv,
            flags.name.clone(),
            server_flags.settings,
        ));
        tracing::info!(
            name = %flags.name,
            api = %server_flags.api_listen,
            clients = ?flags.listen_client_urls,
            "serving"
        );
        super::wait_for_signal().await;
        tracing::info!("stopping");
        control.abort();
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Runs the controllers and the scheduler for as long as this replica leads, with
/// a fresh leadership record (and full reconcile) for each term it leads.
async fn lead_when_leader(store: Store, kv: Kv, name: String, settings: ControlSettings) {
    let mut metrics = store.raft().metrics();
    loop {
        let term = {
            let m = metrics.borrow_and_update();
            m.state.is_leader().then_some(m.current_term)
        };
        let Some(term) = term else {
            if metrics.changed().await.is_err() {
                return;
            }
            continue;
        };
        let fence = match berth_control_plane::claim(&kv, term, &name).await {
            Ok(fence) => fence,
            Err(KvError::Fenced) => {
                tracing::info!(term, "a newer leader holds the leadership record");
                let _ = metrics.changed().await;
                continue;
            }
            Err(e) => {
                tracing::warn!(term, error = %e, "cannot write the leadership record yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        tracing::info!(term, "leading: starting the controllers and the scheduler");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut control = tokio::spawn(berth_control_plane::run_while_leader(
            kv.clone(),
            fence,
            settings.clone(),
            stop_rx,
        ));
        loop {
            tokio::select! {
                _ = &mut control => break,
                changed = metrics.changed() => {
                    let still = {
                        let m = metrics.borrow();
                        m.state.is_leader() && m.current_term == term
                    };
                    if changed.is_err() || !still {
                        let _ = stop_tx.send(true);
                        let _ = (&mut control).await;
                        break;
                    }
                }
            }
        }
        tracing::info!(term, "no longer leading: the controllers and the scheduler stopped");
    }
}
