//! The kubectl-like commands: `berth apply|get|describe|delete|logs|scale`.
//!
//! ```text
//!  argv ──clap──► XxxArgs ──► command (async: REST calls through ApiClient)
//!                                 │ objects
//!                                 ▼
//!               pure renderers (table, description) and decisions (apply's plan)
//!                                 │ text
//!                                 ▼
//!                    stdout; errors on stderr as kubectl words them
//! ```
//!
//! Exit codes: 0 done; 1 the server refused something, or it could not be reached;
//! 2 bad flags (clap's message).

mod apply;
mod client;
mod delete;
mod describe;
mod description;
mod error;
mod get;
mod kinds;
pub mod kubeconfig;
mod logs;
mod manifest;
mod scale;
mod table;
mod tabwriter;
mod watch;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use client::ApiClient;
use error::CliError;

/// The local cluster `berth up` starts: three API servers, tried in this order.
pub const DEFAULT_SERVERS: &str = "http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082";

/// Flags every command takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// The API server URL(s), comma-separated, tried in order [default: $BERTH_SERVER, else the local cluster]
    #[arg(short = 's', long = "server", value_name = "URL[,URL...]")]
    pub server: Option<String>,
    /// The namespace [default: default]
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// The kubeconfig file: the server, its CA and the user [default: $KUBECONFIG, else ~/.kube/config]
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl Common {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }

    /// The client of the API server the flags, the environment and the kubeconfig
    /// name (see `kubeconfig`).
    pub fn client(&self) -> Result<ApiClient, CliError> {
        let server_env = std::env::var("BERTH_SERVER").ok();
        let kubeconfig_env = std::env::var("KUBECONFIG").ok();
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let connection = kubeconfig::connection(&kubeconfig::Sources {
            server_flag: self.server.as_deref(),
            server_env: server_env.as_deref(),
            kubeconfig_flag: self.kubeconfig.as_deref(),
            kubeconfig_env: kubeconfig_env.as_deref(),
            home: home.as_deref(),
        })
        .map_err(CliError::Message)?;
        Ok(ApiClient::from_connection(connection))
    }
}

/// `--server`, else `$BERTH_SERVER`, else the local cluster; a comma-separated
/// list is the failover order.
pub fn servers(flag: Option<&str>, env: Option<&str>) -> Vec<String> {
    let chosen = [flag, env]
        .into_iter()
        .flatten()
        .find(|s| !s.trim().is_empty())
        .unwrap_or(DEFAULT_SERVERS);
    chosen
        .split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Writes to stdout; a closed pipe (`berth get pods | head -1`) ends the command
/// quietly, as it would end kubectl.
pub fn out(text: &str) {
    out_bytes(text.as_bytes());
}

/// [`out`] for bytes that need not be UTF-8 (a container's logs).
pub fn out_bytes(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(bytes).and_then(|()| stdout.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Writes a line to stderr; a closed stderr is ignored rather than a panic (what
/// `eprintln!` would do), so that `berth ... 2>&-` still runs to its end.
pub fn err_line(text: impl std::fmt::Display) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

enum Command {
    Apply(apply::ApplyArgs),
    Get(get::GetArgs),
    Describe(describe::DescribeArgs),
    Delete(delete::DeleteArgs),
    Logs(logs::LogsArgs),
    Scale(scale::ScaleArgs),
}

fn parse(command: &str, args: &[String]) -> Result<Command, clap::Error> {
    let argv = std::iter::once(format!("berth {command}")).chain(args.iter().cloned());
    Ok(match command {
        "apply" => Command::Apply(apply::ApplyArgs::try_parse_from(argv)?),
        "get" => Command::Get(get::GetArgs::try_parse_from(argv)?),
        "describe" => Command::Describe(describe::DescribeArgs::try_parse_from(argv)?),
        "delete" => Command::Delete(delete::DeleteArgs::try_parse_from(argv)?),
        "logs" => Command::Logs(logs::LogsArgs::try_parse_from(argv)?),
        "scale" => Command::Scale(scale::ScaleArgs::try_parse_from(argv)?),
        other => {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidSubcommand,
                format!("unknown command {other:?}\n"),
            ));
        }
    })
}

/// Runs `berth <command> <args>`.
pub fn run(command: &str, args: &[String]) -> ExitCode {
    let command = match parse(command, args) {
        Ok(command) => command,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::err_line(format_args!("error: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Apply(args) => apply::run(args).await,
            Command::Get(args) => get::run(args).await,
            Command::Describe(args) => describe::run(args).await,
            Command::Delete(args) => delete::run(args).await,
            Command::Logs(args) => logs::run(args).await,
            Command::Scale(args) => scale::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported) => ExitCode::FAILURE,
        Err(e) => {
            crate::err_line(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_from_the_flag_the_environment_or_the_local_cluster() {
        assert_eq!(servers(Some("http://a:1"), Some("http://b:2")), ["http://a:1"]);
        assert_eq!(
            servers(None, Some("http://b:2, http://c:3/")),
            ["http://b:2", "http://c:3"]
        );
        assert_eq!(servers(None, Some("")).len(), 3);
        assert_eq!(servers(None, None)[0], "http://127.0.0.1:8080");
    }

    #[test]
    fn flags_are_spelled_as_kubectl_spells_them() {
        let args = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let Ok(Command::Get(get)) = parse(
            "get",
            &args(&[
                "pods",
                "-n",
                "shop",
                "-l",
                "app=web",
                "-o",
                "wide",
                "-w",
                "-s",
                "http://x:1",
            ]),
        ) else {
            panic!("get did not parse");
        };
        assert_eq!(get.common.namespace(), "shop");
        assert_eq!(get.selector.as_deref(), Some("app=web"));
        assert!(get.watch);
        assert!(matches!(parse("get", &args(&["pods", "-o", "jsonpath"])), Err(e) if e.exit_code() == 2));
        assert!(matches!(parse("scale", &args(&["deploy/web"])), Err(e) if e.exit_code() == 2));
        assert!(matches!(parse("scale", &args(&["deploy/web", "--replicas", "-1"])), Err(e) if e.exit_code() == 2));
        assert!(parse("scale", &args(&["deploy/web", "--replicas", "3"])).is_ok());
        assert!(parse("apply", &args(&["-f", "-"])).is_ok());
        assert!(matches!(parse("apply", &args(&[])), Err(e) if e.exit_code() == 2));
        let Ok(Command::Logs(logs)) = parse("logs", &args(&["web-1", "-c", "http", "-f"])) else {
            panic!("logs did not parse");
        };
        assert!(logs.follow);
        assert_eq!(logs.container.as_deref(), Some("http"));
    }
}
