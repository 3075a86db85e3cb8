//! `berth-bench api-security`: what TLS, authentication and RBAC cost the API server.
//! One `berth server` replica on loopback, started alternately plain (HTTP, every
//! request allowed, as an API server without authentication) and secure (HTTPS with
//! the cluster CA's certificate, client certificates verified, RBAC deciding each
//! request); each start gets the same load, and the report gives each figure as the
//! ratio secure / plain.
//!
//! ```text
//!  a CA made for the run ─► the server's certificate (127.0.0.1), an admin
//!  (system:masters) and a user in group bench-team, bound to the `edit` ClusterRole
//!  in namespace bench by a RoleBinding (so RBAC walks a binding for every request)
//!  for each round: plain, then secure (a fresh server and data dir each)
//!    create:  --conns clients, each on its own keep-alive connection, POST pod i
//!    get:     the same connections GET pod i
//!    list:    the same connections list every pod in pages of 500 (one ticket a
//!             whole list)
//!  report: medians over the rounds of each way; ratios secure / plain
//! ```
//!
//! The user's requests are authenticated by the certificate presented in the TLS
//! handshake (once per connection) and authorized per request, as kube-apiserver's.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth_pki::{Ca, Identity, Profile};
use hyper::Method;
use hyper::body::Bytes;
use rustls::ClientConfig;
use serde_json::{Value, json};

use crate::api::http::Connection;
use crate::api::pods::{CreatePod, NAMESPACE, collection_path};
use crate::api::server::{ServerUnderTest, server_flags};
use crate::berth_binary::BerthBinary;
use crate::budget::Budget;
use crate::compare::machine;
use crate::driver::{DriveOptions, Operation, drive};
use crate::duration::parse_duration;
use crate::paired::{self, Run};
use crate::report::Report;

/// The group the benchmark's user is in, bound to `edit` in the namespace.
const GROUP: &str = "bench-team";
/// Items per page of the lists, kubectl's default chunk size.
const PAGE: usize = 500;
const PHASES: [&str; 3] = ["create", "get", "list"];

#[derive(clap::Args, Clone, Debug)]
pub struct SecurityOptions {
    /// Pods created, then read one by one, per server; every list holds them all.
    #[arg(long, default_value_t = 5000)]
    pub pods: u64,

    /// Whole paged lists per server.
    #[arg(long, default_value_t = 80)]
    pub lists: u64,

    /// Keep-alive connections, one client on each.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,

    /// Rounds; each starts a plain server, then a secure one.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Longest time each phase may run.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub duration: Duration,

    #[command(flatten)]
    pub binary: BerthBinary,
}

/// The run's certificates: the server's files, and the two clients' TLS settings.
struct Credentials {
    flags: Vec<String>,
    admin: Arc<ClientConfig>,
    user: Arc<ClientConfig>,
}

impl Credentials {
    fn make(dir: &Path) -> anyhow::Result<Credentials> {
        let ca = Ca::create("berth-bench-ca")?;
        let server = ca.issue(&Profile::server("kube-apiserver", &["127.0.0.1".to_owned()]))?;
        ca.identity.write(dir, "ca")?;
        server.write(dir, "apiserver")?;
        let client = |identity: &Identity| berth_pki::tls::client_config(&ca.identity.cert_pem, Some(identity), &[]);
        let file = |name: &str| dir.join(name).display().to_string();
        Ok(Credentials {
            flags: vec![
                format!("--tls-cert-file={}", file("apiserver.crt")),
                format!("--tls-private-key-file={}", file("apiserver.key")),
                format!("--client-ca-file={}", file("ca.crt")),
                "--authorization-mode=RBAC".to_owned(),
            ],
            admin: client(&ca.issue(&Profile::client("bench-admin", &["system:masters"]))?)?,
            user: client(&ca.issue(&Profile::client("bench-user", &[GROUP]))?)?,
        })
    }
}

pub async fn run_until_interrupted(options: &SecurityOptions) -> anyhow::Result<()> {
    crate::compare::until_interrupted(run(options)).await
}

pub async fn run(options: &SecurityOptions) -> anyhow::Result<()> {
    ensure!(options.pods >= 1, "--pods must be at least 1");
    ensure!(options.lists >= 1, "--lists must be at least 1");
    ensure!(options.conns >= 1, "--conns must be at least 1");
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let (binary, temp) = options.binary.prepare("berth-bench-security-")?;
    let credentials = Credentials::make(&temp.path().join("pki"))?;
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for secure in [false, true] {
            let way = if secure { "secure" } else { "plain" };
            eprintln!("-- round {} of {}: {way}", round + 1, options.rounds);
            let root = temp.path().join(format!("{way}-{round}"));
            let extra = if secure { credentials.flags.clone() } else { Vec::new() };
            let mut server = ServerUnderTest::start_with(&binary, &root, extra)?;
            if secure {
                server.tls = Some(credentials.admin.clone());
            }
            server.wait_until_ready().await?;
            let user = secure.then(|| credentials.user.clone());
            let phases = measure(options, &mut server, user.as_ref()).await?;
            runs.push(Run { second: secure, phases });
        }
    }
    let mut text = String::from("## TLS, authentication and RBAC on the API server\n\n");
    for (name, value) in machine::describe(temp.path()) {
        let _ = writeln!(text, "- {name}: {value}");
    }
    let _ = writeln!(
        text,
        "- berth: {}{}",
        machine::first_line(machine::command_output(&binary.display().to_string(), &["version"])),
        crate::compare::berth_provenance(&binary)
    );
    let _ = writeln!(text, "- command: `{}`", std::env::args().collect::<Vec<_>>().join(" "));
    let _ = writeln!(
        text,
        "- server: one `berth server` replica on 127.0.0.1 (`{}`); plain: HTTP, no \
         authentication; secure: `{}`, the clients presenting a certificate of group {GROUP}, \
         bound to `edit` in namespace {NAMESPACE}; {} pods, {} paged lists of {PAGE}, {} \
         clients on keep-alive connections; medians of {} rounds",
        server_flags().join(" "),
        credentials
            .flags
            .iter()
            .map(|f| f.split('=').next().unwrap_or(f))
            .collect::<Vec<_>>()
            .join(" "),
        options.pods,
        options.lists,
        options.conns,
        options.rounds
    );
    text.push_str(&paired::render("api-security", &PHASES, ["plain", "secure"], &runs));
    print!("{text}");
    Ok(())
}

/// The namespace, and for a secure server the user's RoleBinding, made as the admin;
/// returns once the user may create pods there (RBAC sees bindings through a watch).
async fn set_up(server: &ServerUnderTest, user: Option<&Arc<ClientConfig>>) -> anyhow::Result<()> {
    let authority = &server.api_authority;
    let mut admin = Connection::open_with(authority, server.tls.as_ref()).await?;
    let post = |path: &'static str, body: Value| (path, Bytes::from(body.to_string()));
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let (path, body) = post("/api/v1/namespaces", namespace);
    admin
        .request(Method::POST, path, Some(("application/json", body)))
        .await?
        .expect(201)?;
    let Some(user) = user else {
        return Ok(());
    };
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bench-edit", "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}],
    });
    let path = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings");
    admin
        .request(
            Method::POST,
            &path,
            Some(("application/json", Bytes::from(binding.to_string()))),
        )
        .await?
        .expect(201)?;
    let mut connection = Connection::open_with(authority, Some(user)).await?;
    let started = Instant::now();
    loop {
        let answer = connection.get(&format!("{}?limit=1", collection_path())).await?;
        match answer.status {
            200 => return Ok(()),
            403 if started.elapsed() < Duration::from_secs(30) => tokio::time::sleep(Duration::from_millis(50)).await,
            status => bail!(
                "the user cannot list pods after its binding was made: HTTP {status}: {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
    }
}

/// Ticket `i` reads pod `i`.
struct GetPod {
    connection: Connection,
}

impl Operation for GetPod {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let path = format!("{}/{}", collection_path(), crate::api::pods::pod_name(ticket));
        self.connection.get(&path).await?.expect(200)?;
        Ok(())
    }
}

/// Each ticket lists every pod in pages; the list must hold `pods` items.
struct ListPods {
    connection: Connection,
    pods: u64,
}

impl Operation for ListPods {
    async fn run(&mut self, _ticket: u64) -> anyhow::Result<()> {
        let mut token = String::new();
        let mut items = 0;
        loop {
            let mut path = format!("{}?limit={PAGE}", collection_path());
            if !token.is_empty() {
                path.push_str("&continue=");
                path.push_str(&token);
            }
            let body = self.connection.get(&path).await?.expect(200)?;
            let page: Value = serde_json::from_slice(&body).context("a page is not JSON")?;
            items += page["items"].as_array().map_or(0, Vec::len) as u64;
            match page["metadata"]["continue"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_owned(),
                _ => break,
            }
        }
        ensure!(items == self.pods, "a list had {items} pods, not {}", self.pods);
        Ok(())
    }
}

/// Opens `n` connections as the user (plain HTTP when `user` is None).
async fn connections(authority: &str, user: Option<&Arc<ClientConfig>>, n: usize) -> anyhow::Result<Vec<Connection>> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(Connection::open_with(authority, user).await?);
    }
    Ok(all)
}

async fn measure(
    options: &SecurityOptions,
    server: &mut ServerUnderTest,
    user: Option<&Arc<ClientConfig>>,
) -> anyhow::Result<Vec<Report>> {
    set_up(server, user).await?;
    let authority = server.api_authority.clone();
    let scheme = if user.is_some() { "https" } else { "http" };
    let endpoints = [format!("{scheme}://{authority}")];
    let drive_options = || DriveOptions {
        request_timeout: Duration::from_secs(30),
        rate: 0.0,
    };
    let check = |phase: &str, report: &Report, expected: u64| -> anyhow::Result<()> {
        eprint!("{}", report.human());
        if report.errors > 0 || report.requests < expected {
            bail!(
                "{phase}: {} of {expected} requests succeeded ({} errors: {:?})",
                report.requests,
                report.errors,
                report.error_counts
            );
        }
        Ok(())
    };
    let report = |phase: &str, outcome| {
        Report::new(
            &format!("api-security-{phase}"),
            &endpoints,
            options.conns,
            options.conns,
            outcome,
        )
    };

    let creators = connections(&authority, user, options.conns)
        .await?
        .into_iter()
        .map(|connection| CreatePod {
            connection,
            path: collection_path(),
        })
        .collect();
    let budget = Arc::new(Budget::new(options.pods, options.duration));
    let (creators, outcome) = drive("create", creators, budget, drive_options()).await;
    let create = report("create", outcome);
    check("create", &create, options.pods)?;

    let getters = creators
        .into_iter()
        .map(|c| GetPod {
            connection: c.connection,
        })
        .collect();
    let budget = Arc::new(Budget::new(options.pods, options.duration));
    let (getters, outcome) = drive("get", getters, budget, drive_options()).await;
    let get = report("get", outcome);
    check("get", &get, options.pods)?;

    let listers = getters
        .into_iter()
        .map(|g| ListPods {
            connection: g.connection,
            pods: options.pods,
        })
        .collect();
    let budget = Arc::new(Budget::new(options.lists, options.duration));
    let (_, outcome) = drive("list", listers, budget, drive_options()).await;
    let list = report("list", outcome);
    check("list", &list, options.lists)?;
    server.check_running()?;
    Ok(vec![create, get, list])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secure_server_gets_its_certificate_the_ca_and_rbac() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = Credentials::make(dir.path()).unwrap();
        for file in ["ca.crt", "apiserver.crt", "apiserver.key"] {
            assert!(dir.path().join(file).exists(), "{file}");
        }
        let flags = credentials.flags.join(" ");
        for flag in [
            "--tls-cert-file=",
            "--tls-private-key-file=",
            "--client-ca-file=",
            "--authorization-mode=RBAC",
        ] {
            assert!(flags.contains(flag), "{flags}");
        }
    }
}
