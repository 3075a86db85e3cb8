//! `berth server`: a control-plane replica. A store replica (etcd's flags; its
//! etcd API stays open for `etcdctl`), the API server, and — while this replica is the
//! Raft leader — the controllers and the scheduler, fenced by a leadership record
//! written through the log with the leader's term.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth_store::{Server, Store};

use super::api_security::ApiSecurityFlags;
use super::server_usage::print_usage;
use super::store_client::{self, StoreClientFlags};
use super::take_flag;
use berth_apiserver::{ApiServer, Settings};
use berth_client::envelope::{self, Envelope};
use berth_client::kv::{Kv, KvError};
use berth_control_plane::ControlSettings;
use berth_scheduler::Strategy;
use berth_store::flags::{self, FlagError};

pub struct ServerFlags {
    pub api_listen: SocketAddr,
    /// The API server's limits (its store request limit comes from the store's flags).
    pub api: Settings,
    pub settings: ControlSettings,
    /// `--encryption-provider-config`: the keys of Secrets' encryption at rest.
    pub encryption_provider_config: Option<std::path::PathBuf>,
    /// HTTPS and authentication.
    pub security: ApiSecurityFlags,
    /// How the API server and the controllers reach an https store.
    pub store_client: StoreClientFlags,
    /// `--insecure-store-port`: a store port open to other hosts beside an
    /// authenticating API is meant.
    pub insecure_store_port: bool,
}

fn count_flag(args: &mut Vec<String>, name: &str, min: usize) -> Result<Option<usize>, String> {
    let Some(v) = take_flag(args, name)? else {
        return Ok(None);
    };
    match v.parse::<usize>() {
        Ok(n) if n >= min => Ok(Some(n)),
        _ => Err(format!("--{name} {v:?}: must be a whole number of at least {min}")),
    }
}

fn duration_flag(args: &mut Vec<String>, name: &str) -> Result<Option<Duration>, String> {
    let Some(v) = take_flag(args, name)? else {
        return Ok(None);
    };
    match flags::parse_duration_ms(&v) {
        Ok(0) => Err(format!("--{name} must be more than 0")),
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(e) => Err(format!("--{name}: {e}")),
    }
}

/// A boolean flag as Go's flag package takes one: `--name` alone is true, or
/// `--name=true|false`; the last one given counts.
fn take_switch(args: &mut Vec<String>, name: &str) -> Result<Option<bool>, String> {
    let mut value = None;
    let mut kept = Vec::with_capacity(args.len());
    for arg in args.drain(..) {
        let bare = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        match bare.map(|rest| rest.strip_prefix(name)) {
            Some(Some("")) => value = Some(true),
            Some(Some(rest)) if rest.starts_with('=') => {
                value = Some(match &rest[1..] {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => return Err(format!("--{name} {other:?}: must be true or false")),
                })
            }
            _ => kept.push(arg),
        }
    }
    *args = kept;
    Ok(value)
}

/// The API server's limits, with kube-apiserver's flag names where it has them.
fn parse_api_flags(args: &mut Vec<String>) -> Result<Settings, String> {
    let mut api = Settings::default();
    if let Some(n) = count_flag(args, "max-requests-inflight", 0)? {
        api.max_requests_inflight = n;
    }
    if let Some(n) = count_flag(args, "max-mutating-requests-inflight", 0)? {
        api.max_mutating_requests_inflight = n;
    }
    if let Some(d) = duration_flag(args, "request-timeout")? {
        api.request_timeout = d;
    }
    if let Some(d) = duration_flag(args, "api-read-header-timeout")? {
        api.read_header_timeout = d;
    }
    if let Some(d) = duration_flag(args, "api-idle-timeout")? {
        api.idle_timeout = d;
    }
    if let Some(n) = count_flag(args, "api-max-connections", 1)? {
        api.max_connections = n;
    }
    if let Some(v) = take_flag(args, "service-cluster-ip-range")? {
        let range: berth_api::cidr::Ipv4Cidr = v.parse().map_err(|e| format!("--service-cluster-ip-range: {e}"))?;
        if range.prefix_len() > 29 {
            return Err(format!("--service-cluster-ip-range {v}: too small (at most /29)"));
        }
        api.service_network.cluster_ip_range = range;
    }
    if let Some(v) = take_flag(args, "service-node-port-range")? {
        api.service_network.node_ports =
            berth_apiserver::services::parse_port_range(&v).map_err(|e| format!("--service-node-port-range: {e}"))?;
    }
    if let Some(v) = take_flag(args, "pod-security-default-enforce")? {
        api.admission.pod_security_default = berth_api::admission::pod_security::Level::parse(&v).ok_or_else(|| {
            format!("--pod-security-default-enforce {v:?}: must be privileged, baseline or restricted")
        })?;
    }
    for (flag, seconds) in [
        (
            "default-not-ready-toleration-seconds",
            &mut api.admission.default_not_ready_toleration_seconds,
        ),
        (
            "default-unreachable-toleration-seconds",
            &mut api.admission.default_unreachable_toleration_seconds,
        ),
    ] {
        if let Some(v) = take_flag(args, flag)? {
            *seconds = Some(
                v.parse()
                    .map_err(|_| format!("--{flag} {v:?}: expected a number of seconds"))?,
            );
        }
    }
    if let Some(v) = take_flag(args, "advertise-address")? {
        let ip: std::net::Ipv4Addr = v
            .parse()
            .map_err(|_| format!("--advertise-address {v:?}: expected an IPv4 address"))?;
        if ip.is_loopback() || ip.is_unspecified() {
            return Err(format!("--advertise-address {v}: pods cannot reach it"));
        }
        api.advertise_address = Some(ip);
    }
    if let Some(on) = take_switch(args, "isolate-namespaces")? {
        api.isolate_namespaces = on;
    }
    if let Some(on) = take_switch(args, "watch-cache")? {
        api.watch_cache = on;
    }
    if let Some(v) = take_flag(args, "authorization-mode")? {
        api.authorization_modes =
            berth_apiserver::auth::authz::parse_modes(&v).map_err(|e| format!("--authorization-mode: {e}"))?;
    }
    Ok(api)
}

/// Takes the server's own flags out of `args`, leaving the store's.
pub fn parse_server_flags(args: &mut Vec<String>) -> Result<ServerFlags, String> {
    let api_listen = match take_flag(args, "api-listen")? {
        Some(v) => v
            .parse()
            .map_err(|e| format!("--api-listen {v:?}: not an address such as 127.0.0.1:8080 ({e})"))?,
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let mode_given = args
        .iter()
        .any(|a| a.trim_start_matches('-').starts_with("authorization-mode"));
    let mut api = parse_api_flags(args)?;
    let mut settings = ControlSettings::default();
    if let Some(v) = take_flag(args, "node-monitor-grace-period")? {
        let ms = flags::parse_duration_ms(&v).map_err(|e| format!("--node-monitor-grace-period: {e}"))?;
        if ms == 0 {
            return Err("--node-monitor-grace-period must be more than 0".into());
        }
        settings.node_monitor_grace_period = Duration::from_millis(ms);
    }
    if let Some(v) = take_flag(args, "horizontal-pod-autoscaler-sync-period")? {
        let ms = flags::parse_duration_ms(&v).map_err(|e| format!("--horizontal-pod-autoscaler-sync-period: {e}"))?;
        if ms == 0 {
            return Err("--horizontal-pod-autoscaler-sync-period must be more than 0".into());
        }
        settings.hpa_sync_period = Duration::from_millis(ms);
    }
    if let Some(v) = take_flag(args, "scheduler-strategy")? {
        settings.scheduler_strategy = match v.as_str() {
            "spread" => Strategy::Spread,
            "binpack" | "bin-pack" => Strategy::BinPack,
            other => return Err(format!("--scheduler-strategy {other:?}: must be spread or binpack")),
        };
    }
    if let Some(v) = take_flag(args, "cluster-cidr")? {
        settings.node_ipam.cluster_cidr = v.parse().map_err(|e| format!("--cluster-cidr: {e}"))?;
    }
    if let Some(v) = take_flag(args, "node-cidr-mask-size")? {
        settings.node_ipam.node_cidr_mask_size = v
            .parse()
            .map_err(|_| format!("--node-cidr-mask-size {v:?}: must be a prefix length such as 24"))?;
    }
    settings.node_ipam.validate()?;
    let encryption_provider_config = take_flag(args, "encryption-provider-config")?.map(Into::into);
    let security = ApiSecurityFlags::parse(args)?;
    // ServiceAccount admission, as kube-apiserver has it on; the token volume goes
    // into pods where tokens can be signed (the agents ask for them).
    api.admission.service_accounts = true;
    api.admission.mount_service_account_tokens = security.service_account_signing_key_file.is_some();
    // One level for both paths that create pods: the API server's and the controllers'.
    settings.admission = api.admission;
    let store_client = StoreClientFlags::take(args)?;
    let insecure_store_port = take_switch(args, "insecure-store-port")?.unwrap_or(false);
    // With users to tell apart, Node then RBAC decide by default (default deny);
    // without authentication every request is anonymous, and AlwaysAllow stays.
    if !mode_given && (security.client_ca_file.is_some() || security.token_auth_file.is_some()) {
        api.authorization_modes = berth_apiserver::auth::authz::SECURE_MODES.to_vec();
    }
    Ok(ServerFlags {
        api_listen,
        api,
        settings,
        encryption_provider_config,
        security,
        store_client,
        insecure_store_port,
    })
}

pub fn run(args: &[String]) -> ExitCode {
    let mut args = args.to_vec();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print_usage();
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
            print_usage();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            berth_cli::err_line(format_args!("berth server: {e}"));
            return ExitCode::from(2);
        }
    };
    super::init_logging(&flags.log_level);
    let envelope = match encryption(server_flags.encryption_provider_config.as_deref()) {
        Ok(envelope) => envelope,
        Err(e) => {
            berth_cli::err_line(format_args!("berth server: {e}"));
            return ExitCode::from(2);
        }
    };
    let api_authenticates =
        server_flags.security.client_ca_file.is_some() || server_flags.security.token_auth_file.is_some();
    if let Err(e) = super::store_exposure::check(api_authenticates, server_flags.insecure_store_port, &flags) {
        berth_cli::err_line(format_args!("berth server: {e}"));
        return ExitCode::from(2);
    }
    let config = match flags.to_config() {
        Ok(config) => config,
        Err(e) => {
            berth_cli::err_line(format_args!("berth server: {e}"));
            return ExitCode::from(2);
        }
    };
    let security = server_flags.security.tls().and_then(|tls| {
        if let Some(agents) = server_flags.security.agent_client_tls()? {
            berth_client::agents::use_tls(agents);
        }
        Ok((
            tls,
            server_flags.security.authenticator()?,
            server_flags.security.audit()?,
        ))
    });
    let mut server_flags = server_flags;
    let security = security.and_then(|security| {
        server_flags.settings.root_ca = server_flags.security.root_ca()?;
        Ok(security)
    });
    let (tls, authenticator, audit) = match security {
        Ok(security) => security,
        Err(e) => {
            berth_cli::err_line(format_args!("berth server: {e}"));
            return ExitCode::from(2);
        }
    };
    let runtime = match super::server_runtime::control_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // The store replica runs on threads of its own: the API server's and the
    // controllers' work (a scheduling pass over thousands of pods, a sweep of every
    // object) must not delay a heartbeat or a vote, or a busy leader loses its term.
    let store_runtime = match berth_store::role::store_runtime("server") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let store_threads = store_runtime.handle().clone();
    let code = runtime.block_on(async move {
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
        let server = match store_threads.spawn(Server::start(config.clone())).await {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => {
                berth_cli::err_line(format_args!("berth server: {e}"));
                return ExitCode::FAILURE;
            }
            Err(e) => {
                berth_cli::err_line(format_args!("berth server: the store did not start: {e}"));
                return ExitCode::FAILURE;
            }
        };
        // The API server and the controllers reach the store through this replica.
        let kv = match store_client::connect(&config.advertise_client_urls[..1], &server_flags.store_client) {
            Ok(kv) => match envelope {
                Some(envelope) => kv.with_envelope(envelope),
                None => kv,
            },
            Err(e) => {
                berth_cli::err_line(format_args!("berth server: {e}"));
                return ExitCode::FAILURE;
            }
        };
        let api = Settings {
            store_max_request_bytes: config.max_request_bytes,
            ..server_flags.api
        };
        tokio::spawn(berth_apiserver::serve(
            listener,
            ApiServer::with_settings(kv.clone(), api)
                .with_security(tls, authenticator)
                .with_audit(audit),
        ));
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
        let failure = berth_store::role::wait_for_signal_or_failure(server.store()).await;
        tracing::info!("stopping");
        control.abort();
        if let Err(e) = store_threads.spawn(server.shutdown()).await {
            tracing::warn!(error = %e, "the store's shutdown did not finish");
        }
        match failure {
            None => ExitCode::SUCCESS,
            Some(reason) => {
                eprintln!("berth server: {reason}");
                ExitCode::FAILURE
            }
        }
    });
    // The API's runtime first: nothing reaches the store once it is gone.
    drop(runtime);
    drop(store_runtime);
    code
}

/// The envelope of Secrets at rest from `--encryption-provider-config`; without
/// the flag, none, and a warning that Secrets are stored in plain text.
fn encryption(path: Option<&std::path::Path>) -> Result<Option<Arc<Envelope>>, String> {
    let Some(path) = path else {
        tracing::warn!(
            "no --encryption-provider-config: Secrets are stored in the store IN PLAIN TEXT, readable by \
             anyone who can read the store or its disk (give every replica the same EncryptionConfiguration \
             to encrypt them)"
        );
        return Ok(None);
    };
    let envelope = envelope::config::load(path).map_err(|e| format!("--encryption-provider-config {e}"))?;
    match envelope.sealing_key("/registry/secrets/") {
        Some(key) => tracing::info!(file = %path.display(), key, "Secrets are encrypted at rest"),
        None => tracing::warn!(
            file = %path.display(),
            "the encryption configuration's first provider for Secrets is identity: new Secrets are stored in plain text"
        ),
    }
    Ok(Some(Arc::new(envelope)))
}

/// Runs the controllers and the scheduler for as long as this replica leads, with
/// a fresh leadership record (and full reconcile) for each term it leads.
async fn lead_when_leader(store: Store, kv: Kv, name: String, settings: ControlSettings) {
    // The server's metrics: they change with the role and term, not with every
    // entry the store writes (a wake-up each, while this replica leads).
    let mut metrics = store.raft().server_metrics();
    loop {
        // The Raft leader id, as openraft orders leaders: the term, then the node id
        // (two candidates may both win one term, the greater id second).
        let leader_id = {
            let m = metrics.borrow_and_update();
            m.state.is_leader().then_some((m.vote.leader_id().get_term(), m.id))
        };
        let Some((term, leader)) = leader_id else {
            if metrics.changed().await.is_err() {
                return;
            }
            continue;
        };
        let fence = match berth_control_plane::claim(&kv, term, leader, &name).await {
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
                        m.state.is_leader() && m.vote.leader_id().get_term() == term
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(ServerFlags, Vec<String>), String> {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse_server_flags(&mut args).map(|flags| (flags, args))
    }

    #[test]
    fn the_api_limits_take_kube_apiservers_flags() {
        let (flags, rest) = parse(&[
            "--max-requests-inflight=10",
            "--max-mutating-requests-inflight",
            "0",
            "--request-timeout=1m30s",
            "--api-read-header-timeout=5s",
            "--api-idle-timeout",
            "2m",
            "--api-max-connections=64",
            "--name",
            "s1",
        ])
        .unwrap();
        assert_eq!(rest, ["--name", "s1"], "the store's flags are left");
        assert_eq!(flags.api.max_requests_inflight, 10);
        assert_eq!(flags.api.max_mutating_requests_inflight, 0);
        assert_eq!(flags.api.request_timeout, Duration::from_secs(90));
        assert_eq!(flags.api.read_header_timeout, Duration::from_secs(5));
        assert_eq!(flags.api.idle_timeout, Duration::from_secs(120));
        assert_eq!(flags.api.max_connections, 64);
        let (defaults, _) = parse(&[]).unwrap();
        let mut expected = Settings::default();
        // A server admits pods as their ServiceAccounts, as kube-apiserver does.
        expected.admission.service_accounts = true;
        assert_eq!(defaults.api, expected);
        // Pods get the token volume only where tokens can be signed.
        let (signing, _) = parse(&["--service-account-signing-key-file", "sa.key"]).unwrap();
        assert!(signing.api.admission.mount_service_account_tokens);
        assert_eq!(signing.settings.admission, signing.api.admission);
        assert_eq!(defaults.api.max_requests_inflight, 400);
        assert_eq!(defaults.api.request_timeout, Duration::from_secs(60));
        for (bad, named) in [
            (&["--max-requests-inflight", "-1"][..], "--max-requests-inflight \"-1\""),
            (&["--api-max-connections=0"][..], "--api-max-connections \"0\""),
            (&["--request-timeout=0"][..], "--request-timeout must be more than 0"),
            (&["--api-idle-timeout=soon"][..], "--api-idle-timeout"),
        ] {
            let error = parse(bad).err().unwrap();
            assert!(error.contains(named), "{bad:?}: {error}");
        }
    }

    #[test]
    fn the_service_network_takes_kube_apiservers_flags() {
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(
            defaults.api.service_network.cluster_ip_range.to_string(),
            "10.96.0.0/12"
        );
        assert_eq!(defaults.api.service_network.node_ports, (30000, 32767));
        let (flags, _) = parse(&[
            "--service-cluster-ip-range=10.100.0.0/16",
            "--service-node-port-range",
            "31000-31999",
        ])
        .unwrap();
        assert_eq!(flags.api.service_network.cluster_ip_range.to_string(), "10.100.0.0/16");
        assert_eq!(flags.api.service_network.node_ports, (31000, 31999));
        let error = parse(&["--service-node-port-range=9-1"]).err().unwrap();
        assert!(error.contains("--service-node-port-range"), "{error}");
        let (advertised, _) = parse(&["--advertise-address=10.0.0.7"]).unwrap();
        assert_eq!(advertised.api.advertise_address, Some([10, 0, 0, 7].into()));
        assert_eq!(defaults.api.advertise_address, None);
    }

    #[test]
    fn the_authorization_mode_is_kube_apiservers_flag() {
        use berth_apiserver::auth::authz::Mode;
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(defaults.api.authorization_modes, [Mode::AlwaysAllow]);
        let (rbac, _) = parse(&["--authorization-mode=RBAC"]).unwrap();
        assert_eq!(rbac.api.authorization_modes, [Mode::Rbac]);
        let (with_users, _) = parse(&["--token-auth-file=tokens.csv"]).unwrap();
        assert_eq!(
            with_users.api.authorization_modes,
            [Mode::Node, Mode::Rbac],
            "users: Node then RBAC by default"
        );
        let (told, _) = parse(&["--token-auth-file=tokens.csv", "--authorization-mode=AlwaysAllow"]).unwrap();
        assert_eq!(told.api.authorization_modes, [Mode::AlwaysAllow]);
        let (both, _) = parse(&["--authorization-mode", "AlwaysAllow,RBAC"]).unwrap();
        assert_eq!(both.api.authorization_modes, [Mode::AlwaysAllow, Mode::Rbac]);
        let (node, _) = parse(&["--authorization-mode=Node,RBAC"]).unwrap();
        assert_eq!(node.api.authorization_modes, [Mode::Node, Mode::Rbac]);
        let refused = parse(&["--authorization-mode=Webhook"]).err().unwrap();
        assert!(
            refused.contains("--authorization-mode: authorization mode \"Webhook\" is not implemented"),
            "{refused}"
        );
    }

    #[test]
    fn default_toleration_seconds_are_off_unless_given() {
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(defaults.settings.admission.default_not_ready_toleration_seconds, None);
        assert_eq!(defaults.settings.admission.default_unreachable_toleration_seconds, None);
        let (flags, _) = parse(&["--default-unreachable-toleration-seconds=300"]).unwrap();
        assert_eq!(
            flags.settings.admission.default_unreachable_toleration_seconds,
            Some(300)
        );
        assert_eq!(flags.api.admission.default_unreachable_toleration_seconds, Some(300));
        let refused = parse(&["--default-not-ready-toleration-seconds=soon"]).err().unwrap();
        assert!(
            refused.contains("--default-not-ready-toleration-seconds \"soon\""),
            "{refused}"
        );
    }

    #[test]
    fn the_default_pod_security_level_is_a_flag_for_both_paths_that_create_pods() {
        use berth_api::admission::pod_security::Level;
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(defaults.api.admission.pod_security_default, Level::Baseline);
        assert_eq!(defaults.settings.admission.pod_security_default, Level::Baseline);
        let (flags, _) = parse(&["--pod-security-default-enforce=privileged"]).unwrap();
        assert_eq!(flags.api.admission.pod_security_default, Level::Privileged);
        assert_eq!(flags.settings.admission.pod_security_default, Level::Privileged);
        let error = parse(&["--pod-security-default-enforce=strict"]).err().unwrap();
        assert!(error.contains("must be privileged, baseline or restricted"), "{error}");
    }

    #[test]
    fn namespaces_are_isolated_only_when_asked() {
        let (defaults, _) = parse(&[]).unwrap();
        assert!(!defaults.api.isolate_namespaces);
        let (on, rest) = parse(&["--isolate-namespaces", "--name=s1"]).unwrap();
        assert!(on.api.isolate_namespaces);
        assert_eq!(rest, ["--name=s1"]);
        let (off, _) = parse(&["--isolate-namespaces", "--isolate-namespaces=false"]).unwrap();
        assert!(!off.api.isolate_namespaces);
        assert!(
            defaults.api.watch_cache,
            "kube-apiserver's --watch-cache is on by default"
        );
        let (off, _) = parse(&["--watch-cache=false"]).unwrap();
        assert!(!off.api.watch_cache);
        let error = parse(&["--isolate-namespaces=maybe"]).err().unwrap();
        assert!(
            error.contains("--isolate-namespaces \"maybe\": must be true or false"),
            "{error}"
        );
    }

    #[test]
    fn the_encryption_configuration_takes_kube_apiservers_flag() {
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(defaults.encryption_provider_config, None);
        let (flags, rest) = parse(&["--encryption-provider-config", "/etc/berth/enc.yaml", "--name=s1"]).unwrap();
        assert_eq!(
            flags.encryption_provider_config.as_deref(),
            Some(std::path::Path::new("/etc/berth/enc.yaml"))
        );
        assert_eq!(rest, ["--name=s1"]);
        let error = encryption(Some(std::path::Path::new("/nonexistent/enc.yaml"))).unwrap_err();
        assert!(
            error.contains("--encryption-provider-config /nonexistent/enc.yaml"),
            "{error}"
        );
    }

    #[test]
    fn the_node_grace_period_is_10s_unless_the_flag_says_otherwise() {
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(
            defaults.settings.node_monitor_grace_period,
            Duration::from_secs(10),
            "berth's default, far below Kubernetes' 40 s"
        );
        let (flags, _) = parse(&["--node-monitor-grace-period=1m30s"]).unwrap();
        assert_eq!(flags.settings.node_monitor_grace_period, Duration::from_secs(90));
        let error = parse(&["--node-monitor-grace-period=0s"]).err().unwrap();
        assert!(
            error.contains("--node-monitor-grace-period must be more than 0"),
            "{error}"
        );
    }

    #[test]
    fn the_autoscalers_sync_period_is_kubernetes_15s_unless_the_flag_says_otherwise() {
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(defaults.settings.hpa_sync_period, Duration::from_secs(15));
        let (flags, _) = parse(&["--horizontal-pod-autoscaler-sync-period=2s"]).unwrap();
        assert_eq!(flags.settings.hpa_sync_period, Duration::from_secs(2));
        assert!(parse(&["--horizontal-pod-autoscaler-sync-period=0s"]).is_err());
    }

    #[test]
    fn the_cluster_cidr_and_mask_size_take_kube_controller_managers_flags() {
        let (defaults, _) = parse(&[]).unwrap();
        assert_eq!(defaults.settings.node_ipam.cluster_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(defaults.settings.node_ipam.node_cidr_mask_size, 24);
        let (flags, _) = parse(&["--cluster-cidr=10.32.0.0/12", "--node-cidr-mask-size", "26"]).unwrap();
        assert_eq!(flags.settings.node_ipam.cluster_cidr.to_string(), "10.32.0.0/12");
        assert_eq!(flags.settings.node_ipam.node_cidr_mask_size, 26);
        for (bad, named) in [
            (
                &["--cluster-cidr=10.244.1.0/16"][..],
                "--cluster-cidr: invalid CIDR address",
            ),
            (&["--node-cidr-mask-size=8"][..], "--node-cidr-mask-size 8"),
            (&["--node-cidr-mask-size=big"][..], "--node-cidr-mask-size \"big\""),
        ] {
            let error = parse(bad).err().unwrap();
            assert!(error.contains(named), "{bad:?}: {error}");
        }
    }
}
