//! rustls configurations from PEM: a server that verifies the client certificates it
//! is shown (optionally or always), and a client that trusts one CA and may present
//! a certificate of its own. berth's HTTPS servers and clients (the API server, the
//! agents, the CLI) are built from these.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Identity, Result, invalid};

/// Whether a server asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Asks for none.
    None,
    /// Verifies one when shown; clients without one go on (to a token, or anonymous).
    Optional,
    /// Refuses the handshake of a client without a certificate the CA signed.
    Required,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring, as the store's TLS: rustls marks it deprecated for want of a post-quantum
    // key exchange, which kubectl's and etcd's Go TLS do not need.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM text: the leaf first, then its chain.
pub fn certificates(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, e))?;
    if certs.is_empty() {
        return Err(invalid(what, "no PEM certificate (BEGIN CERTIFICATE)"));
    }
    Ok(certs)
}

fn private_key(what: &str, pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| invalid(what, e))
}

/// The CAs of a PEM bundle, each one a trust anchor.
pub fn roots(what: &str, pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(what, pem)? {
        roots
            .add(cert)
            .map_err(|e| invalid(what, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A server presenting `identity`, checking client certificates against `client_ca`
/// as `client_auth` says, offering `alpn` protocols.
pub fn server_config(
    identity: &Identity,
    client_ca: Option<&str>,
    client_auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", e))?;
    let builder = match (client_auth, client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(invalid("client certificate checks", "need a client CA")),
        (auth, Some(ca)) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots("the client CA", ca)?), provider());
            let verifier = match auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| invalid("the client CA", e))?)
        }
    };
    let mut config = builder
        .with_single_cert(
            certificates("the server certificate", &identity.cert_pem)?,
            private_key("the server key", &identity.key_pem)?,
        )
        .map_err(|e| invalid("the server certificate and key", e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client trusting `ca` only, presenting `identity` when given.
pub fn client_config(ca: &str, identity: Option<&Identity>, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots("the CA", ca)?), provider())
        .build()
        .map_err(|e| invalid("the CA", e))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", e))?
        .with_webpki_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                certificates("the client certificate", &identity.cert_pem)?,
                private_key("the client key", &identity.key_pem)?,
            )
            .map_err(|e| invalid("the client certificate and key", e))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
