//! `berth-jepsen`: run berth under faults and check what clients saw.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_jepsen::nemesis::FaultKind;
use berth_jepsen::runner::{self, RunOptions, WorkloadKind};
use clap::Parser;

/// Starts a real berth cluster, runs client workloads while faults are injected,
/// records every operation and checks the history. Exits 0 only when every checker
/// says the history is valid.
#[derive(Debug, Parser)]
#[command(name = "berth-jepsen", version)]
struct Args {
    /// How long the workloads run (seconds).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Replicas in the cluster (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Fault families, comma-separated: kill, pause, partition, delay, loss,
    /// membership, disk, all, none.
    #[arg(long, default_value = "kill,pause,partition", value_delimiter = ',')]
    nemesis: Vec<String>,
    /// Workloads, comma-separated: register, watch, lease, append, all.
    #[arg(long, default_value = "register,watch", value_delimiter = ',')]
    workload: Vec<String>,
    /// The seed of the fault schedule and the workloads (random when not given).
    #[arg(long)]
    seed: Option<u64>,
    /// The berth binary (default: target/release/berth, then target/debug/berth).
    #[arg(long)]
    berth: Option<PathBuf>,
    /// Where run folders go.
    #[arg(long, default_value = "jepsen-runs")]
    out: PathBuf,
    /// Break the store on purpose (`stale-reads`) to see the suite catch it. The disk
    /// nemesis sets `slow-disk` itself.
    #[arg(long)]
    test_fault: Option<String>,
    /// Register keys.
    #[arg(long, default_value_t = 5)]
    keys: u64,
    /// Register clients.
    #[arg(long, default_value_t = 6)]
    clients: u64,
    /// Check the history of an earlier run folder again instead of running.
    #[arg(long, value_name = "RUN_DIR")]
    check: Option<PathBuf>,
    /// How long the linearizability search may take (seconds).
    #[arg(long, default_value_t = 60)]
    check_deadline: u64,
    /// Run the cluster over TLS with client-certificate auth, from a CA made for the
    /// run (`berth pki init`); every client of the suite presents its certificate.
    #[arg(long)]
    tls: bool,
}

fn default_berth() -> Option<PathBuf> {
    ["target/release/berth", "target/debug/berth"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(run_dir) = &args.check {
        return match runner::recheck(run_dir, Duration::from_secs(args.check_deadline)) {
            Ok(checks) => {
                let mut valid = true;
                for c in &checks {
                    println!(
                        "{:<14} {:?} ({} ops, {:.2} s)",
                        c.name,
                        c.verdict,
                        c.ops_checked,
                        c.elapsed.as_secs_f64()
                    );
                    for a in &c.anomalies {
                        println!("  {}: {}", a.kind, a.description);
                    }
                    valid &= c.verdict == berth_jepsen::check::Verdict::Valid;
                }
                if valid { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
            Err(e) => {
                eprintln!("berth-jepsen: {e:#}");
                ExitCode::from(3)
            }
        };
    }
    let nemeses = if args.nemesis.iter().any(|n| n == "none") {
        Vec::new()
    } else {
        match FaultKind::parse_families(&args.nemesis) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("berth-jepsen: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let workloads = match WorkloadKind::parse(&args.workload) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("berth-jepsen: {e}");
            return ExitCode::from(2);
        }
    };
    if !(args.nodes == 3 || args.nodes == 5 || args.nodes == 1) {
        eprintln!("berth-jepsen: --nodes must be 1, 3 or 5");
        return ExitCode::from(2);
    }
    let Some(berth) = args.berth.or_else(default_berth) else {
        eprintln!("berth-jepsen: no berth binary: build it (cargo build --release -p berth) or pass --berth");
        return ExitCode::from(2);
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let options = RunOptions {
        berth,
        nodes: args.nodes,
        time: Duration::from_secs(args.time),
        seed,
        nemeses,
        workloads,
        out: args.out,
        test_fault: args.test_fault,
        keys: args.keys,
        clients: args.clients,
        check_deadline: Duration::from_secs(args.check_deadline),
        tls: args.tls,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(runner::run(options)) {
        Ok(report) => {
            print!("{}", berth_jepsen::report::summary(&report));
            println!("{}", serde_json::to_string(&report).expect("the report serialises"));
            if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("berth-jepsen: {e:#}");
            ExitCode::from(3)
        }
    }
}
