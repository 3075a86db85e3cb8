//! What a certificate says about its holder, as Kubernetes' x509 authenticator reads
//! it: the subject's common name is the user, each organization a group.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Result, invalid};

/// A certificate's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// The end of its validity, as seconds since the epoch.
    pub not_after: i64,
}

/// The subject of a DER certificate. A certificate whose subject has no common name,
/// or a name that is not text, is refused.
pub fn subject_of_der(der: &[u8]) -> Result<Subject> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| invalid("the certificate", e))?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .ok_or_else(|| invalid("the certificate's subject", "has no common name (CN)"))?
        .as_str()
        .map_err(|e| invalid("the certificate's common name", e))?
        .to_string();
    let organizations = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_string))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid("the certificate's organization", e))?;
    Ok(Subject {
        common_name,
        organizations,
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The subject of the first certificate in a PEM text.
pub fn subject_of_pem(pem: &str) -> Result<Subject> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| invalid("the PEM certificate", e))?;
    subject_of_der(&block.contents)
}
