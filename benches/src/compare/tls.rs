//! `compare --tls`: one CA made for the run, and one certificate it signs for
//! 127.0.0.1 that every replica of both systems serves, dials its peers and is dialled
//! with, so the two pay for the same handshakes and the same ciphers.

use std::path::Path;

use anyhow::Context;
use berth_testkit::ClusterTls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// Writes `ca.pem`, `member.pem` and `member-key.pem` into `dir`.
pub fn make_certificates(dir: &Path) -> anyhow::Result<ClusterTls> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "berth-bench CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut member = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    member.distinguished_name.push(DnType::CommonName, "berth-bench member");
    member.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = member.signed_by(&key, &issuer)?;

    let tls = ClusterTls {
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("member.pem"),
        key_file: dir.join("member-key.pem"),
    };
    std::fs::write(&tls.ca_file, ca_cert.pem())?;
    std::fs::write(&tls.cert_file, cert.pem())?;
    std::fs::write(&tls.key_file, key.serialize_pem())?;
    Ok(tls)
}
