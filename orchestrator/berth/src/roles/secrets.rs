//! `berth secrets rotate-key` (also `rewrite`): re-encrypts every Secret in the
//! store with the first key of an EncryptionConfiguration, the step of a key
//! rotation that follows making the new key first on every server; and `berth
//! secrets generate-key`, a new random key for such a file.
//!
//! It talks to the store (etcd's API), not to an API server, and reads with every
//! key of the file, so the old key must still be in it; when a Secret is one that
//! none of them decrypts, it is named, nothing is rewritten, and the command fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use super::store_client::{self, StoreClientFlags};
use berth_client::envelope::{Envelope, config, rewrite};

/// Where Secrets are stored.
const SECRETS: &str = "/registry/secrets/";

#[derive(Parser, Debug)]
#[command(name = "berth secrets", about = "Secrets' encryption at rest")]
pub struct SecretsFlags {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Subcommand, Debug)]
enum SecretsCommand {
    /// Re-encrypt every Secret with the first key of the file's first provider
    /// (the file the servers run with, after the new key was made first on every
    /// one of them). Keep the old key in the file until this is done.
    #[command(visible_alias = "rewrite")]
    RotateKey {
        /// The EncryptionConfiguration the servers run with.
        #[arg(long, value_name = "FILE")]
        encryption_provider_config: PathBuf,
        /// The store's client URLs, comma-separated.
        #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
        endpoints: Vec<String>,
        #[command(flatten)]
        store_client: StoreClientFlags,
    },
    /// Print a new random 32-byte key, base64, for an aesgcm provider's `secret`.
    GenerateKey,
}

pub fn run(args: &[String]) -> ExitCode {
    let flags: SecretsFlags = match super::parse_flags("secrets", args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match flags.command {
        SecretsCommand::GenerateKey => generate_key(),
        SecretsCommand::RotateKey {
            encryption_provider_config,
            endpoints,
            store_client,
        } => {
            let envelope = match config::load(&encryption_provider_config) {
                Ok(envelope) => Arc::new(envelope),
                Err(e) => {
                    berth_cli::err_line(format_args!("berth secrets: --encryption-provider-config {e}"));
                    return ExitCode::from(2);
                }
            };
            let runtime = match super::tokio_runtime("secrets") {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            runtime.block_on(rotate(envelope, &endpoints, &store_client))
        }
    }
}

fn generate_key() -> ExitCode {
    match config::new_key() {
        Ok(key) => {
            println!("{key}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            berth_cli::err_line(format_args!("berth secrets: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn rotate(envelope: Arc<Envelope>, endpoints: &[String], store_client: &StoreClientFlags) -> ExitCode {
    let first = envelope.sealing_key(SECRETS).map(str::to_string);
    let raw = match store_client::connect(endpoints, store_client) {
        Ok(kv) => kv,
        Err(e) => {
            berth_cli::err_line(format_args!("berth secrets: {e}"));
            return ExitCode::from(2);
        }
    };
    let report = match rewrite::rewrite_all(&raw, envelope, SECRETS).await {
        Ok(report) => report,
        Err(e) => {
            berth_cli::err_line(format_args!("berth secrets: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match &first {
        Some(key) => println!("rewrote {} secret(s) with key {key:?}", report.rewritten),
        None => println!(
            "rewrote {} secret(s) in plain text (the first provider is identity)",
            report.rewritten
        ),
    }
    for (how, count) in &report.stored_with {
        println!("  {count} stored with {how}");
    }
    if report.unreadable.is_empty() {
        return ExitCode::SUCCESS;
    }
    for message in &report.unreadable {
        berth_cli::err_line(format_args!("berth secrets: {message}"));
    }
    berth_cli::err_line(format_args!(
        "berth secrets: {} secret(s) cannot be decrypted with this file's keys, so none was rewritten; \
         add the key that encrypted them to the file and run this again",
        report.unreadable.len()
    ));
    ExitCode::FAILURE
}
