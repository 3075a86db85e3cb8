//! The command line of `berth store`, which is etcd 3.4's.
//!
//! People who run etcd already know these flags, so they keep etcd's names, defaults,
//! value syntax (`--flag value` or `--flag=value`, Go's `-flag` too), environment
//! variables (`ETCD_` + the flag name upper-cased, dashes as underscores) and the
//! wording of etcd's checks. This is plain `std` rather than clap because clap can
//! neither take Go's single-dash long flags nor tell an *unknown* flag from an etcd flag
//! berth has not implemented yet, and the second deserves its own message: silently
//! ignoring `--wal-dir` or `--cert-file` would run a store the operator did not ask for.
//!
//! ```text
//!  args ──► scan (flag → raw value; help, version, unknown and unsupported flags stop here)
//!                 │
//!  env  ──► raw values for flags the args did not set (ETCD_NAME, ...; args win)
//!                 │
//!                 ▼
//!        apply each value onto the etcd defaults (per-flag syntax checks)
//!                 │
//!                 ▼
//!        derive unset values (advertise URLs, initial cluster) and cross-check them
//!        (election timeout vs heartbeat, this member in --initial-cluster, retention)
//! ```
//!
//! Where berth is kinder than etcd, it only accepts command lines etcd refuses:
//! etcd demands `--advertise-client-urls` once `--listen-client-urls` is set and keeps
//! advertising `http://localhost:2380` when only `--listen-peer-urls` is set; berth
//! advertises the listen URLs instead when they name a host (not `0.0.0.0`), and, when
//! `--initial-cluster` is not given, builds it from `--name` and every
//! `--initial-advertise-peer-urls` URL (etcd does that only when `--name` changed).
//!
//! One file per step or concern: `raw_values` scans the arguments and the environment,
//! `flag` holds the table of flags and applies each value (with `url`, `duration` and
//! `retention` for value syntax), `defaults` holds etcd's defaults and derives the unset
//! values, `validation` cross-checks them, and `store_config` turns the result into the
//! store's configuration. `unsupported` lists the etcd flags refused by name, and `usage`
//! is the help text.

mod defaults;
mod duration;
mod error;
mod flag;
mod raw_values;
mod retention;
mod store_config;
mod store_flags;
mod unsupported;
mod url;
mod usage;
mod validation;

pub use crate::config::ClusterState;
pub use defaults::{DEFAULT_NAME, DEFAULT_QUOTA_BACKEND_BYTES};
pub use duration::parse_duration_ms;
pub use error::FlagError;
pub use retention::{CompactionMode, CompactionRetention, parse_retention};
pub use store_flags::StoreFlags;
pub use usage::STORE_USAGE;
pub use validation::MAX_ELECTION_TIMEOUT_MS;

use defaults::derive_unset;
use flag::{Flag, apply};
use raw_values::{Source, read_env, scan_args};
use validation::check;

/// Parses the arguments after `berth store`, with etcd's `ETCD_*` environment variables
/// filling in flags that the arguments do not set.
pub fn parse_store_flags(args: &[String]) -> Result<StoreFlags, FlagError> {
    parse_store_flags_with_env(args, &|var| std::env::var(var).ok())
}

/// [`parse_store_flags`] with the environment given as a lookup, for tests.
pub fn parse_store_flags_with_env(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreFlags, FlagError> {
    let mut raw: Vec<Option<(String, Source)>> = vec![None; Flag::ALL.len()];
    scan_args(args, &mut raw)?;
    read_env(env, &mut raw)?;

    let mut flags = StoreFlags::default();
    for flag in Flag::ALL {
        if let Some((value, source)) = &raw[flag.index()] {
            apply(&mut flags, flag, value).map_err(|error| source.attach(error))?;
        }
    }
    let is_set = |flag: Flag| raw[flag.index()].is_some();
    derive_unset(&mut flags, &is_set)?;
    check(&flags, &raw)?;
    Ok(flags)
}

#[cfg(test)]
mod tests;
