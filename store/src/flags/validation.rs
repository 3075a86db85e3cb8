//! The checks that involve several flags, run once every value is applied and derived:
//! the election timeout against the heartbeat, the retention against its mode, and this
//! member against `--initial-cluster`. An error names the environment variable when the
//! flag it blames was set by one.

use super::flag::Flag;
use super::raw_values::Source;
use super::{ClusterState, FlagError, StoreFlags};
use crate::config::TlsInfo;

/// etcd refuses election timeouts above this.
pub const MAX_ELECTION_TIMEOUT_MS: u64 = 50_000;

/// The checks that involve several flags, in etcd's order.
pub(super) fn check(flags: &StoreFlags, raw: &[Option<(String, Source)>]) -> Result<(), FlagError> {
    let source_of = |flag: Flag| {
        raw[flag.index()]
            .as_ref()
            .map_or(Source::Arg, |(_, source)| source.clone())
    };

    if flags.heartbeat_interval_ms == 0 {
        return Err(source_of(Flag::HeartbeatInterval).attach(FlagError::InvalidValue {
            flag: Flag::HeartbeatInterval.dashed(),
            value: "0".to_string(),
            reason: "must be greater than 0".to_string(),
        }));
    }
    if flags.heartbeat_interval_ms.saturating_mul(5) > flags.election_timeout_ms {
        return Err(FlagError::ElectionTimeoutTooShort {
            election_timeout_ms: flags.election_timeout_ms,
            heartbeat_interval_ms: flags.heartbeat_interval_ms,
        });
    }
    if flags.election_timeout_ms > MAX_ELECTION_TIMEOUT_MS {
        return Err(FlagError::ElectionTimeoutTooLong {
            election_timeout_ms: flags.election_timeout_ms,
        });
    }

    flags
        .compaction_retention()
        .map_err(|error| source_of(Flag::AutoCompactionRetention).attach(error))?;

    check_tls(
        &flags.client_tls,
        Flag::CertFile,
        Flag::KeyFile,
        Flag::ClientCertAuth,
        Flag::TrustedCaFile,
    )?;
    check_tls(
        &flags.peer_tls,
        Flag::PeerCertFile,
        Flag::PeerKeyFile,
        Flag::PeerClientCertAuth,
        Flag::PeerTrustedCaFile,
    )?;

    check_local_member(flags).map_err(|error| source_of(Flag::InitialCluster).attach(error))
}

/// A certificate comes with its key, and client-certificate authentication with the
/// CAs that vouch for clients (with auto-tls, any certificate is taken instead, as
/// nobody's is verified there).
fn check_tls(info: &TlsInfo, cert: Flag, key: Flag, client_cert_auth: Flag, trusted_ca: Flag) -> Result<(), FlagError> {
    if info.cert_file.is_some() != info.key_file.is_some() {
        let (given, missing) = if info.cert_file.is_some() {
            (cert, key)
        } else {
            (key, cert)
        };
        return Err(FlagError::FlagNeedsFlag {
            flag: given.dashed(),
            needs: missing.dashed(),
            why: "a certificate is served with its private key".to_string(),
        });
    }
    if info.client_cert_auth && info.trusted_ca_file.is_none() && !info.auto_tls {
        return Err(FlagError::FlagNeedsFlag {
            flag: client_cert_auth.dashed(),
            needs: trusted_ca.dashed(),
            why: "the CAs whose client certificates are accepted".to_string(),
        });
    }
    Ok(())
}

/// etcd's bootstrap check: this member is in `--initial-cluster`, and when bootstrapping
/// a new cluster, with exactly the peer URLs it advertises (a member joining an existing
/// cluster learns its URLs from the cluster, so etcd only wants its name there). Also
/// refuses a peer URL given to two members, which could never be told apart.
fn check_local_member(flags: &StoreFlags) -> Result<(), FlagError> {
    for (index, (name, url)) in flags.initial_cluster.iter().enumerate() {
        if flags.initial_cluster[..index].iter().any(|(_, earlier)| earlier == url) {
            return Err(FlagError::InvalidClusterEntry {
                entry: format!("{name}={url}"),
                reason: format!("peer URL {url} appears more than once"),
            });
        }
    }

    let members = flags.initial_cluster_members();
    let Some((_, cluster_urls)) = members.iter().find(|(name, _)| *name == flags.name) else {
        return Err(FlagError::MemberNotInCluster {
            name: flags.name.clone(),
            cluster_names: members.iter().map(|(name, _)| name.to_string()).collect(),
        });
    };
    if flags.initial_cluster_state == ClusterState::Existing {
        return Ok(());
    }
    let mut cluster_sorted: Vec<&str> = cluster_urls.clone();
    cluster_sorted.sort_unstable();
    let mut advertised_sorted: Vec<&str> = flags.initial_advertise_peer_urls.iter().map(String::as_str).collect();
    advertised_sorted.sort_unstable();
    advertised_sorted.dedup();
    if cluster_sorted != advertised_sorted {
        return Err(FlagError::PeerUrlsMismatch {
            name: flags.name.clone(),
            cluster_urls: cluster_urls.iter().map(|url| url.to_string()).collect(),
            advertise_urls: flags.initial_advertise_peer_urls.clone(),
        });
    }
    Ok(())
}
