//! `berth-bench traffic`: the traffic layer's figures on real containers.
//!
//! ```text
//!  set-up: test hosts (network namespaces on a bridge), a registry with the berth-echo
//!          image, one `berth server`, one `berth agent --runtime=runc` per host; a
//!          Deployment of --replicas berth-echo pods and its ClusterIP Service (cluster.rs)
//!  http:   from host-0, closed-loop clients (load.rs) to the cluster IP, then to the
//!          pods' IPs with the same spread (each kept-alive client to the pod its
//!          connection through the cluster IP reached; new connections in turn), --rounds
//!          times; keep-alive and a new connection per request
//!                                                    ──► req/s and p99, cluster/pod
//!  readiness: --changes times a pod made unready and ready again; from the pod's Ready
//!          condition in the API to its DNAT gone from (back in) every host's iptables
//!          (readiness.rs)                            ──► p50, p99
//!  dns:    --dns-services Services; closed-loop UDP clients on a host ask its agent's
//!          DNS server for them, and dnsmasq with the same records when installed (dns.rs)
//!                                                    ──► queries/s, p99
//!  stop:   the agents stop their pods; the hosts, registry and server go
//! ```

pub mod cluster;
pub mod dns;
pub mod load;
pub mod readiness;
pub mod volumes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;

use crate::compare::{ensure_berth, machine};
use crate::duration::parse_duration;
use crate::latency::{LatencySummary, ms};
use crate::report::{Report, json_line};
use cluster::{EchoPod, POD_PORT, SERVICE_PORT, TrafficCluster};
use load::{Load, Mode};

#[derive(clap::Args, Clone, Debug)]
pub struct TrafficOptions {
    /// Only these parts (repeat for several): http, readiness, dns, volumes.
    #[arg(long, value_parser = ["http", "readiness", "dns", "volumes"])]
    pub only: Vec<String>,

    /// Agent hosts (network namespaces), one agent each.
    #[arg(long, default_value_t = 3)]
    pub hosts: usize,

    /// berth-echo pods behind the Service.
    #[arg(long, default_value_t = 4)]
    pub replicas: usize,

    /// http: concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,

    /// http and dns: how long each measured turn lasts.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,

    /// http and dns: the uncounted start of each turn.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warm_up: Duration,

    /// http: turns of each target per mode (cluster IP, then pod IPs; for new
    /// connections the other way round every other round).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,

    /// readiness: changes measured (each one way and back).
    #[arg(long, default_value_t = 100)]
    pub changes: usize,

    /// dns: concurrent clients, each with its own UDP socket.
    #[arg(long, default_value_t = 16)]
    pub dns_clients: usize,

    /// dns: Services created for the clients to ask for.
    #[arg(long, default_value_t = 100)]
    pub dns_services: usize,

    /// volumes: pods mounting the Secret that is updated.
    #[arg(long, default_value_t = 100)]
    pub volume_pods: usize,

    /// volumes: updates of the Secret measured.
    #[arg(long, default_value_t = 10)]
    pub volume_updates: usize,

    /// The berth binary [default: the release build in this program's target directory].
    #[arg(long)]
    pub berth: Option<PathBuf>,

    /// The berth-echo binary [default: beside the berth binary; `cargo build --release
    /// -p berth-jepsen` builds it].
    #[arg(long)]
    pub echo: Option<PathBuf>,

    /// A flag for every `berth agent` (repeat for several).
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,

    /// Where the temporary dirs go [default: the system temp dir].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
}

impl TrafficOptions {
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == part)
    }
}

/// [`run`], stopped by Ctrl-C or SIGTERM (everything started is torn down).
pub async fn run_until_interrupted(options: &TrafficOptions) -> anyhow::Result<()> {
    crate::compare::until_interrupted(run(options)).await
}

pub async fn run(options: &TrafficOptions) -> anyhow::Result<()> {
    ensure!(
        options.hosts >= 1 && options.replicas >= 1,
        "--hosts and --replicas must be at least 1"
    );
    if cfg!(debug_assertions) {
        eprintln!("warning: berth-bench is a debug build; run it with --release for real numbers");
    }
    let berth = ensure_berth(options.berth.as_deref(), false)?;
    let echo = options
        .echo
        .clone()
        .unwrap_or_else(|| berth.with_file_name("berth-echo"));
    ensure!(
        echo.is_file(),
        "{} is missing: build it with `cargo build --release -p berth-jepsen`, or pass --echo",
        echo.display()
    );
    let data_root = options.data_root.clone().unwrap_or_else(std::env::temp_dir);
    let temp = tempfile::Builder::new()
        .prefix("berth-bench-traffic-")
        .tempdir_in(&data_root)
        .with_context(|| format!("creating a temp dir in {}", data_root.display()))?;
    let facts: Vec<String> = machine::describe(temp.path())
        .into_iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    eprintln!("-- machine: {}", facts.join("; "));
    let mut cluster = TrafficCluster::start(&berth, &echo, temp.path(), options.hosts, &options.agent_args).await?;
    eprintln!(
        "-- {} hosts on bridge {}, a server, a registry; {} berth-echo pods",
        options.hosts,
        cluster.network.bridge(),
        options.replicas
    );
    let measured = measure(&mut cluster, options, temp.path()).await;
    if measured.is_err() {
        eprintln!("{}", cluster.log_tails());
    }
    eprintln!("-- stopping the agents and their pods");
    drop(cluster);
    measured
}

async fn measure(cluster: &mut TrafficCluster, options: &TrafficOptions, dir: &Path) -> anyhow::Result<()> {
    let (cluster_ip, pods) = cluster.deploy_echo(options.replicas).await?;
    let spread: Vec<String> = pods.iter().map(|p| format!("{} on host-{}", p.ip, p.host)).collect();
    eprintln!("-- Service {cluster_ip}:{SERVICE_PORT}; pods {}", spread.join(", "));
    if options.runs("http") {
        http(cluster, options, cluster_ip, &pods)?;
    }
    if options.runs("readiness") {
        eprintln!("-- readiness: {} changes, each way", options.changes);
        let result = readiness::measure(cluster, &pods, options.changes).await?;
        print_readiness(&result, options.changes);
    }
    if options.runs("dns") {
        dns(cluster, options, &pods, dir).await?;
    }
    if options.runs("volumes") {
        eprintln!(
            "-- volumes: a Secret mounted by {} pods, updated {} times",
            options.volume_pods, options.volume_updates
        );
        let updates = volumes::measure(cluster, options.volume_pods, options.volume_updates).await?;
        print_volumes(&updates, options);
    }
    Ok(())
}

/// How long the cluster IP may take to answer once its endpoints are ready.
const SERVICE_ROUTED_WITHIN: Duration = Duration::from_secs(30);

fn http(
    cluster: &TrafficCluster,
    options: &TrafficOptions,
    cluster_ip: std::net::Ipv4Addr,
    pods: &[EchoPod],
) -> anyhow::Result<()> {
    let client = cluster.network.host(0).clone();
    let direct: Vec<SocketAddr> = pods.iter().map(|p| SocketAddr::from((p.ip, POD_PORT))).collect();
    let service = vec![SocketAddr::from((cluster_ip, SERVICE_PORT))];
    let run = |targets: Vec<SocketAddr>, mode: Mode, what: &str, round: usize| -> anyhow::Result<load::Ran> {
        eprintln!(
            "-- http {}: {} clients to the {what}, round {}",
            mode.name(),
            options.connections,
            round + 1
        );
        let load = Load {
            targets,
            connections: options.connections,
            mode,
            warm_up: options.warm_up,
            duration: options.duration,
            timeout: Duration::from_secs(5),
        };
        client
            .spawn_inside(move || load::run_blocking(&load))
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
            .context("entering host-0")?
    };
    // Measured once the Service answers from the client's host: the cluster waited
    // for its EndpointSlice, which is the API's; each host's proxy programs its rules
    // a moment later (longer on a loaded machine).
    let deadline = std::time::Instant::now() + SERVICE_ROUTED_WITHIN;
    loop {
        let probe = Load {
            targets: service.clone(),
            connections: 1,
            mode: Mode::NewConnection,
            warm_up: Duration::ZERO,
            duration: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
        };
        let answered = client
            .spawn_inside(move || load::run_blocking(&probe))
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
            .context("entering host-0")??;
        if !answered.outcome.latencies.is_empty() && answered.outcome.errors == 0 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the Service {cluster_ip}:{SERVICE_PORT} did not answer from host-0 within {SERVICE_ROUTED_WITHIN:?}"
        );
    }
    let mut rows = Vec::new();
    for mode in [Mode::KeepAlive, Mode::NewConnection] {
        let (mut to_service, mut to_pods) = (load::Ran::default(), load::Ran::default());
        for round in 0..options.rounds.max(1) {
            // New connections: every other round goes to the pods first, so that what
            // one turn leaves (TIME_WAIT sockets, conntrack entries) weighs on both.
            let pods_first = mode == Mode::NewConnection && round % 2 == 1;
            let early = if pods_first {
                Some(run(direct.clone(), mode, "pod IPs", round)?)
            } else {
                None
            };
            let through_service = run(service.clone(), mode, "cluster IP", round)?;
            // The same spread straight to the pods: each kept-alive client to the pod
            // its connection through the cluster IP reached; new connections in turn.
            let targets = match mode {
                Mode::KeepAlive => through_service
                    .first_pods
                    .iter()
                    .enumerate()
                    .map(|(index, pod)| {
                        pod.as_ref()
                            .and_then(|name| pods.iter().position(|p| &p.name == name))
                            .map_or(direct[index % direct.len()], |found| direct[found])
                    })
                    .collect(),
                Mode::NewConnection => direct.clone(),
            };
            let straight = match early {
                Some(straight) => straight,
                None => run(targets, mode, "pod IPs", round)?,
            };
            for (total, part) in [(&mut to_service, through_service), (&mut to_pods, straight)] {
                let elapsed = total.outcome.elapsed + part.outcome.elapsed;
                total.outcome.merge(part.outcome);
                total.outcome.elapsed = elapsed;
                for (pod, count) in part.answers {
                    *total.answers.entry(pod).or_default() += count;
                }
            }
        }
        let report = |name: &str, targets: &[SocketAddr], ran: load::Ran| {
            let endpoints: Vec<String> = targets.iter().map(ToString::to_string).collect();
            Report::new(
                &format!("http-{name}-{}", mode.name()),
                &endpoints,
                options.connections,
                options.connections,
                ran.outcome,
            )
            .with_detail("answers_by_pod", json!(ran.answers))
        };
        rows.push((
            mode,
            report("pod-ip", &direct, to_pods),
            report("cluster-ip", &service, to_service),
        ));
    }
    println!(
        "\n| mode | req/s pod IPs | req/s cluster IP | cluster/pod | p99 ms pod IPs | p99 ms cluster IP | cluster/pod | errors |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (mode, pods_report, service_report) in &rows {
        let (p99_pods, p99_service) = (ms(pods_report.latency.p99), ms(service_report.latency.p99));
        println!(
            "| {} | {:.0} | {:.0} | {:.3} | {:.2} | {:.2} | {:.3} | {} |",
            mode.name(),
            pods_report.throughput_rps(),
            service_report.throughput_rps(),
            service_report.throughput_rps() / pods_report.throughput_rps().max(f64::MIN_POSITIVE),
            p99_pods,
            p99_service,
            p99_service / p99_pods.max(f64::MIN_POSITIVE),
            pods_report.errors + service_report.errors,
        );
    }
    for (_, pods_report, service_report) in &rows {
        println!("{}", pods_report.to_json_line(&[]));
        println!("{}", service_report.to_json_line(&[]));
    }
    Ok(())
}

fn print_volumes(updates: &volumes::Updates, options: &TrafficOptions) {
    let row = |name: &str, summary: LatencySummary| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(summary.min),
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max)
        );
        json!({"p50": ms(summary.p50), "p99": ms(summary.p99), "min": ms(summary.min), "max": ms(summary.max)})
    };
    println!(
        "\n| {} updates of a Secret mounted by {} pods: from the API's answer | min ms | p50 ms | p99 ms | max ms |",
        options.volume_updates, options.volume_pods
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let each = row(
        "the new value in one pod's file",
        LatencySummary::from_samples(updates.to_each_pod.clone()),
    );
    let every = row(
        "the new value in every pod's file",
        LatencySummary::from_samples(updates.to_every_pod.clone()),
    );
    println!(
        "{}",
        json_line([
            ("workload".to_owned(), json!("secret-update-to-volumes")),
            ("pods".to_owned(), json!(options.volume_pods)),
            ("updates".to_owned(), json!(options.volume_updates)),
            ("each_pod_ms".to_owned(), each),
            ("every_pod_ms".to_owned(), every),
        ])
    );
}

fn print_readiness(result: &readiness::Readiness, changes: usize) {
    let row = |name: &str, summary: LatencySummary| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(summary.min),
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max)
        );
        json!({"p50": ms(summary.p50), "p99": ms(summary.p99), "min": ms(summary.min), "max": ms(summary.max)})
    };
    println!("\n| {changes} changes: from the pod's Ready condition in the API | min ms | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let summary = readiness::Readiness::summary;
    let leave = row(
        "not ready: its DNAT gone from every host",
        summary(&result.leave.to_every_proxy),
    );
    let leave_slice = row(
        "  of which: the EndpointSlice says not ready",
        summary(&result.leave.to_slice),
    );
    let back = row(
        "ready: its DNAT back on every host",
        summary(&result.back.to_every_proxy),
    );
    let back_slice = row(
        "  of which: the EndpointSlice says ready",
        summary(&result.back.to_slice),
    );
    let polls: Vec<String> = result.poll_ms.iter().map(|p| format!("{p:.1}")).collect();
    println!(
        "(one `iptables-save -t nat` poll took {} ms on average, per host)",
        polls.join(", ")
    );
    println!(
        "{}",
        json_line([
            ("workload".to_owned(), json!("readiness-to-proxy")),
            ("changes".to_owned(), json!(changes)),
            ("leave_ms".to_owned(), leave),
            ("leave_slice_ms".to_owned(), leave_slice),
            ("back_ms".to_owned(), back),
            ("back_slice_ms".to_owned(), back_slice),
            ("poll_ms".to_owned(), json!(result.poll_ms)),
        ])
    );
}

async fn dns(
    cluster: &mut TrafficCluster,
    options: &TrafficOptions,
    pods: &[EchoPod],
    dir: &Path,
) -> anyhow::Result<()> {
    ensure!(options.dns_services >= 1, "--dns-services must be at least 1");
    eprintln!("-- dns: {} Services", options.dns_services);
    let records = dns::create_services(cluster, options.dns_services).await?;
    // A host with a pod: its pod bridge has the gateway address the server listens on.
    let index = pods[0].host;
    let host = cluster.network.host(index).clone();
    let api = &mut cluster::Api::open(&cluster.api_authority).await?;
    let node = api.get_json(&format!("/api/v1/nodes/host-{index}")).await?;
    let cidr = node["spec"]["podCIDR"].as_str().context("the node has no pod CIDR")?;
    let network: std::net::Ipv4Addr = cidr.split('/').next().unwrap_or_default().parse()?;
    let gateway = std::net::Ipv4Addr::from(u32::from(network) + 1);
    let server = SocketAddr::from((gateway, 53));
    let last = &records.last().expect("at least one Service").0;
    dns::wait_known(&host, server, last)?;
    let queries = dns::Queries {
        names: records.iter().map(|(name, _)| name.clone()).collect(),
        clients: options.dns_clients,
        warm_up: options.warm_up,
        duration: options.duration,
    };
    eprintln!(
        "-- dns: {} clients to host-{index}'s server {server}",
        options.dns_clients
    );
    let berth = Report::new(
        "dns-berth",
        &[server.to_string()],
        options.dns_clients,
        options.dns_clients,
        dns::measure(&host, server, &queries)?,
    );
    let peer = match dns::start_peer(&host, dir, &records)? {
        Some((mut process, address)) => {
            dns::wait_known(&host, address, last)?;
            eprintln!("-- dns: the same clients to dnsmasq {address}");
            let outcome = dns::measure(&host, address, &queries);
            process.stop(Duration::from_secs(5));
            Some(Report::new(
                "dns-dnsmasq",
                &[address.to_string()],
                options.dns_clients,
                options.dns_clients,
                outcome?,
            ))
        }
        None => None,
    };
    println!("\n| DNS server | queries/s | p50 ms | p99 ms | errors |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for report in std::iter::once(&berth).chain(peer.as_ref()) {
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {} |",
            report.workload,
            report.throughput_rps(),
            ms(report.latency.p50),
            ms(report.latency.p99),
            report.errors
        );
    }
    match &peer {
        Some(peer) => println!(
            "berth/dnsmasq: queries/s {:.3}, p99 {:.3}",
            berth.throughput_rps() / peer.throughput_rps().max(f64::MIN_POSITIVE),
            ms(berth.latency.p99) / ms(peer.latency.p99).max(f64::MIN_POSITIVE)
        ),
        None => println!("no peer: dnsmasq is not installed (Debian's dnsmasq-base)"),
    }
    println!("{}", berth.to_json_line(&[]));
    if let Some(peer) = &peer {
        println!("{}", peer.to_json_line(&[]));
    }
    Ok(())
}
