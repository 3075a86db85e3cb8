//! Certificates, keys and CA bundles read from PEM files. Each error names the flag
//! that gave the file, so that a wrong path or a key in the certificate's place is
//! told apart from a TLS failure later on.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Result, StoreError};

fn invalid(flag: &str, path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidArgument(format!("{flag} {}: {what}", path.display()))
}

/// Every certificate in a PEM file: the leaf first, then its chain.
pub(super) fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(flag, path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(flag, path, e))?;
    if certs.is_empty() {
        return Err(invalid(
            flag,
            path,
            "no PEM certificate (BEGIN CERTIFICATE) in the file",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(super) fn private_key(flag: &str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => invalid(flag, path, "no PEM private key in the file"),
        other => invalid(flag, path, other),
    })
}

/// The CAs of a bundle, each one a trust anchor.
pub(super) fn trust_anchors(flag: &str, path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(flag, path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(flag, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The system's CA bundle, which Go uses when no `--peer-trusted-ca-file` is given;
/// empty where the system has none.
pub(super) fn system_trust_anchors() -> RootCertStore {
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    let mut roots = RootCertStore::empty();
    if let Some(certs) = BUNDLES
        .iter()
        .find_map(|bundle| certificates("system CA bundle", Path::new(bundle)).ok())
    {
        roots.add_parsable_certificates(certs);
    }
    roots
}
