//! `berth agent --hollow N`: N hollow nodes in one process (berth_node::agent::hollow),
//! reaching the cluster through the API server of `--kubeconfig` only.

use std::process::ExitCode;
use std::time::Duration;

use berth_api::quantity::{parse_cpu_millis, parse_memory_bytes};
use berth_api::validation::is_dns_label;
use berth_node::agent::cluster::Cluster;
use berth_node::agent::hollow::{self, HollowConfig, HollowStats};

use super::agent::AgentFlags;

/// The hollow nodes' flags, part of `berth agent`'s.
#[derive(clap::Args, Debug)]
pub struct HollowFlags {
    /// Run this many hollow nodes (simulated agents that start nothing) instead of
    /// a real agent.
    #[arg(
        long,
        value_name = "N",
        requires = "kubeconfig",
        // What a real agent's node does, which a hollow node does not: refused
        // rather than ignored.
        conflicts_with_all = [
            "name", "data_dir", "local_volume_dir", "cpu", "memory", "restart_backoff",
            "stop_pods_on_exit", "runtime", "insecure_registries", "image_gc_high_threshold",
            "image_gc_low_threshold", "cni_bin_dir", "pod_bridge", "cluster_domain",
            "cluster_dns", "resolv_conf", "service_cluster_ip_range", "proxy_mode",
            "encryption_provider_config", "tls_cert_file",
        ],
        value_parser = clap::value_parser!(u32).range(1..),
    )]
    pub hollow: Option<u32>,
    /// The hollow nodes' names: `<prefix>-0`, `<prefix>-1`, ...
    #[arg(long, default_value = "hollow", requires = "hollow")]
    hollow_prefix: String,
    /// CPU each hollow node offers, as a quantity.
    #[arg(long, default_value = "4", requires = "hollow")]
    hollow_cpu: String,
    /// Memory each hollow node offers, as a quantity.
    #[arg(long, default_value = "16Gi", requires = "hollow")]
    hollow_memory: String,
    /// Pods each hollow node takes (its capacity's `pods`; a kubelet's default).
    #[arg(long, default_value_t = 110, requires = "hollow", value_parser = clap::value_parser!(u32).range(1..))]
    hollow_pods: u32,
}

fn config(flags: &AgentFlags) -> Result<HollowConfig, String> {
    let hollow = &flags.hollow;
    let count = hollow.hollow.unwrap_or(0) as usize;
    let prefix = hollow.hollow_prefix.clone();
    // The longest name must be a DNS label.
    let longest = format!("{prefix}-{}", count.saturating_sub(1));
    if !is_dns_label(&longest) {
        return Err(format!(
            "--hollow-prefix {prefix:?}: the nodes' names ({longest:?}) must be DNS labels"
        ));
    }
    let cpu_millis =
        parse_cpu_millis(&hollow.hollow_cpu).map_err(|e| format!("--hollow-cpu {:?}: {}", hollow.hollow_cpu, e.0))?;
    let memory_bytes = parse_memory_bytes(&hollow.hollow_memory)
        .map_err(|e| format!("--hollow-memory {:?}: {}", hollow.hollow_memory, e.0))?;
    let lease_ttl = super::agent::duration("lease-ttl", &flags.lease_ttl)?;
    if lease_ttl < Duration::from_secs(2) {
        return Err("--lease-ttl must be at least 2s".into());
    }
    let config = HollowConfig {
        prefix,
        count,
        cpu_millis,
        memory_bytes,
        pods: hollow.hollow_pods,
        labels: super::agent::labels(&flags.labels)?,
        lease_ttl,
        address: (flags.advertise_address.clone()).unwrap_or_else(|| flags.listen.ip().to_string()),
        port: flags.listen.port(),
    };
    config.check().map_err(|e| format!("--hollow: {e}"))?;
    Ok(config)
}

pub fn run(flags: AgentFlags) -> ExitCode {
    let prepared = config(&flags).and_then(|config| {
        let path = flags.kubeconfig.as_deref().ok_or("--hollow needs --kubeconfig")?;
        // The nodes spread over the kubeconfig's API servers (node i tries server
        // i mod n first), rather than all on the first.
        Ok((config, super::agent::api_sources(path)?))
    });
    let (config, api) = match prepared {
        Ok(c) => c,
        Err(e) => {
            berth_cli::err_line(format_args!("berth agent: {e}"));
            return ExitCode::from(2);
        }
    };
    let tokio = match super::tokio_runtime("agent") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let listen = flags.listen;
    let store = flags.store.clone();
    let result: Result<(), String> = tokio.block_on(async move {
        // Never dialled: hollow nodes reach the cluster through the API server alone.
        let store = berth_client::kv::Kv::connect(&store).map_err(|e| format!("--store: {e}"))?;
        let registry = berth_client::registry::Registry::new(store);
        let clusters: Vec<Cluster> = api.into_iter().map(|api| Cluster::api(api, registry.clone())).collect();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen} (--listen): {e}"))?;
        let stats = HollowStats::new(&config);
        tracing::info!(nodes = config.count, prefix = %config.prefix, metrics = %listen, "hollow nodes starting");
        let metrics = berth_client::kv::AbortOnDrop(tokio::spawn(hollow::serve_metrics(listener, stats.clone())));
        tokio::select! {
            () = hollow::run(config, clusters, stats) => {}
            () = super::wait_for_signal() => {}
        }
        drop(metrics);
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            berth_cli::err_line(format_args!("berth agent: {e}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<AgentFlags, String> {
        use clap::Parser;
        AgentFlags::try_parse_from(std::iter::once("berth agent").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn hollow_nodes_take_their_own_flags_and_refuse_a_real_nodes() {
        let flags = parse(&[
            "--hollow=3",
            "--kubeconfig=k",
            "--hollow-pods=20",
            "--labels=a=b",
            "--listen=127.0.0.1:9",
        ])
        .unwrap();
        let hollow = config(&flags).unwrap();
        assert_eq!(hollow.count, 3);
        assert_eq!(hollow.node_name(2), "hollow-2");
        assert_eq!(
            (hollow.pods, hollow.cpu_millis, hollow.memory_bytes),
            (20, 4000, 16 << 30)
        );
        assert_eq!(hollow.labels["a"], "b");
        assert_eq!((hollow.address.as_str(), hollow.port), ("127.0.0.1", 9));
        assert_eq!(hollow.lease_ttl, Duration::from_secs(10));

        let error = parse(&["--hollow=3"]).unwrap_err();
        assert!(error.contains("--kubeconfig"), "{error}");
        for flag in ["--cpu=2", "--name=n", "--runtime=process", "--pod-bridge=b"] {
            let error = parse(&["--hollow=3", "--kubeconfig=k", flag]).unwrap_err();
            let name = flag.split('=').next().unwrap();
            assert!(error.contains(name), "{flag}: {error}");
        }
        let error = parse(&["--hollow-cpu=2"]).unwrap_err();
        assert!(error.contains("--hollow"), "{error}");
        assert!(parse(&["--hollow=0", "--kubeconfig=k"]).is_err());

        let bad = parse(&["--hollow=3", "--kubeconfig=k", "--hollow-prefix=Big"]).unwrap();
        assert!(config(&bad).unwrap_err().contains("--hollow-prefix"));
        let bad = parse(&["--hollow=3", "--kubeconfig=k", "--hollow-memory=lots"]).unwrap();
        assert!(config(&bad).unwrap_err().contains("--hollow-memory"));
    }
}
