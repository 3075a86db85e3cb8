//! One run of the suite: start the cluster, run the workloads while the nemesis
//! injects faults, heal, take the final state, check everything, report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use etcd_client::GetOptions;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::check::{self, CheckResult, Verdict};
use crate::cluster::{Cluster, ClusterSpec};
use crate::final_state;
use crate::history::{Completed, Consistency, Kind, Op, pair};
use crate::nemesis::{self, FaultKind, FaultRecord, Schedule};
use crate::recorder::Recorder;
use crate::rng::Rng;
use crate::workload::{self, ClientTls, WorkloadConfig, append, lease, register};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Register,
    Watch,
    Lease,
    Append,
}

impl WorkloadKind {
    pub fn parse(names: &[String]) -> Result<Vec<WorkloadKind>, String> {
        let mut kinds = Vec::new();
        for name in names {
            let kind = match name.as_str() {
                "register" => vec![WorkloadKind::Register],
                "watch" => vec![WorkloadKind::Watch],
                "lease" => vec![WorkloadKind::Lease],
                "append" => vec![WorkloadKind::Append],
                "all" => vec![
                    WorkloadKind::Register,
                    WorkloadKind::Watch,
                    WorkloadKind::Lease,
                    WorkloadKind::Append,
                ],
                other => {
                    return Err(format!(
                        "unknown workload {other:?}: choose from register, watch, lease, append, all"
                    ));
                }
            };
            kinds.extend(kind);
        }
        kinds.sort_by_key(|k| *k as u8);
        kinds.dedup();
        // The watchers watch the register keys: alone they would see nothing, and the
        // watch checker would have nothing to check.
        if kinds.contains(&WorkloadKind::Watch) && !kinds.contains(&WorkloadKind::Register) {
            return Err("the watch workload watches the register keys: add the register workload".into());
        }
        Ok(kinds)
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub berth: PathBuf,
    pub nodes: usize,
    pub time: Duration,
    pub seed: u64,
    pub nemeses: Vec<FaultKind>,
    pub workloads: Vec<WorkloadKind>,
    /// Where the run folder goes.
    pub out: PathBuf,
    pub test_fault: Option<String>,
    /// Register keys and clients.
    pub keys: u64,
    pub clients: u64,
    pub check_deadline: Duration,
    /// Run the cluster over TLS with client-certificate auth (a CA made for the run
    /// by `berth pki init`), every client of the suite presenting its certificate.
    pub tls: bool,
}

/// Everything a run found, as the report prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: usize,
    /// The cluster ran over TLS with client-certificate auth.
    pub tls: bool,
    pub duration_s: f64,
    pub workloads: Vec<WorkloadKind>,
    pub faults: Vec<FaultRecord>,
    pub faults_by_kind: BTreeMap<String, usize>,
    pub ops: OpCounts,
    pub throughput: Throughput,
    pub checks: Vec<CheckResult>,
    pub recovery_s: Option<f64>,
    pub valid: bool,
    pub anomalies: usize,
    pub run_dir: String,
    pub reproduce: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OpCounts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

/// Completed operations per second, when no fault was active, while one was, and
/// after the final heal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub quiet_ops_per_s: f64,
    pub faulty_ops_per_s: f64,
    pub after_ops_per_s: f64,
}

pub async fn run(options: RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    let run_dir = options.out.join(format!("run-{}-{}", options.seed, std::process::id()));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let tls = if options.tls {
        Some(crate::cluster::make_pki(&options.berth, &run_dir.join("pki"))?)
    } else {
        None
    };
    let spec = ClusterSpec {
        nodes: options.nodes,
        berth: options.berth.clone(),
        dir: run_dir.join("cluster"),
        test_fault: replica_test_fault(&options)?,
        seed: options.seed,
        tls: tls.clone(),
    };
    let cluster = Cluster::start(spec).await?;
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .context("the cluster elected no leader within 30 s (see the replica logs in the run folder)")?;
    let endpoints = cluster.endpoints();
    let client_tls = cluster.client_tls().cloned();
    let cluster = Arc::new(Mutex::new(cluster));
    let recorder = Recorder::new(Instant::now());
    let rng = Rng::new(options.seed);
    let deadline = tokio::time::Instant::now() + options.time;
    let config = WorkloadConfig {
        endpoints: endpoints.clone(),
        tls: client_tls.clone(),
        deadline,
        seed: options.seed,
    };

    let mut tasks = Vec::new();
    for kind in options.workloads.clone() {
        let config = config.clone();
        let recorder = recorder.clone();
        let (clients, keys) = (options.clients, options.keys);
        tasks.push(tokio::spawn(async move {
            match kind {
                WorkloadKind::Register => register::run(config, recorder, clients, keys).await,
                WorkloadKind::Watch => workload::watch::run(config, recorder, 3, register::PREFIX).await,
                WorkloadKind::Lease => lease::run(config, recorder, 2).await,
                WorkloadKind::Append => append::run(config, recorder, 3, 5).await,
            }
        }));
    }
    let faults = nemesis::run(
        cluster.clone(),
        Schedule::new(options.nemeses.clone()),
        rng.fork(0x4e45_4d00),
        recorder.clone(),
        deadline,
    )
    .await;

    // Heal everything and time how long until the cluster takes writes again.
    let healed_ns = recorder.now_ns();
    cluster.lock().await.heal_all()?;
    let recovery = time_to_first_write(&endpoints, client_tls.as_ref(), Duration::from_secs(30)).await;
    for t in tasks {
        let _ = t.await;
    }

    let sessions = recorder.sessions();
    let mut checks = Vec::new();

    // The final state, read once the cluster is whole again.
    let finals = final_reads(&endpoints, client_tls.as_ref(), &recorder, &options).await;
    let events = recorder.events();
    let completed = pair(&events);

    checks.extend(check_history(
        &options.workloads,
        &completed,
        &sessions,
        &finals.lists,
        options.check_deadline,
    ));
    if options.workloads.contains(&WorkloadKind::Lease) {
        checks.push(
            final_state::lease_expiry_check(
                &endpoints,
                client_tls.as_ref(),
                &completed,
                final_state::LEASE_EXPIRY_WAIT,
            )
            .await,
        );
    }
    // Only the register and append workloads write values to read back.
    if options.workloads.contains(&WorkloadKind::Register) || options.workloads.contains(&WorkloadKind::Append) {
        checks.push(final_state::durability_check(&endpoints, client_tls.as_ref(), &completed).await);
    }
    checks.push(final_state::convergence_check(&cluster, &endpoints).await);
    checks.push(final_state::crash_check(&cluster).await);
    if let (Some(tls), Some(client_tls)) = (&tls, &client_tls) {
        let uncertified = ClientTls::trusting(&tls.ca_file)?;
        checks.push(final_state::client_auth_check(&endpoints, client_tls, &uncertified).await);
    }

    let ops = count(&completed);
    let throughput = throughput(&completed, &faults, healed_ns);
    let mut faults_by_kind = BTreeMap::new();
    for f in &faults {
        *faults_by_kind.entry(f.kind.family().to_string()).or_insert(0) += 1;
    }
    let anomalies = checks.iter().map(|c| c.anomalies.len()).sum();
    let valid = checks.iter().all(|c| c.verdict == Verdict::Valid);
    let report = RunReport {
        seed: options.seed,
        nodes: options.nodes,
        tls: options.tls,
        duration_s: started.elapsed().as_secs_f64(),
        workloads: options.workloads.clone(),
        faults,
        faults_by_kind,
        ops,
        throughput,
        checks,
        recovery_s: recovery.map(|d| d.as_secs_f64()),
        valid,
        anomalies,
        run_dir: run_dir.display().to_string(),
        reproduce: reproduce_command(&options),
    };

    cluster.lock().await.stop_all();
    std::fs::write(run_dir.join("history.jsonl"), crate::history::to_json_lines(&events))?;
    std::fs::write(run_dir.join("watch-sessions.json"), serde_json::to_string(&sessions)?)?;
    std::fs::write(run_dir.join("final-lists.json"), serde_json::to_string(&finals.lists)?)?;
    std::fs::write(run_dir.join("report.json"), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(
        run_dir.join("timeline.html"),
        crate::report::timeline_html(&report, &completed),
    )?;
    if report.valid {
        // A clean run keeps its report and history, not its data dirs.
        let _ = std::fs::remove_dir_all(run_dir.join("cluster").join("n1"));
        for n in 2..=options.nodes {
            let _ = std::fs::remove_dir_all(run_dir.join("cluster").join(format!("n{n}")));
        }
    }
    Ok(report)
}

/// The `--test-fault` the replicas run with: the one asked for, or `slow-disk` when
/// the disk nemesis needs it. The store takes one, so the two cannot be combined.
fn replica_test_fault(options: &RunOptions) -> Result<Option<String>> {
    let needs_slow_disk = options.nemeses.iter().any(|k| k.needs_slow_disk());
    match &options.test_fault {
        Some(fault) if needs_slow_disk && fault != "slow-disk" => anyhow::bail!(
            "the disk nemesis needs every replica started with --test-fault slow-disk, which --test-fault {fault} would replace: run them separately"
        ),
        None if needs_slow_disk => Ok(Some("slow-disk".to_string())),
        other => Ok(other.clone()),
    }
}

/// The checkers that need only the recorded history (and the final lists).
pub fn check_history(
    workloads: &[WorkloadKind],
    completed: &[Completed],
    sessions: &[crate::history::WatchSession],
    final_lists: &BTreeMap<String, Vec<u64>>,
    deadline: Duration,
) -> Vec<CheckResult> {
    let deadline = Instant::now() + deadline;
    let mut checks = Vec::new();
    if workloads.contains(&WorkloadKind::Register) {
        checks.push(check::linearizable::check(completed, deadline));
        checks.push(check::revisions::check(completed));
    }
    if workloads.contains(&WorkloadKind::Watch) {
        checks.push(check::watch::check(sessions, completed, register::PREFIX));
    }
    if workloads.contains(&WorkloadKind::Lease) {
        checks.push(check::lease::check(completed, sessions));
    }
    if workloads.contains(&WorkloadKind::Append) {
        checks.push(check::append::check(completed, final_lists));
    }
    checks
}

/// Checks a run folder's history again (after a checker changed, or with a longer
/// deadline), without a cluster.
pub fn recheck(run_dir: &std::path::Path, deadline: Duration) -> Result<Vec<CheckResult>> {
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json"))?)?;
    let workloads: Vec<String> = serde_json::from_value(report["workloads"].clone())?;
    let workloads = WorkloadKind::parse(&workloads).map_err(anyhow::Error::msg)?;
    let events = crate::history::from_json_lines(&std::fs::read_to_string(run_dir.join("history.jsonl"))?)?;
    let sessions: Vec<crate::history::WatchSession> =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("watch-sessions.json"))?)?;
    let final_lists = match std::fs::read_to_string(run_dir.join("final-lists.json")) {
        Ok(text) => serde_json::from_str(&text)?,
        Err(_) => BTreeMap::new(),
    };
    Ok(check_history(
        &workloads,
        &pair(&events),
        &sessions,
        &final_lists,
        deadline,
    ))
}

pub fn reproduce_command(options: &RunOptions) -> String {
    let nemeses: Vec<&str> = {
        let mut families: Vec<&str> = options.nemeses.iter().map(|k| k.family()).collect();
        families.dedup();
        families
    };
    let workloads: Vec<String> = options
        .workloads
        .iter()
        .map(|w| {
            serde_json::to_string(w)
                .unwrap_or_default()
                .trim_matches('"')
                .to_string()
        })
        .collect();
    let mut cmd = format!(
        "cargo run --release -p berth-jepsen -- --nodes {} --time {} --seed {} --nemesis {} --workload {}",
        options.nodes,
        options.time.as_secs(),
        options.seed,
        if nemeses.is_empty() {
            "none".to_string()
        } else {
            nemeses.join(",")
        },
        workloads.join(",")
    );
    if let Some(fault) = &options.test_fault {
        cmd.push_str(&format!(" --test-fault {fault}"));
    }
    if options.tls {
        cmd.push_str(" --tls");
    }
    cmd
}

fn count(completed: &[Completed]) -> OpCounts {
    let mut counts = OpCounts::default();
    for c in completed {
        match c.kind {
            Kind::Ok => counts.ok += 1,
            Kind::Fail => counts.fail += 1,
            Kind::Info | Kind::Invoke => counts.info += 1,
        }
    }
    counts
}

fn throughput(completed: &[Completed], faults: &[FaultRecord], healed_ns: u64) -> Throughput {
    let in_fault = |t: u64| faults.iter().any(|f| f.start_ns <= t && t < f.end_ns);
    let fault_ns: u64 = faults.iter().map(|f| f.end_ns - f.start_ns).sum();
    let quiet_ns = healed_ns.saturating_sub(fault_ns);
    let last_ns = completed
        .iter()
        .filter_map(|c| c.complete_ns)
        .max()
        .unwrap_or(healed_ns);
    let (mut quiet, mut faulty, mut after) = (0u64, 0u64, 0u64);
    for c in completed.iter().filter(|c| c.kind == Kind::Ok) {
        let t = c.complete_ns.unwrap_or(0);
        if t >= healed_ns {
            after += 1;
        } else if in_fault(t) {
            faulty += 1;
        } else {
            quiet += 1;
        }
    }
    let rate = |n: u64, ns: u64| if ns == 0 { 0.0 } else { n as f64 / (ns as f64 / 1e9) };
    Throughput {
        quiet_ops_per_s: rate(quiet, quiet_ns),
        faulty_ops_per_s: rate(faulty, fault_ns),
        after_ops_per_s: rate(after, last_ns.saturating_sub(healed_ns)),
    }
}

async fn time_to_first_write(endpoints: &[String], tls: Option<&ClientTls>, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(mut c) = workload::connect(endpoints, tls).await
            && c.put(final_state::RECOVERED_KEY, "yes", None).await.is_ok()
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

struct Finals {
    lists: BTreeMap<String, Vec<u64>>,
}

/// Final linearizable reads of every register key (recorded as operations of a
/// final process, so the checkers weigh them like any other) and of the lists.
async fn final_reads(
    endpoints: &[String],
    tls: Option<&ClientTls>,
    recorder: &Recorder,
    options: &RunOptions,
) -> Finals {
    let mut lists = BTreeMap::new();
    let Some(mut c) = workload::connect(endpoints, tls).await else {
        return Finals { lists };
    };
    if options.workloads.contains(&WorkloadKind::Register) {
        for k in 0..options.keys {
            let key = register::key(k);
            let op = Op::Read {
                key: key.clone(),
                consistency: Consistency::Linearizable,
                value: None,
            };
            let process = 9_000_000 + k;
            recorder.invoke(process, &op);
            match c.get(key.as_str(), None).await {
                Ok(resp) => {
                    let value = resp.kvs().first().map(|kv| workload::text(kv.value()));
                    let done = Op::Read {
                        key,
                        consistency: Consistency::Linearizable,
                        value,
                    };
                    recorder.complete(process, Kind::Ok, done, resp.header().map(|h| h.revision()), None);
                }
                Err(e) => recorder.complete(process, Kind::Fail, op, None, Some(e.to_string())),
            }
        }
    }
    if options.workloads.contains(&WorkloadKind::Append)
        && let Ok(resp) = c.get(append::PREFIX, Some(GetOptions::new().with_prefix())).await
    {
        for kv in resp.kvs() {
            lists.insert(
                workload::text(kv.key()),
                append::parse_list(&workload::text(kv.value())),
            );
        }
    }
    Finals { lists }
}
