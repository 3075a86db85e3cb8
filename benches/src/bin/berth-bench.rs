//! `berth-bench`: a load generator for etcd-v3-compatible stores (berth or etcd), the
//! berth-versus-etcd comparison, and the API server at scale. See benches/README.md.

use std::path::PathBuf;
use std::time::Duration;

use berth_benches::api::{self, ApiOptions};
use berth_benches::autoscale::{self, AutoscaleOptions};
use berth_benches::compare::{self, CompareOptions};
use berth_benches::duration::parse_duration;
use berth_benches::options::{Consistency, LoadOptions};
use berth_benches::pods::{self, PodsOptions};
use berth_benches::report::Report;
use berth_benches::scale::{self, ScaleOptions};
use berth_benches::secrets::{self, SecretsOptions};
use berth_benches::security::{self, SecurityOptions};
use berth_benches::traffic::{self, TrafficOptions};
use berth_benches::workload::{lease_keepalive, put, range, txn, watch};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-bench",
    about = "Load generator for etcd-v3 stores (berth, etcd), modelled on etcd's benchmark tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Workload,
    /// For https endpoints: the CA that vouches for the servers (etcdctl's --cacert).
    #[arg(long, global = true)]
    cacert: Option<PathBuf>,
    /// For https endpoints: a client certificate to present (etcdctl's --cert).
    #[arg(long, global = true)]
    cert: Option<PathBuf>,
    /// The client certificate's key (etcdctl's --key).
    #[arg(long, global = true)]
    key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Workload {
    /// Put keys of the key space.
    Put {
        #[command(flatten)]
        load: LoadOptions,
    },
    /// Read keys of a preloaded key space.
    Range {
        #[command(flatten)]
        load: LoadOptions,
        /// l (linearizable) or s (serializable).
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
    },
    /// Compare-and-swap updates (read mod_revision, then Txn compare → put), as
    /// kube-apiserver updates objects.
    Txn {
        #[command(flatten)]
        load: LoadOptions,
        /// Conflicts one update may retry before it counts as an error.
        #[arg(long, default_value_t = 100)]
        max_retries: u32,
    },
    /// Watchers on a prefix, each on its own connection; writers put under it.
    Watch {
        #[command(flatten)]
        load: LoadOptions,
        /// Number of watchers.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// How long watchers may take to catch up after the last put.
        #[arg(long, value_parser = parse_duration, default_value = "15s")]
        drain_timeout: Duration,
    },
    /// One lease per client, kept alive over its own keep-alive stream.
    LeaseKeepalive {
        #[command(flatten)]
        load: LoadOptions,
        /// The leases' TTL in seconds.
        #[arg(long, default_value_t = 60)]
        ttl: i64,
    },
    /// Start etcd and berth clusters and run the same workloads against each.
    Compare(CompareOptions),
    /// Start one berth server; create pods through its REST API, list them in pages,
    /// watch them change, and read the server's RSS.
    Api(ApiOptions),
    /// Time pod starts with a cached image: berth (server, agent, a loopback registry)
    /// from POST to Running, against bare `runc run -d`; and the agent's RSS.
    Pods(PodsOptions),
    /// Agents on test hosts with runc containers: HTTP through a cluster IP against
    /// straight to the pods, readiness changes until every node's proxy has them, DNS.
    Traffic(TrafficOptions),
    /// Encryption at rest's cost on Secret writes: one berth server with and without
    /// an AES-GCM key, the same creates, updates and reads; ratios encrypted / plain.
    Secrets(SecretsOptions),
    /// TLS, authentication and RBAC's cost on the API server: pod creates, gets and
    /// paged lists, plain HTTP against HTTPS with client certificates and RBAC.
    ApiSecurity(SecurityOptions),
    /// The horizontal pod autoscaler's reaction to a load step: from the step to the
    /// scale-up decision and to every new replica Ready.
    Autoscale(AutoscaleOptions),
    /// The control plane against hollow nodes (as kubemark): 3 replicas, one
    /// `berth agent --hollow N`, Deployments of many pods; placement throughput, pod
    /// startup, mutating call latency, each process's RSS and CPU.
    Scale(ScaleOptions),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.cacert.is_some() || cli.cert.is_some() || cli.key.is_some() {
        berth_benches::connection::use_tls_files(cli.cacert.as_deref(), cli.cert.as_deref(), cli.key.as_deref())?;
    }
    let report = match cli.command {
        Workload::Put { load } => put::run(&load).await?,
        Workload::Range { load, consistency } => range::run(&load, consistency).await?,
        Workload::Txn { load, max_retries } => txn::run(&load, max_retries).await?,
        Workload::Watch {
            load,
            watchers,
            drain_timeout,
        } => {
            let settings = watch::WatchSettings {
                watchers,
                drain_timeout,
            };
            watch::run(&load, settings).await?
        }
        Workload::LeaseKeepalive { load, ttl } => lease_keepalive::run(&load, ttl).await?,
        Workload::Compare(options) => return compare::run_until_interrupted(&options).await,
        Workload::Api(options) => return api::run_until_interrupted(&options).await,
        Workload::Pods(options) => return pods::run_until_interrupted(&options).await,
        Workload::Traffic(options) => return traffic::run_until_interrupted(&options).await,
        Workload::Secrets(options) => return secrets::run_until_interrupted(&options).await,
        Workload::ApiSecurity(options) => return security::run_until_interrupted(&options).await,
        Workload::Autoscale(options) => return autoscale::run_until_interrupted(&options).await,
        Workload::Scale(options) => return scale::run_until_interrupted(&options).await,
    };
    print_report(&report);
    Ok(())
}

fn print_report(report: &Report) {
    print!("{}", report.human());
    println!("{}", report.to_json_line(&[]));
}
