//! TLS on the store's `https` URLs, with rustls on ring, as etcd's flags describe it.
//!
//! ```text
//!  StoreConfig.client_tls ──► identity: --cert-file/--key-file, or --auto-tls (made in
//!                              <data-dir>/fixtures/client) ──► client acceptor
//!                              (ALPN h2, http/1.1; client certificates verified
//!                              against --trusted-ca-file when given or demanded)
//!  StoreConfig.peer_tls   ──► the same with --peer-* (fixtures/peer) ──► peer acceptor
//!                              (ALPN h2 for the gRPC peer service, berth-raft/1 for
//!                              raft streams) and the peer dialler (the same
//!                              certificate, presented as a client certificate)
//! ```
//!
//! As in etcd, a trusted CA file alone already makes the server demand and verify
//! client certificates, and self-signed (auto-tls) certificates are not verified
//! against any CA: they encrypt, they do not authenticate. `http` URLs stay plain
//! whatever the TLS flags say. Session tickets are off, so that nothing arrives on an
//! idle raft stream after the handshake (its keeper reads anything there as a close).

mod cipher_suites;
mod common_name;
mod dialer;
mod pem_files;
mod self_signed;
mod stream;
mod verifiers;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub use cipher_suites::tls12_suite;
pub use dialer::PeerDialer;
pub use stream::{ClientConnectInfo, MaybeTls, PeerStream, ServerStream};

use crate::config::{StoreConfig, TlsInfo};
use crate::error::{Result, StoreError};

/// The ALPN protocol of raft streams on a TLS peer port (see `raft::wire`).
pub const RAFT_ALPN: &[u8] = b"berth-raft/1";
const H2_ALPN: &[u8] = b"h2";
const HTTP1_ALPN: &[u8] = b"http/1.1";
/// How long an accepted connection may take over its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of a replica: what its `https` listeners accept with, and how it dials
/// its peers.
#[derive(Clone, Default)]
pub struct Tls {
    client: Option<TlsAcceptor>,
    peer: Option<TlsAcceptor>,
    dialer: PeerDialer,
}

/// Client or peer: which flags, which URLs, which fixtures directory.
#[derive(Clone, Copy)]
struct Side<'a> {
    info: &'a TlsInfo,
    /// `""` or `"peer-"`, to name the flags in errors.
    prefix: &'static str,
    /// `"client"` or `"peer"`: etcd's words in errors and the fixtures directory.
    kind: &'static str,
    listen_urls: &'a [String],
}

impl Side<'_> {
    fn flag(&self, name: &str) -> String {
        format!("--{}{name}", self.prefix)
    }

    fn error(&self, reason: String) -> StoreError {
        StoreError::InvalidArgument(reason)
    }
}

/// A certificate and its key, and whether it is one auto-tls made.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    is_self_signed: bool,
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

impl Tls {
    /// Reads (or, for auto-tls, makes) the certificates `config` names and checks that
    /// every `https` listen URL has one.
    pub fn load(config: &StoreConfig) -> Result<Tls> {
        let provider = Arc::new(provider(&config.cipher_suites)?);
        let client = Side {
            info: &config.client_tls,
            prefix: "",
            kind: "client",
            listen_urls: &config.listen_client_urls,
        };
        let peer = Side {
            info: &config.peer_tls,
            prefix: "peer-",
            kind: "peer",
            listen_urls: &config.listen_peer_urls,
        };
        let client_identity = identity(config, client)?;
        let peer_identity = identity(config, peer)?;

        let client_acceptor = match &client_identity {
            Some(identity) if client.listen_urls.iter().any(|url| is_https(url)) => Some(acceptor(
                &provider,
                client,
                identity,
                vec![H2_ALPN.to_vec(), HTTP1_ALPN.to_vec()],
            )?),
            _ => None,
        };
        let peer_acceptor = match &peer_identity {
            Some(identity) if peer.listen_urls.iter().any(|url| is_https(url)) => Some(acceptor(
                &provider,
                peer,
                identity,
                vec![H2_ALPN.to_vec(), RAFT_ALPN.to_vec()],
            )?),
            _ => None,
        };
        let dials_https = peer_identity.is_some()
            || config
                .initial_cluster
                .iter()
                .flat_map(|(_, urls)| urls)
                .any(|url| is_https(url))
            || config.dial_peer_urls.values().any(|url| is_https(url));
        let dialer = if dials_https {
            peer_dialer(&provider, peer, peer_identity.as_ref())?
        } else {
            PeerDialer::default()
        };
        Ok(Tls {
            client: client_acceptor,
            peer: peer_acceptor,
            dialer,
        })
    }

    /// For the `https` client URLs; `None` when none is https.
    pub fn client_acceptor(&self) -> Option<&TlsAcceptor> {
        self.client.as_ref()
    }

    /// For the `https` peer URLs; `None` when none is https.
    pub fn peer_acceptor(&self) -> Option<&TlsAcceptor> {
        self.peer.as_ref()
    }

    pub fn dialer(&self) -> &PeerDialer {
        &self.dialer
    }
}

/// The TLS handshake of an accepted connection, within [`HANDSHAKE_TIMEOUT`]. This is
/// the whole TLS layer of a listener: what comes out is read as if it were the TCP
/// connection (gRPC, HTTP/1.1, a raft stream).
pub async fn accept(acceptor: &TlsAcceptor, stream: TcpStream) -> io::Result<ServerStream> {
    let handshake = acceptor.accept(stream);
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake timed out"))??;
    Ok(MaybeTls::Tls(Box::new(stream)))
}

/// ring with the suites `--cipher-suites` allows.
fn provider(cipher_suites: &[String]) -> Result<CryptoProvider> {
    // rustls marks ring's provider deprecated because ring has no post-quantum key
    // exchange; aws-lc-rs has one but needs cmake and minutes of build, and etcd's
    // Go 1.2x TLS does not offer one either.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = cipher_suites::suites(cipher_suites, &provider.cipher_suites)
        .map_err(|reason| StoreError::InvalidArgument(format!("--cipher-suites: {reason}")))?;
    Ok(provider)
}

/// The certificate a side serves (and, for peers, dials) with, checking that each
/// `https` listen URL has one: etcd's start-up check, in its words.
fn identity(config: &StoreConfig, side: Side<'_>) -> Result<Option<Identity>> {
    let info = side.info;
    if info.auto_tls && info.has_cert() {
        tracing::warn!(
            "ignoring {} since {} and {} are given",
            side.flag("auto-tls"),
            side.flag("cert-file"),
            side.flag("key-file")
        );
    }
    if info.has_cert()
        && let Some(url) = side.listen_urls.iter().find(|url| !is_https(url))
    {
        tracing::warn!(
            "{} url {url} is http: its connections stay plain, without TLS",
            side.kind
        );
    }
    let files = match (&info.cert_file, &info.key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone(), false)),
        (None, None) if info.auto_tls => {
            let dir = config.data_dir.join("fixtures").join(side.kind);
            let hosts = self_signed::hosts_of(side.listen_urls);
            let (cert, key) = self_signed::self_signed_pair(&dir, &hosts, config.self_signed_cert_validity_years)?;
            Some((cert, key, true))
        }
        (None, None) => None,
        (cert, key) => {
            return Err(side.error(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}] ({} and {})",
                key.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
                cert.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
                side.flag("key-file"),
                side.flag("cert-file"),
            )));
        }
    };
    let Some((cert, key, is_self_signed)) = files else {
        if let Some(url) = side.listen_urls.iter().find(|url| is_https(url)) {
            return Err(side.error(format!(
                "TLS key/cert ({}, {}) must be provided for {} url {url} with HTTPS scheme",
                side.flag("cert-file"),
                side.flag("key-file"),
                side.kind
            )));
        }
        return Ok(None);
    };
    Ok(Some(Identity {
        chain: pem_files::certificates(&side.flag("cert-file"), &cert)?,
        key: pem_files::private_key(&side.flag("key-file"), &key)?,
        is_self_signed,
    }))
}

/// The CAs of `--trusted-ca-file` (or `--peer-trusted-ca-file`), if given.
fn trusted_cas(side: Side<'_>) -> Result<Option<RootCertStore>> {
    side.info
        .trusted_ca_file
        .as_ref()
        .map(|path| pem_files::trust_anchors(&side.flag("trusted-ca-file"), path))
        .transpose()
}

fn acceptor(
    provider: &Arc<CryptoProvider>,
    side: Side<'_>,
    identity: &Identity,
    alpn: Vec<Vec<u8>>,
) -> Result<TlsAcceptor> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| side.error(format!("--cipher-suites: {e}")))?;
    let cas = trusted_cas(side)?;
    let demands_client_cert = side.info.client_cert_auth || cas.is_some();
    let builder = match cas {
        _ if !demands_client_cert => builder.with_no_client_auth(),
        Some(cas) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(cas), provider.clone())
                .build()
                .map_err(|e| side.error(format!("{}: {e}", side.flag("trusted-ca-file"))))?;
            builder.with_client_cert_verifier(verifier)
        }
        None if identity.is_self_signed => {
            builder.with_client_cert_verifier(verifiers::AnyCertificate::new(provider.clone()))
        }
        None => {
            return Err(side.error(format!(
                "{} requires {}: the CAs whose {} certificates are accepted",
                side.flag("client-cert-auth"),
                side.flag("trusted-ca-file"),
                side.kind
            )));
        }
    };
    let mut server = builder
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| side.error(format!("{} and {}: {e}", side.flag("cert-file"), side.flag("key-file"))))?;
    server.alpn_protocols = alpn;
    server.send_tls13_tickets = 0;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// How this replica dials `https` peers: verifying them against the peer CA (the
/// system's CAs without one, as Go does; nobody with auto-tls) and presenting its
/// peer certificate, when it has one, as a client certificate.
fn peer_dialer(provider: &Arc<CryptoProvider>, side: Side<'_>, identity: Option<&Identity>) -> Result<PeerDialer> {
    let is_self_signed = identity.is_some_and(|identity| identity.is_self_signed);
    let config = |alpn: &[u8]| -> Result<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| side.error(format!("--cipher-suites: {e}")))?;
        let builder = if is_self_signed {
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifiers::AnyCertificate::new(provider.clone()))
        } else {
            let cas = trusted_cas(side)?.unwrap_or_else(pem_files::system_trust_anchors);
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(cas), provider.clone())
                .build()
                .map_err(|e| side.error(format!("{}: {e}", side.flag("trusted-ca-file"))))?;
            builder.with_webpki_verifier(verifier)
        };
        let mut client = match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| side.error(format!("{} and {}: {e}", side.flag("cert-file"), side.flag("key-file"))))?,
            None => builder.with_no_client_auth(),
        };
        client.alpn_protocols = vec![alpn.to_vec()];
        Ok(client)
    };
    Ok(PeerDialer::new(config(RAFT_ALPN)?, config(H2_ALPN)?))
}
