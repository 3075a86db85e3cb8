//! `--auto-tls` and `--peer-auto-tls`: a self-signed certificate made at start-up, as
//! etcd makes it: `cert.pem` and `key.pem` in `<data-dir>/fixtures/client` (or `peer`),
//! naming the listen URLs' hosts, valid for `--self-signed-cert-validity` years. A
//! replica that restarts reuses the pair it made, so its identity stays put.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

use crate::error::{Result, StoreError};

const DAYS_PER_YEAR: u64 = 365;

/// The certificate and key files for `hosts` in `dir`, made if they are not there yet.
pub(super) fn self_signed_pair(dir: &Path, hosts: &[String], validity_years: u32) -> Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Internal(format!("auto-tls: {what} in {}: {e}", dir.display()))
    };
    let key = KeyPair::generate().map_err(|e| failed("generating a key", &e))?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(|e| failed("naming the hosts", &e))?;
    params.distinguished_name.push(DnType::OrganizationName, "berth");
    params.distinguished_name.push(DnType::CommonName, "berth auto-tls");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Peers present the same certificate as servers and as clients.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = SystemTime::now();
    let validity = Duration::from_secs(u64::from(validity_years) * DAYS_PER_YEAR * 24 * 3600);
    params.not_before = now.into();
    params.not_after = (now + validity).into();
    let cert = params
        .self_signed(&key)
        .map_err(|e| failed("signing the certificate", &e))?;

    std::fs::create_dir_all(dir).map_err(|e| failed("creating the directory", &e))?;
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| failed("writing key.pem", &e))?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| failed("writing cert.pem", &e))?;
    Ok((cert_path, key_path))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The hosts a certificate for these listen URLs names: each URL's host, without
/// brackets or port (an IP address becomes an IP name, anything else a DNS name).
pub(super) fn hosts_of(urls: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for url in urls {
        let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !host.is_empty() && !hosts.iter().any(|known| known == host) {
            hosts.push(host.to_string());
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("fixtures").join("client");
        let hosts = hosts_of(&["https://127.0.0.1:2379".to_string(), "https://[::1]:2379".to_string()]);
        assert_eq!(hosts, vec!["127.0.0.1", "::1"]);
        let (cert, key) = self_signed_pair(&fixtures, &hosts, 1).unwrap();
        let first = std::fs::read(&cert).unwrap();
        assert!(String::from_utf8_lossy(&first).contains("BEGIN CERTIFICATE"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, _) = self_signed_pair(&fixtures, &hosts, 1).unwrap();
        assert_eq!(std::fs::read(again).unwrap(), first, "a restart reuses the pair");
    }
}
