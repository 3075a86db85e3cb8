//! berth's certificates: a cluster CA, the certificates it signs for the API server,
//! the store, every agent and every user, and what a certificate says about its
//! holder (the subject's CN is the user, its O values the groups, as Kubernetes reads
//! client certificates).
//!
//! ```text
//!  Ca::create ──► ca.crt + ca.key ──► Ca::issue(Profile) ──► a leaf certificate + key
//!                                     (ECDSA P-256; server, client or both)
//!  layout::init ──► the whole cluster's set (layout.rs): API server, its client of
//!                   agents, the store's server/peer/client, the admin, each node
//!  kubeconfig::write ──► a kubeconfig with the CA and a client certificate embedded
//! ```
//!
//! Keys are written readable by their owner only.

pub mod kubeconfig;
pub mod layout;
mod subject;
pub mod tls;

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

pub use subject::{Subject, subject_of_der, subject_of_pem};

/// How long the CA is valid: ten years, as kubeadm's.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a leaf certificate is valid: one year, as kubeadm's.
pub const LEAF_VALIDITY: Duration = Duration::days(365);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("making a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

pub type Result<T> = std::result::Result<T, PkiError>;

fn invalid(what: impl Into<String>, reason: impl ToString) -> PkiError {
    PkiError::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (its names and addresses are in `hosts`).
    Server,
    /// A TLS client: its CN is the user, its O values the groups.
    Client,
    /// Both: a store member's peer certificate, an agent's.
    ServerAndClient,
}

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct Profile {
    pub common_name: String,
    /// The O values: a client certificate's groups.
    pub organizations: Vec<String>,
    /// DNS names and IP addresses a server certificate is valid for.
    pub hosts: Vec<String>,
    pub usage: Usage,
    pub validity: Duration,
}

impl Profile {
    pub fn client(common_name: &str, organizations: &[&str]) -> Profile {
        Profile {
            common_name: common_name.to_string(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            hosts: Vec::new(),
            usage: Usage::Client,
            validity: LEAF_VALIDITY,
        }
    }

    pub fn server(common_name: &str, hosts: &[String]) -> Profile {
        Profile {
            common_name: common_name.to_string(),
            organizations: Vec::new(),
            hosts: hosts.to_vec(),
            usage: Usage::Server,
            validity: LEAF_VALIDITY,
        }
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    /// Writes `<dir>/<name>.crt` and `<dir>/<name>.key` (the key owner-only).
    pub fn write(&self, dir: &Path, name: &str) -> Result<()> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_file(&dir.join(format!("{name}.crt")), self.cert_pem.as_bytes(), 0o644)?;
        write_file(&dir.join(format!("{name}.key")), self.key_pem.as_bytes(), 0o600)
    }

    /// Reads `<dir>/<name>.crt` and `<dir>/<name>.key`.
    pub fn read(dir: &Path, name: &str) -> Result<Identity> {
        Ok(Identity {
            cert_pem: read_file(&dir.join(format!("{name}.crt")))?,
            key_pem: read_file(&dir.join(format!("{name}.key")))?,
        })
    }
}

/// The cluster's certificate authority.
#[derive(Debug, Clone)]
pub struct Ca {
    pub identity: Identity,
}

impl Ca {
    /// A new self-signed CA named `common_name`.
    pub fn create(common_name: &str) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            identity: Identity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        })
    }

    /// The CA in `<dir>/ca.crt` and `<dir>/ca.key`.
    pub fn read(dir: &Path) -> Result<Ca> {
        let identity = Identity::read(dir, "ca")?;
        let ca = Ca { identity };
        ca.issuer()?;
        Ok(ca)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.identity.key_pem).map_err(|e| invalid("the CA's key", e))?;
        Issuer::from_ca_cert_pem(&self.identity.cert_pem, key).map_err(|e| invalid("the CA's certificate", e))
    }

    /// A new key and a certificate for it signed by this CA.
    pub fn issue(&self, profile: &Profile) -> Result<Identity> {
        if profile.common_name.is_empty() {
            return Err(invalid("the certificate's common name", "must not be empty"));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, profile.common_name.as_str());
        match profile.organizations.as_slice() {
            [] => {}
            [one] => params.distinguished_name.push(DnType::OrganizationName, one.as_str()),
            _ => {
                return Err(invalid(
                    "the certificate's organizations",
                    "berth issues at most one (O) per certificate; bind further groups with RBAC",
                ));
            }
        }
        params.subject_alt_names = profile
            .hosts
            .iter()
            .map(|host| match host.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) if !is_dns_name(host) => Err(invalid(
                    format!("host {host:?}"),
                    "is neither an IP address nor a DNS name",
                )),
                Err(_) => host
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| invalid(format!("host {host:?}"), e)),
            })
            .collect::<Result<_>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = match profile.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, profile.validity);
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A DNS name a certificate can hold: labels of letters, digits and `-`, the first
/// one possibly a `*` wildcard.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    // An hour back, so that a peer whose clock is a little behind accepts it.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
}

fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `contents` to `path` with `mode`, through a temporary file renamed into
/// place, so a reader never sees half a key.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temporary, path).map_err(io)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
