//! `berth-bench secrets`: what encryption at rest costs on Secret writes. One
//! `berth server` replica on loopback, started alternately without
//! `--encryption-provider-config` (Secrets stored in plain text, Kubernetes' default)
//! and with an AES-GCM key (berth's default under `berth up`); each start gets the
//! same load over its REST API, and the report gives each figure as the ratio
//! encrypted / plain.
//!
//! ```text
//!  for each round: plain, then encrypted (a fresh server and data dir each)
//!    create:  --conns writers POST --secrets Secrets of --size random bytes
//!    update:  the same writers PATCH each Secret's data (a new value)
//!    get:     the same connections GET each Secret (the read opens the seal)
//!    check:   the store's own view of one Secret (etcd port): sealed
//!             (`k8s:enc:aesgcm:v1:`) when encrypted, the plain JSON otherwise
//!  report: medians over the rounds of each mode; ratios encrypted / plain
//! ```
//!
//! Alternating the two modes round by round spreads the machine's drift over both.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use hyper::body::Bytes;
use serde_json::json;

use crate::api::http::Connection;
use crate::api::server::{ServerUnderTest, server_flags};
use crate::berth_binary::BerthBinary;
use crate::budget::Budget;
use crate::compare::machine;
use crate::driver::{DriveOptions, Operation, drive};
use crate::duration::parse_duration;
use crate::paired::{self, Run};
use crate::report::Report;

const NAMESPACE: &str = "bench";
/// The sealed values' prefix under the key this benchmark writes.
const SEALED: &str = "k8s:enc:aesgcm:v1:bench:";

#[derive(clap::Args, Clone, Debug)]
pub struct SecretsOptions {
    /// Secrets created, then updated, then read, per server.
    #[arg(long, default_value_t = 3000)]
    pub secrets: u64,

    /// Bytes of each Secret's one value (random, so nothing compresses).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,

    /// Keep-alive connections, one writer on each.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,

    /// Rounds; each starts a plain server, then an encrypted one.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Longest time each phase may run.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub duration: Duration,

    #[command(flatten)]
    pub binary: BerthBinary,
}

/// How Secrets are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    Encrypted,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Encrypted => "encrypted",
        }
    }
}

const PHASES: [&str; 3] = ["create", "update", "get"];

pub async fn run_until_interrupted(options: &SecretsOptions) -> anyhow::Result<()> {
    crate::compare::until_interrupted(run(options)).await
}

pub async fn run(options: &SecretsOptions) -> anyhow::Result<()> {
    ensure!(options.secrets >= 1, "--secrets must be at least 1");
    ensure!(options.conns >= 1, "--conns must be at least 1");
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let (binary, temp) = options.binary.prepare("berth-bench-secrets-")?;
    let config = temp.path().join("encryption-config.yaml");
    write_encryption_config(&config)?;
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for mode in [Mode::Plain, Mode::Encrypted] {
            eprintln!("-- round {} of {}: {}", round + 1, options.rounds, mode.name());
            let root = temp.path().join(format!("{}-{round}", mode.name()));
            let extra = match mode {
                Mode::Plain => Vec::new(),
                Mode::Encrypted => vec![format!("--encryption-provider-config={}", config.display())],
            };
            let mut server = ServerUnderTest::start_with(&binary, &root, extra)?;
            server.wait_until_ready().await?;
            let phases = measure(options, &mut server).await?;
            check_stored_form(&server, mode).await?;
            runs.push(Run {
                second: mode == Mode::Encrypted,
                phases,
            });
        }
    }
    let mut text = String::from("## Encryption at rest: Secret writes\n\n");
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
        "- server: one `berth server` replica on 127.0.0.1 (`{}`), plain or with \
         `--encryption-provider-config` (aesgcm, a 32-byte key); {} Secrets of {} random bytes, \
         {} writers on keep-alive connections; medians of {} rounds",
        server_flags().join(" "),
        options.secrets,
        options.size,
        options.conns,
        options.rounds
    );
    text.push_str(&paired::render("secrets", &PHASES, ["plain", "encrypted"], &runs));
    print!("{text}");
    Ok(())
}

/// An EncryptionConfiguration with one random AES-256 key named `bench` for Secrets.
fn write_encryption_config(path: &Path) -> anyhow::Result<()> {
    let key = random_bytes(32)?;
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  \
         providers:\n  - aesgcm:\n      keys:\n      - name: bench\n        secret: {}\n  - identity: {{}}\n",
        STANDARD.encode(key)
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

fn secret_path(index: u64) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/secrets/s-{index:06}")
}

/// One writer's connection and what it sends: ticket `i` is Secret `i`.
struct SecretWriter {
    connection: Connection,
    phase: &'static str,
    /// The value's bytes, base64 (the same for every Secret: its cost is the size).
    value: Arc<String>,
}

impl Operation for SecretWriter {
    async fn run(&mut self, ticket: u64) -> anyhow::Result<()> {
        let json = |body: serde_json::Value| Bytes::from(body.to_string());
        match self.phase {
            "create" => {
                let body = json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": format!("s-{ticket:06}"), "namespace": NAMESPACE},
                    "data": {"value": *self.value},
                });
                let path = format!("/api/v1/namespaces/{NAMESPACE}/secrets");
                self.connection
                    .request(Method::POST, &path, Some(("application/json", json(body))))
                    .await?
                    .expect(201)?;
            }
            "update" => {
                let body = json!({"data": {"value": *self.value, "version": "Mg=="}});
                self.connection
                    .request(
                        Method::PATCH,
                        &secret_path(ticket),
                        Some(("application/merge-patch+json", json(body))),
                    )
                    .await?
                    .expect(200)?;
            }
            _ => {
                self.connection
                    .request(Method::GET, &secret_path(ticket), None)
                    .await?
                    .expect(200)?;
            }
        }
        Ok(())
    }
}

async fn measure(options: &SecretsOptions, server: &mut ServerUnderTest) -> anyhow::Result<Vec<Report>> {
    let authority = server.api_authority.clone();
    let endpoints = [format!("http://{authority}")];
    let mut setup = Connection::open(&authority).await?;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    setup
        .request(
            Method::POST,
            "/api/v1/namespaces",
            Some(("application/json", Bytes::from(namespace.to_string()))),
        )
        .await?
        .expect(201)?;
    let value = Arc::new(STANDARD.encode(random_bytes(options.size)?));
    let mut writers = Vec::with_capacity(options.conns);
    for _ in 0..options.conns {
        writers.push(SecretWriter {
            connection: Connection::open(&authority).await?,
            phase: "create",
            value: value.clone(),
        });
    }
    let mut reports = Vec::new();
    for phase in PHASES {
        for writer in &mut writers {
            writer.phase = phase;
        }
        let budget = Arc::new(Budget::new(options.secrets, options.duration));
        let drive_options = DriveOptions {
            request_timeout: Duration::from_secs(30),
            rate: 0.0,
        };
        let (back, outcome) = drive(phase, writers, budget, drive_options).await;
        writers = back;
        let report = Report::new(
            &format!("secrets-{phase}"),
            &endpoints,
            options.conns,
            options.conns,
            outcome,
        );
        eprint!("{}", report.human());
        if report.errors > 0 || report.requests < options.secrets {
            bail!(
                "{phase}: {} of {} requests succeeded ({} errors: {:?})",
                report.requests,
                options.secrets,
                report.errors,
                report.error_counts
            );
        }
        server.check_running()?;
        reports.push(report);
    }
    Ok(reports)
}

/// What the store holds for the first Secret, read on the etcd port: sealed under
/// the benchmark's key when encrypted, the Secret's JSON when plain.
async fn check_stored_form(server: &ServerUnderTest, mode: Mode) -> anyhow::Result<()> {
    let mut client = etcd_client::Client::connect(server.store_endpoints(), None)
        .await
        .context("connecting to the store")?;
    let key = format!("/registry/secrets/{NAMESPACE}/s-000000");
    let answer = client
        .get(key.as_str(), None)
        .await
        .context("reading a Secret from the store")?;
    let value = answer.kvs().first().map(|kv| kv.value().to_vec()).unwrap_or_default();
    let sealed = value.starts_with(SEALED.as_bytes());
    match mode {
        Mode::Encrypted if !sealed => bail!("{key} is not sealed under the benchmark's key"),
        Mode::Plain if sealed || !value.starts_with(b"{") => bail!("{key} is not the plain JSON"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_benchmarks_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        write_encryption_config(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("- name: bench"), "{text}");
        let secret = text.lines().find_map(|l| l.trim().strip_prefix("secret: ")).unwrap();
        assert_eq!(STANDARD.decode(secret).unwrap().len(), 32);
    }
}
