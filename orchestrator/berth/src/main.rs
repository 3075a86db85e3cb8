//! The `berth` binary: a store replica (`berth store`, an etcd-compatible server), a
//! control-plane replica (`berth server`), a node supervisor (`berth agent`), a local
//! cluster of both (`berth up`), and the kubectl-like commands that drive them.

mod roles;

use std::process::ExitCode;

/// Every replica allocates per request (decoded messages, log entries, records);
/// mimalloc's thread-local free lists cost less than glibc's arenas under that load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
berth: a Raft-replicated, etcd-compatible cluster-state store with a container orchestrator

Usage:
  berth up                start a local cluster: 3 control-plane replicas and 2 agents
                          (berth up --help)
  berth server [flags]    run a control-plane replica: store + API server + controllers
                          (berth server --help)
  berth agent [flags]     run a node agent (berth agent --help)
  berth image import PATH | ls | rm REF
                          the agent's images, for nodes without a registry: import an OCI
                          layout or a docker save tarball (berth image --help)
  berth secrets rotate-key --encryption-provider-config FILE [--endpoints URLS]
                          re-encrypt every Secret in the store with the file's first key
                          (after making it first on every server); secrets generate-key
                          prints a new key (berth secrets --help)
  berth pki init --dir DIR | issue ... | kubeconfig ...
                          the cluster's CA and certificates, for the servers, agents and
                          users of a real deployment (berth pki --help)
  berth store [flags]     run a store replica alone; etcd's flags (berth store --help)
  berth store snapshot restore FILE [flags] | status FILE [-w table|json]
                          etcdutl's snapshot tools for `etcdctl snapshot save` files
  berth apply -f FILE     create or update objects from YAML or JSON manifests (a file, a directory, or -)
  berth get TYPE [NAME]   list objects; TYPE: pods, deployments, replicasets, nodes, namespaces
                          (-n NS | -A, -l SELECTOR, -o wide|yaml|json|name, -w to watch)
  berth describe TYPE [NAME]
                          show objects in detail
  berth delete TYPE NAME  delete objects (or -f FILE, or TYPE -l SELECTOR)
  berth logs POD          print a container's logs (-c CONTAINER, -f to follow)
  berth scale deployment/NAME --replicas N
                          set a deployment's number of replicas
  berth version           print the version

Environment:
  BERTH_SERVER            the API server(s) for the commands above, comma-separated
                          (else --server/-s, else http://127.0.0.1:8080,:8081,:8082)
  RUST_LOG                log filter (overrides --log-level), e.g. RUST_LOG=berth_store=debug
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("store") => berth_store::role::run(&args[1..], env!("CARGO_PKG_VERSION")),
        Some("server") => roles::server::run(&args[1..]),
        Some("agent") => roles::agent::run(&args[1..]),
        Some("image") => roles::image::run(&args[1..]),
        Some("secrets") => roles::secrets::run(&args[1..]),
        Some("pki") => roles::pki::run(&args[1..]),
        // Not for people: a container's supervisor runs it (see berth_node::runtime::log_writer).
        Some(berth_node::runtime::log_writer::SUBCOMMAND) => berth_node::runtime::log_writer::main(&args[1..]),
        Some("up") => roles::up::run(&args[1..]),
        Some(c @ ("apply" | "get" | "describe" | "delete" | "logs" | "scale")) => berth_cli::run(c, &args[1..]),
        Some("version" | "--version") => {
            println!("{}", berth_store::role::version_line(env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Some(other) => {
            berth_cli::err_line(format_args!("berth: unknown command {other:?}\n\n{USAGE}"));
            ExitCode::from(2)
        }
    }
}
