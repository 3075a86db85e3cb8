//! `berth-bench scale`: the control plane against many hollow nodes, as Kubernetes'
//! kubemark measures it.
//!
//! ```text
//!  start:   3 `berth server` replicas; one `berth agent --hollow N` through their API
//!           servers (a kubeconfig naming all three); wait for N Nodes Ready
//!  steady:  a lease interval to settle, then --steady with nothing but heartbeats:
//!           what one node costs (steady.rs: requests, store revisions and log
//!           entries, watch events per node and second, the servers' CPU)
//!  load:    a watch on the run's namespace (watch.rs); D Deployments of P/D replicas;
//!           a probe creates, updates and deletes ConfigMaps at --probe-rate, round
//!           robin over the replicas, until every pod is Running
//!  latency: --latency-pods one-pod Deployments at --latency-rate (latency_pods.rs:
//!           ClusterLoader2's density test reads the pod startup SLO on these)
//!  report:  placement throughput (pods bound / the time from the first pod seen to the
//!           last bound), pod startup p50/p99 (seen → reported Running and Ready),
//!           the latency pods' startup p50/p99, the probe's mutating calls p50/p99,
//!           each process's RSS and CPU time
//!           over the load (which one saturates), the hollow nodes' foreign events
//! ```

mod latency_pods;
mod steady;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, free_port};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::api::http::Connection;
use crate::api::server::{Memory, clock_ticks_per_second, cpu_ticks};
use crate::berth_binary::BerthBinary;
use crate::compare::cluster::{ELECTION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS};
use crate::duration::parse_duration;
use crate::latency::{LatencySummary, ms};
use watch::Seen;

const NAMESPACE: &str = "scale";
/// The prefix of the load's Deployments' (and so their pods') names.
const LOAD_PREFIX: &str = "load-";

#[derive(clap::Args, Clone, Debug)]
pub struct ScaleOptions {
    /// Hollow nodes, all in one `berth agent --hollow` process.
    #[arg(long, default_value_t = 1000)]
    pub nodes: u32,
    /// Pods in all, over --deployments Deployments (0: no load, the steady state only).
    #[arg(long, default_value_t = 10_000)]
    pub pods: u64,
    #[arg(long, default_value_t = 10)]
    pub deployments: u64,
    /// One-pod Deployments created after the load, whose pods' startup is the
    /// Kubernetes SLO's measure (ClusterLoader2's density test: 500 at 5 a second);
    /// 0: none.
    #[arg(long, default_value_t = 500)]
    pub latency_pods: u64,
    /// How many latency Deployments are created a second.
    #[arg(long, default_value_t = 5.0)]
    pub latency_rate: f64,
    /// The hollow nodes' Lease duration (renewed every quarter of it; a kubelet's is 40s).
    #[arg(long, default_value = "40s")]
    pub lease_ttl: String,
    /// Mutating calls per second of the latency probe (ConfigMap create, update, delete).
    #[arg(long, default_value_t = 10)]
    pub probe_rate: u32,
    /// How long the steady state is watched, once every node is Ready, before the
    /// load (0s: not at all).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub steady: Duration,
    /// How long the nodes may take to be Ready, and the pods to be Running.
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    pub timeout: Duration,
    #[command(flatten)]
    pub binary: BerthBinary,
}

/// [`run`], stopped by Ctrl-C or SIGTERM (everything started is torn down).
pub async fn run_until_interrupted(options: &ScaleOptions) -> anyhow::Result<()> {
    crate::compare::until_interrupted(run(options)).await
}

/// One process's RSS and CPU seconds over the load.
struct Usage {
    name: String,
    memory: Memory,
    cpu_s: f64,
}

fn proc_usage(name: &str, pid: u32, cpu_before: f64) -> anyhow::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    let memory = Memory::parse(&status).context("no VmRSS in /proc/PID/status")?;
    Ok(Usage {
        name: name.to_owned(),
        memory,
        cpu_s: cpu_seconds(pid)? - cpu_before,
    })
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    let ticks = cpu_ticks(&stat).context("no utime in /proc/PID/stat")?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

pub async fn run(options: &ScaleOptions) -> anyhow::Result<()> {
    ensure!(
        options.pods == 0 || (options.deployments >= 1 && options.pods >= options.deployments),
        "--pods must be 0 or at least --deployments"
    );
    parse_duration(&options.lease_ttl).map_err(|e| anyhow::anyhow!("--lease-ttl: {e}"))?;
    let (binary, temp) = options.binary.prepare("berth-bench-scale-")?;
    let spec = ClusterSpec::new(System::BerthServer, &binary, 3)
        .dir(temp.path())
        .token(format!("bench-scale-{}", std::process::id()))
        .env("RUST_LOG", QUIET_RAFT_LOG)
        .args([
            "--initial-cluster-state".to_owned(),
            "new".to_owned(),
            "--heartbeat-interval".to_owned(),
            HEARTBEAT_INTERVAL_MS.to_string(),
            "--election-timeout".to_owned(),
            ELECTION_TIMEOUT_MS.to_string(),
            // Room for 8192 nodes' /24 blocks: node IPAM gives every hollow Node one
            // (the default /16 holds 256, and the rest would be CIDRNotAvailable).
            "--cluster-cidr".to_owned(),
            "10.0.0.0/11".to_owned(),
        ]);
    let mut servers = Cluster::new(spec)?;
    let apis: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    for (replica, api) in servers.replicas.iter_mut().zip(&apis) {
        replica.args = vec![format!("--api-listen={api}")];
    }
    servers.start_all()?;
    servers.wait_for_leader().await?;
    for api in &apis {
        wait_ready(api, options.timeout).await?;
    }
    let kubeconfig = temp.path().join("hollow.kubeconfig");
    let urls: Vec<String> = apis.iter().map(|a| format!("http://{a}")).collect();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: {}\nusers:\n- name: hollow\n  user: {{}}\ncontexts:\n- name: hollow\n  context:\n    cluster: berth\n    user: hollow\ncurrent-context: hollow\n",
            urls.join(",")
        ),
    )?;
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut hollow = Process::new("hollow", &binary, temp.path().join("hollow.log"))
        .with_args([
            "agent".to_owned(),
            format!("--hollow={}", options.nodes),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--listen={metrics}"),
            format!("--lease-ttl={}", options.lease_ttl),
        ])
        .with_env("RUST_LOG", "warn");
    hollow.start()?;
    let result = measure(options, &mut servers, &mut hollow, &apis, &metrics).await;
    hollow.kill();
    match &result {
        Err(_) => {
            eprintln!("{}", servers.log_tails(20));
            eprintln!("hollow: {}", hollow.log_tail(20).join("\n"));
            // The whole logs (and the replicas' data) stay for a look at what went wrong.
            eprintln!("the run's logs and data are kept in {}", temp.keep().display());
        }
        // Leadership moved under load: the logs say why.
        Ok(elections) if *elections > 0 => {
            eprintln!(
                "{elections} election(s) during the run; its logs and data are kept in {}",
                temp.keep().display()
            );
        }
        Ok(_) => {}
    }
    result.map(drop)
}

async fn wait_ready(api: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut c) = Connection::open(api).await
            && c.get("/readyz").await.is_ok_and(|a| a.status == 200)
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the API server at {api} is not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the load and prints its figures; returns the elections during it (Raft
/// term increases, from the load's start to the end of the latency pods).
async fn measure(
    options: &ScaleOptions,
    servers: &mut Cluster,
    hollow: &mut Process,
    apis: &[String],
    metrics: &str,
) -> anyhow::Result<u64> {
    let mut c = Connection::open(&apis[0]).await?;
    let registering = Instant::now();
    eprintln!("-- {} hollow nodes registering", options.nodes);
    loop {
        servers.check_running()?;
        ensure!(
            hollow.is_running(),
            "the hollow agent exited: {}",
            hollow.log_tail(20).join("\n")
        );
        // A connection the busy server dropped (a registration storm) is opened
        // again; otherwise every later count would fail.
        let ready = match ready_nodes(&mut c).await {
            Ok(ready) => ready,
            Err(_) => {
                c = Connection::open(&apis[0]).await?;
                0
            }
        };
        if ready >= options.nodes as usize {
            break;
        }
        ensure!(
            registering.elapsed() < options.timeout,
            "{ready} of {} nodes Ready",
            options.nodes
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let registered_in = registering.elapsed();
    eprintln!("-- every node Ready after {registered_in:?}");
    let steady = match options.steady.is_zero() {
        true => None,
        false => Some(steady_cost(options, servers, apis).await?),
    };
    if options.pods == 0 {
        println!("berth-bench scale: {} hollow nodes, no pods", options.nodes);
        println!(
            "  nodes Ready after             {:>10.1} s",
            registered_in.as_secs_f64()
        );
        if let Some(steady) = &steady {
            steady.print();
        }
        let line = json!({
            "bench": "scale",
            "nodes": options.nodes,
            "pods": 0,
            "nodes_ready_s": registered_in.as_secs_f64(),
            "steady": steady.as_ref().map(steady::Cost::to_json),
        });
        println!("{line}");
        return Ok(0);
    }
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    create(&mut c, "/api/v1/namespaces", &namespace).await?;
    let list = c
        .get(&format!("/api/v1/namespaces/{NAMESPACE}/pods"))
        .await?
        .expect(200)?;
    let version = serde_json::from_slice::<Value>(&list)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let _watch = AbortOnDrop(tokio::spawn(watch::follow(
        apis[1 % apis.len()].clone(),
        NAMESPACE.to_owned(),
        version,
        seen.clone(),
    )));

    let pids: Vec<(String, u32)> = (servers.replicas.iter().enumerate())
        .filter_map(|(i, r)| r.pid().map(|pid| (format!("server n{}", i + 1), pid)))
        .chain(hollow.pid().map(|pid| ("hollow agent".to_owned(), pid)))
        .collect();
    let cpu_before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid).unwrap_or(0.0)).collect();
    let probe_stop = Arc::new(tokio::sync::Notify::new());
    let probe = tokio::spawn(probe(apis.to_vec(), options.probe_rate, probe_stop.clone()));

    let stores = store_authorities(servers);
    let term_before = steady::read(&[], &stores).await?.term;
    let started = Instant::now();
    let per = options.pods / options.deployments;
    let total = per * options.deployments;
    eprintln!("-- {} Deployments of {per} pods", options.deployments);
    for d in 0..options.deployments {
        let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments");
        create(&mut c, &path, &deployment(&format!("{LOAD_PREFIX}{d}"), per)).await?;
    }
    loop {
        servers.check_running()?;
        ensure!(
            hollow.is_running(),
            "the hollow agent exited: {}",
            hollow.log_tail(20).join("\n")
        );
        let (bound, running) = {
            let seen = seen.lock().expect("seen lock");
            (seen.bound(), seen.running())
        };
        eprintln!(
            "   {:>6.1}s: {bound} of {total} bound, {running} running",
            started.elapsed().as_secs_f64()
        );
        if running as u64 >= total {
            break;
        }
        if started.elapsed() > options.timeout {
            bail!(
                "after {:?}: {bound} of {total} pods bound, {running} running",
                options.timeout
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let load_s = started.elapsed().as_secs_f64();
    probe_stop.notify_one();
    let (probe_latencies, refused) = probe.await.context("the probe")??;
    let usage: Vec<Usage> = (pids.iter().zip(&cpu_before))
        .map(|((name, pid), before)| proc_usage(name, *pid, *before))
        .collect::<anyhow::Result<_>>()?;
    let (placement, startup) = {
        let seen = seen.lock().expect("seen lock");
        let first = seen
            .pods
            .values()
            .filter_map(|t| t.created)
            .min()
            .context("no pod seen")?;
        let last_bound = seen
            .pods
            .values()
            .filter_map(|t| t.bound)
            .max()
            .context("no pod bound")?;
        let placement = seen.bound() as f64 / last_bound.saturating_duration_since(first).as_secs_f64().max(1e-3);
        (placement, LatencySummary::from_samples(seen.startups(LOAD_PREFIX)))
    };
    let mutating = LatencySummary::from_samples(probe_latencies);
    latency_pods::run(options, &apis[0], &seen).await?;
    let latency = LatencySummary::from_samples(seen.lock().expect("seen lock").startups(latency_pods::PREFIX));
    let term_after = steady::read(&[], &stores).await?.term;
    let elections = (term_after - term_before).max(0.0) as u64;
    let foreign = hollow_sum(metrics, "berth_hollow_foreign_pod_events_total").await?;
    let events = hollow_sum(metrics, "berth_hollow_pod_events_total").await?;

    println!(
        "berth-bench scale: {} hollow nodes, {total} pods in {} Deployments",
        options.nodes, options.deployments
    );
    println!(
        "  nodes Ready after             {:>10.1} s",
        registered_in.as_secs_f64()
    );
    println!("  all pods Running after        {load_s:>10.1} s");
    println!("  placement throughput          {placement:>10.1} pods/s bound");
    println!(
        "  pod startup p50 / p99         {:>10.0} / {:.0} ms (the load's: seen → Running and Ready)",
        ms(startup.p50),
        ms(startup.p99)
    );
    if latency.count > 0 {
        println!(
            "  latency pods' startup p50/p99 {:>10.0} / {:.0} ms ({} one-pod Deployments at {}/s after the load)",
            ms(latency.p50),
            ms(latency.p99),
            latency.count,
            options.latency_rate
        );
    }
    println!(
        "  mutating calls p50 / p99      {:>10.1} / {:.1} ms ({} probe calls, {refused} answered 429)",
        ms(mutating.p50),
        ms(mutating.p99),
        mutating.count
    );
    println!("  hollow watch events           {events:>10} ({foreign} of other nodes' pods)");
    println!("  elections                     {elections:>10} (Raft term {term_before} → {term_after})");
    if let Some(steady) = &steady {
        steady.print();
    }
    println!("  process             RSS MiB  peak MiB  CPU s  cores over the load");
    for u in &usage {
        println!(
            "  {:<18} {:>8.0} {:>9.0} {:>6.1}  {:.2}",
            u.name,
            u.memory.rss_kib as f64 / 1024.0,
            u.memory.peak_rss_kib as f64 / 1024.0,
            u.cpu_s,
            u.cpu_s / load_s
        );
    }
    let line = json!({
        "bench": "scale",
        "nodes": options.nodes,
        "pods": total,
        "deployments": options.deployments,
        "nodes_ready_s": registered_in.as_secs_f64(),
        "all_running_s": load_s,
        "placement_pods_per_s": placement,
        "pod_startup_ms": startup.to_json(),
        "latency_pod_startup_ms": latency.to_json(),
        "mutating_ms": mutating.to_json(),
        "mutating_refused_429": refused,
        "hollow_watch_events": events,
        "hollow_foreign_events": foreign,
        "elections": elections,
        "steady": steady.as_ref().map(steady::Cost::to_json),
        "processes": usage.iter().map(|u| json!({
            "name": u.name, "rss_kib": u.memory.rss_kib, "peak_rss_kib": u.memory.peak_rss_kib, "cpu_s": u.cpu_s,
        })).collect::<Vec<_>>(),
    });
    println!("{line}");
    Ok(elections)
}

/// The store replicas' client authorities (`host:port`), for their `/metrics`.
fn store_authorities(servers: &Cluster) -> Vec<String> {
    (servers.endpoints().iter())
        .map(|url| url.trim_start_matches("http://").to_owned())
        .collect()
}

/// Watches the cluster at rest for --steady, after a lease interval for the last
/// registrations' writes (node IPAM's, the Leases' owners) to settle.
async fn steady_cost(options: &ScaleOptions, servers: &Cluster, apis: &[String]) -> anyhow::Result<steady::Cost> {
    let lease_ttl = parse_duration(&options.lease_ttl).map_err(|e| anyhow::anyhow!("--lease-ttl: {e}"))?;
    tokio::time::sleep(lease_ttl / 4).await;
    let stores = store_authorities(servers);
    let pids: Vec<u32> = servers.replicas.iter().filter_map(|r| r.pid()).collect();
    let cpu = || pids.iter().map(|pid| cpu_seconds(*pid).unwrap_or(0.0)).sum::<f64>();
    eprintln!("-- steady state for {:?}", options.steady);
    let (cpu_before, before, started) = (cpu(), steady::read(apis, &stores).await?, Instant::now());
    tokio::time::sleep(options.steady).await;
    let after = steady::read(apis, &stores).await?;
    let (window_s, cpu_after) = (started.elapsed().as_secs_f64(), cpu());
    let rss_mib: f64 = (pids.iter())
        .filter_map(|pid| proc_usage("server", *pid, 0.0).ok())
        .map(|u| u.memory.rss_kib as f64 / 1024.0)
        .sum();
    Ok(steady::cost(
        options.nodes,
        window_s,
        &before,
        &after,
        cpu_after - cpu_before,
        rss_mib,
    ))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn deployment(name: &str, replicas: u64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "hollow.example/app:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    })
}

async fn post(c: &mut Connection, path: &str, body: &Value) -> anyhow::Result<crate::api::http::Answer> {
    let body = Bytes::from(serde_json::to_vec(body)?);
    c.request(Method::POST, path, Some(("application/json", body))).await
}

/// Creates the load's objects, again after a 429 (a server busy with the nodes'
/// registrations), as client-go does after the Retry-After it names.
async fn create(c: &mut Connection, path: &str, body: &Value) -> anyhow::Result<()> {
    for _ in 0..60 {
        let answer = post(c, path, body).await?;
        if answer.status != 429 {
            answer.expect(201)?;
            return Ok(());
        }
        let after = serde_json::from_slice::<Value>(&answer.body).ok();
        let seconds = after
            .and_then(|v| v["details"]["retryAfterSeconds"].as_u64())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(seconds.clamp(1, 5))).await;
    }
    bail!("POST {path}: still 429 after a minute")
}

async fn ready_nodes(c: &mut Connection) -> anyhow::Result<usize> {
    let body = c
        .get("/api/v1/nodes?labelSelector=berth.io%2Fhollow%3Dtrue")
        .await?
        .expect(200)?;
    let list: Value = serde_json::from_slice(&body)?;
    Ok((list["items"].as_array().into_iter().flatten())
        .filter(|n| {
            (n["status"]["conditions"].as_array().into_iter().flatten())
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count())
}

/// The sum over the hollow nodes of one series of their /metrics.
async fn hollow_sum(authority: &str, series: &str) -> anyhow::Result<u64> {
    let mut c = Connection::open(authority).await?;
    let body = c.get("/metrics").await?.expect(200)?;
    let prefix = format!("{series}{{");
    Ok(String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum())
}

/// Mutating calls at `rate` per second, round robin over the API servers, each
/// timed: a ConfigMap created, updated, deleted. Stops when `stop` is notified.
/// Also the calls answered 429.
async fn probe(apis: Vec<String>, rate: u32, stop: Arc<tokio::sync::Notify>) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut refused_count = 0;
    let refused = &mut refused_count;
    let mut connections = Vec::new();
    for api in &apis {
        connections.push(Connection::open(api).await?);
    }
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    for i in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.notified() => break,
        }
        let c = &mut connections[i as usize % apis.len()];
        let name = format!("probe-{}", i / 3);
        let started = Instant::now();
        let answer =
            match i % 3 {
                0 => post(
                    c,
                    &path,
                    &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": "0"}}),
                )
                .await?,
                1 => {
                    let body = Bytes::from(serde_json::to_vec(&json!({"data": {"n": "1"}}))?);
                    c.request(
                        Method::PATCH,
                        &format!("{path}/{name}"),
                        Some(("application/merge-patch+json", body)),
                    )
                    .await?
                }
                _ => c.request(Method::DELETE, &format!("{path}/{name}"), None).await?,
            };
        match answer.status {
            200..=299 => latencies.push(started.elapsed()),
            // Refused by a busy server (max-inflight): counted, not timed.
            429 => *refused += 1,
            // The create was refused: its update and delete find nothing.
            404 if i % 3 != 0 => {}
            status => bail!("probe call {i}: HTTP {status}"),
        }
    }
    Ok((latencies, refused_count))
}
