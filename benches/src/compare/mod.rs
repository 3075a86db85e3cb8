//! `berth-bench compare`: etcd and berth side by side on this machine, in one run.
//!
//! ```text
//!  for replicas in 1, 3:
//!    for system in etcd, berth:
//!      start a cluster (same flags, loopback, data dirs in one temp dir)
//!      run every scenario (put 100/1 clients, ranges, txn, watch, lease keepalive)
//!      read each replica's RSS
//!      3 replicas: kill -9 the leader, time the write gap, restart it (several runs)
//!      stop the cluster, delete its data
//!  print the machine, the command, one JSON line per result and a markdown table
//! ```

pub mod cluster;
pub mod failover;
pub mod machine;
pub mod scenario;
pub mod table;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::duration::parse_duration;
use crate::latency::ms;
use crate::report::json_line;
use cluster::{ELECTION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, System};
use scenario::{KEY_SIZE, Scenario, VAL_SIZE, scenarios};
use table::SystemRun;

#[derive(clap::Args, Clone, Debug)]
pub struct CompareOptions {
    /// The etcd binary (3.4). When it is missing, Debian's etcd-server package is
    /// installed with apt-get.
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: PathBuf,

    /// The berth binary. Default: the release build in this program's target directory,
    /// built with `cargo build --release -p berth` when missing.
    #[arg(long)]
    pub berth: Option<PathBuf>,

    /// Build berth (`cargo build --release -p berth`) even when the binary exists.
    #[arg(long)]
    pub build: bool,

    /// Cluster sizes to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    pub replicas: Vec<usize>,

    /// Systems to run, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "etcd,berth")]
    pub systems: Vec<System>,

    /// Requests of the 100-client put; the other workloads are sized from it
    /// [default: 100000, 1000 with --quick].
    #[arg(long)]
    pub total: Option<u64>,

    /// Longest time one workload may run [default: 20s, 5s with --quick].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Leader kills per 3-replica cluster [default: 3, 1 with --quick].
    #[arg(long)]
    pub failover_runs: Option<usize>,

    /// A smoke run of a few seconds per cluster: small totals, one failover.
    #[arg(long)]
    pub quick: bool,

    /// Where the clusters' temporary data directories go [default: the system temp dir].
    #[arg(long)]
    pub data_root: Option<PathBuf>,

    /// TLS on both sides: https client and peer URLs with certificates from a CA made
    /// for the run, client and peer certificates demanded (`--client-cert-auth`,
    /// `--peer-client-cert-auth`), the load generator presenting one.
    #[arg(long)]
    pub tls: bool,
}

/// [`run`], stopped by Ctrl-C or SIGTERM: dropping the comparison kills the clusters it
/// started (each `Cluster` kills its replicas on drop) and deletes its temp dir.
pub async fn run_until_interrupted(options: &CompareOptions) -> anyhow::Result<()> {
    until_interrupted(run(options)).await
}

/// `run` unless Ctrl-C or SIGTERM comes first; then `run` is dropped, and with it the
/// servers it started and its temp dir.
pub async fn until_interrupted(run: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        result = run => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers were stopped"),
        _ = terminate.recv() => bail!("terminated; the servers were stopped"),
    }
}

pub async fn run(options: &CompareOptions) -> anyhow::Result<()> {
    let total = options.total.unwrap_or(if options.quick { 1000 } else { 100_000 });
    let duration = options
        .duration
        .unwrap_or(Duration::from_secs(if options.quick { 5 } else { 20 }));
    let failover_runs = options.failover_runs.unwrap_or(if options.quick { 1 } else { 3 });
    if cfg!(debug_assertions) {
        eprintln!("warning: berth-bench is a debug build; run it with --release for real numbers");
    }
    let mut binaries = Vec::new();
    for &system in &options.systems {
        let binary = match system {
            System::Etcd => ensure_etcd(&options.etcd)?,
            System::Berth => ensure_berth(options.berth.as_deref(), options.build)?,
        };
        binaries.push((system, binary));
    }
    let data_root = options.data_root.clone().unwrap_or_else(std::env::temp_dir);
    let temp = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in(&data_root)
        .with_context(|| format!("creating a temp dir in {}", data_root.display()))?;
    let scenarios = scenarios(total, duration);
    let tls = if options.tls {
        let tls = tls::make_certificates(&temp.path().join("tls"))?;
        crate::connection::use_tls(&tls)?;
        Some(tls)
    } else {
        None
    };

    let mut runs = Vec::new();
    for &replicas in &options.replicas {
        for (system, binary) in &binaries {
            let root = temp.path().join(format!("{}-{replicas}", system.name()));
            eprintln!("== {} with {replicas} replica(s)", system.name());
            let cpu_before = machine::CpuSample::now();
            let mut run = measure_cluster(
                *system,
                binary,
                replicas,
                &root,
                tls.as_ref(),
                &scenarios,
                failover_runs,
            )
            .await;
            if let (Some(before), Some(after)) = (cpu_before, machine::CpuSample::now()) {
                run.others_cpu_share = Some(before.others_share(&after));
            }
            let _ = std::fs::remove_dir_all(&root);
            runs.push(run);
        }
    }

    print_report(&binaries, &scenarios, &runs, temp.path(), tls.is_some());
    Ok(())
}

async fn measure_cluster(
    system: System,
    binary: &Path,
    replicas: usize,
    root: &Path,
    tls: Option<&berth_testkit::ClusterTls>,
    scenarios: &[Scenario],
    failover_runs: usize,
) -> SystemRun {
    let mut run = SystemRun {
        system,
        replicas,
        reports: Vec::new(),
        rss_kib: Vec::new(),
        failovers: Vec::new(),
        failure: None,
        others_cpu_share: None,
    };
    let mut cluster = match cluster::start(system, binary, replicas, root, tls) {
        Ok(cluster) => cluster,
        Err(error) => {
            run.failure = Some(format!("{error:#}"));
            return run;
        }
    };
    if let Err(error) = cluster.wait_for_leader().await {
        run.failure = Some(format!("{error:#}"));
        return run;
    }
    let endpoints = cluster.endpoints();
    for scenario in scenarios {
        if let Err(error) = cluster.check_running() {
            run.failure = Some(format!("before {}: {error:#}", scenario.id));
            return run;
        }
        eprintln!("-- {}: {}", system.name(), scenario.title);
        let result = scenario.run(&endpoints).await;
        match &result {
            Ok(report) => eprint!("{}", report.human()),
            Err(error) => eprintln!("   failed: {error:#}"),
        }
        run.reports
            .push((scenario.id, result.map_err(|error| format!("{error:#}"))));
    }
    match cluster.rss_kib() {
        Ok(rss_kib) => run.rss_kib = rss_kib,
        Err(error) => run.failure = Some(format!("reading RSS: {error:#}")),
    }
    if replicas >= 3 {
        for attempt in 1..=failover_runs {
            let sample = failover::measure_gap(&mut cluster).await;
            match &sample {
                Ok(sample) => eprintln!(
                    "-- {}: failover {attempt}: gap {:.0} ms, new leader reported after {:?} ms",
                    system.name(),
                    ms(sample.gap),
                    sample.new_leader_after.map(|after| ms(after).round())
                ),
                Err(error) => eprintln!("-- {}: failover {attempt} failed: {error:#}", system.name()),
            }
            let is_failed = sample.is_err();
            run.failovers.push(sample.map_err(|error| format!("{error:#}")));
            if is_failed {
                break;
            }
        }
    }
    if let Err(error) = cluster.check_running() {
        run.failure.get_or_insert(format!("after the load: {error:#}"));
    }
    run
}

fn print_report(
    binaries: &[(System, PathBuf)],
    scenarios: &[Scenario],
    runs: &[SystemRun],
    data_root: &Path,
    is_tls: bool,
) {
    println!("## berth vs etcd\n");
    for (name, value) in machine::describe(data_root) {
        println!("- {name}: {value}");
    }
    for (system, binary) in binaries {
        let version = match system {
            System::Etcd => machine::first_line(machine::command_output(&binary.display().to_string(), &["--version"])),
            System::Berth => {
                let version = machine::first_line(machine::command_output(&binary.display().to_string(), &["version"]));
                format!("{version}{}", berth_provenance(binary))
            }
        };
        println!("- {}: {version}", system.name());
    }
    println!("- command: `{}`", command_line());
    println!(
        "- both servers: the same etcd flags, on 127.0.0.1, data dirs in one temp dir, \
         --heartbeat-interval {HEARTBEAT_INTERVAL_MS} --election-timeout {ELECTION_TIMEOUT_MS}; \
         the load generator runs on the same machine (the tables note how much CPU other processes \
         took meanwhile)"
    );
    if is_tls {
        println!(
            "- TLS on both sides: https client and peer URLs, one CA made for the run, \
             --client-cert-auth and --peer-client-cert-auth, the load generator presenting a \
             client certificate"
        );
    }
    println!("- keys {KEY_SIZE} bytes, values {VAL_SIZE} bytes; workloads:");
    for scenario in scenarios {
        let o = &scenario.options;
        println!(
            "  - {} (`{}`): {} clients over {} conns, {} requests (at most {:?}), key space {}{}{}",
            scenario.title,
            scenario.id,
            o.clients,
            o.conns,
            o.total,
            o.duration,
            o.key_space_size,
            if o.target_leader {
                ", leader only"
            } else {
                ", all endpoints"
            },
            if o.rate > 0.0 {
                format!(", {} req/s", o.rate)
            } else {
                String::new()
            },
        );
    }
    println!(
        "  - failover (3 replicas): one client puts to each endpoint in turn (timeout {:?}); \
         kill -9 the leader; gap = kill to the next successful put; the replica is restarted",
        failover::WRITE_TIMEOUT
    );

    println!("\n### JSON\n\n```json");
    for run in runs {
        for (id, report) in &run.reports {
            let leading = [
                ("system", json!(run.system.name())),
                ("replicas", json!(run.replicas)),
                ("scenario", json!(id)),
            ];
            match report {
                Ok(report) => println!("{}", report.to_json_line(&leading)),
                Err(error) => {
                    let fields = leading.into_iter().map(|(name, value)| (name.to_owned(), value));
                    println!("{}", json_line(fields.chain([("error".to_owned(), json!(error))])));
                }
            }
        }
        let gaps: Vec<_> = run
            .failovers
            .iter()
            .map(|sample| sample.as_ref().map_or(json!(null), |sample| json!(ms(sample.gap))))
            .collect();
        let elections: Vec<_> = run
            .failovers
            .iter()
            .map(|sample| json!(sample.as_ref().ok().and_then(|sample| sample.new_leader_after).map(ms)))
            .collect();
        let fields = [
            ("system", json!(run.system.name())),
            ("replicas", json!(run.replicas)),
            ("rss_kib", json!(run.rss_kib)),
            ("failover_gap_ms", json!(gaps)),
            ("failover_new_leader_ms", json!(elections)),
            ("others_cpu_share", json!(run.others_cpu_share)),
            ("failure", json!(run.failure)),
        ];
        println!("{}", json_line(fields.map(|(name, value)| (name.to_owned(), value))));
    }
    println!("```");

    let mut sizes: Vec<usize> = runs.iter().map(|run| run.replicas).collect();
    sizes.dedup();
    for replicas in sizes {
        let group: Vec<&SystemRun> = runs.iter().filter(|run| run.replicas == replicas).collect();
        println!("\n### {replicas} replica{}\n", if replicas == 1 { "" } else { "s" });
        println!("{}", table::markdown(replicas, &group));
        for run in &group {
            let rss: Vec<String> = run
                .rss_kib
                .iter()
                .map(|kib| format!("{:.1}", *kib as f64 / 1024.0))
                .collect();
            print!("- {}: RSS per replica (MiB) [{}]", run.system.name(), rss.join(", "));
            if !run.failovers.is_empty() {
                let gaps: Vec<String> = run
                    .failovers
                    .iter()
                    .map(|sample| match sample {
                        Ok(sample) => format!(
                            "{:.0} (new leader after {})",
                            ms(sample.gap),
                            sample
                                .new_leader_after
                                .map_or("?".to_owned(), |after| format!("{:.0}", ms(after)))
                        ),
                        Err(error) => format!("failed: {error}"),
                    })
                    .collect();
                print!("; failover gaps (ms) [{}]", gaps.join(", "));
            }
            if let Some(failure) = &run.failure {
                print!("; **failed**: {failure}");
            }
            for (id, report) in &run.reports {
                match report {
                    Err(error) => print!("; {id} **failed**: {error}"),
                    Ok(report) if !report.error_counts.is_empty() => {
                        print!("; {id} errors: {:?}", report.error_counts)
                    }
                    Ok(_) => {}
                }
            }
            println!();
        }
    }
}

pub(crate) fn command_line() -> String {
    let mut words = vec!["berth-bench".to_owned()];
    words.extend(std::env::args().skip(1).map(|word| {
        if word.is_empty() || word.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
            format!("'{}'", word.replace('\'', r"'\''"))
        } else {
            word
        }
    }));
    words.join(" ")
}

/// The workspace this program was built from (for building berth and naming its commit).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Which source the berth binary was built from, as far as git and its modification
/// time tell: the last commit to berth's sources before the build, and a warning when
/// newer commits or uncommitted changes exist (then the binary may be stale; --build).
pub(crate) fn berth_provenance(binary: &Path) -> String {
    let root = workspace_root().display().to_string();
    let sources = ["store", "orchestrator", "proto", "Cargo.lock"];
    let Some(built_s) = std::fs::metadata(binary)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| modified.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since_epoch| since_epoch.as_secs())
    else {
        return String::new();
    };
    let built = machine::command_output("date", &["-u", "-d", &format!("@{built_s}"), "+%Y-%m-%d %H:%M UTC"])
        .unwrap_or_else(|| format!("at {built_s} s since 1970"));
    let git_log = |extra: &[&str]| {
        let mut arguments = vec!["-C", root.as_str(), "log", "-1", "--format=%h"];
        arguments.extend_from_slice(extra);
        arguments.push("--");
        arguments.extend_from_slice(&sources);
        machine::command_output("git", &arguments).filter(|commit| !commit.is_empty())
    };
    let before = format!("--until=@{built_s}");
    let after = format!("--since=@{}", built_s + 1);
    let mut text = format!("; binary built {built}");
    if let Some(commit) = git_log(&[&before]) {
        text.push_str(&format!(", after commit {commit}"));
    }
    if let Some(newer) = git_log(&[&after]) {
        text.push_str(&format!(
            " (**stale**: commit {newer} changed berth's sources since; pass --build)"
        ));
    }
    let mut status_arguments = vec!["-C", root.as_str(), "status", "--porcelain", "--"];
    status_arguments.extend_from_slice(&sources);
    if machine::command_output("git", &status_arguments).is_some_and(|status| !status.is_empty()) {
        text.push_str(" (the work tree has uncommitted changes to berth's sources)");
    }
    text
}

fn ensure_etcd(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        return Ok(path.to_owned());
    }
    eprintln!(
        "{} is missing; installing Debian's etcd-server with apt-get",
        path.display()
    );
    let is_root = machine::command_output("id", &["-u"]).is_some_and(|uid| uid == "0");
    let sudo: &[&str] = if is_root { &[] } else { &["sudo"] };
    for apt_arguments in [
        &["apt-get", "update", "-qq"][..],
        &[
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "etcd-server",
        ][..],
    ] {
        let words: Vec<&str> = sudo.iter().chain(apt_arguments).copied().collect();
        let status = Command::new(words[0])
            .args(&words[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("running {}", words.join(" ")))?;
        if !status.success() {
            bail!(
                "{} failed ({status}); install etcd 3.4 by hand or pass --etcd",
                words.join(" ")
            );
        }
    }
    if !path.exists() {
        bail!(
            "etcd-server is installed but {} is still missing; pass --etcd",
            path.display()
        );
    }
    Ok(path.to_owned())
}

/// The berth binary to run: `berth` when given, else the release build in this
/// program's target directory; built first when `build` is set or it is missing.
pub(crate) fn ensure_berth(berth: Option<&Path>, build: bool) -> anyhow::Result<PathBuf> {
    let path = match berth {
        Some(path) => path.to_owned(),
        None => {
            // This program lives in <target>/<profile>/berth-bench; use <target>/release.
            let exe = std::env::current_exe().context("locating berth-bench")?;
            let target = exe
                .parent()
                .and_then(Path::parent)
                .context("berth-bench is not in a cargo target directory; pass --berth")?;
            target.join("release").join("berth")
        }
    };
    if build || !path.exists() {
        if berth.is_some() && !build {
            bail!("{} does not exist", path.display());
        }
        eprintln!("building berth: cargo build --release -p berth");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(["build", "--release", "-p", "berth"])
            .current_dir(workspace_root())
            .status()
            .context("running cargo build --release -p berth")?;
        if !status.success() {
            bail!("cargo build --release -p berth failed ({status})");
        }
        if !path.exists() {
            bail!(
                "cargo built berth but {} is still missing; pass --berth",
                path.display()
            );
        }
    }
    Ok(path)
}
