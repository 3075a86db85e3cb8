//! One HTTP/1.1 exchange per request, over TCP or TLS (rustls on ring, verified
//! against the system's CA bundle), with a time limit on connecting, on the response
//! head and on each pause of the body, but none on a whole large layer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue, USER_AGENT};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::url::Url;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest pause allowed between two pieces of a body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The system CA bundles, as Go's and so Docker's TLS looks for them.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A client's TLS settings: the trust anchors of `ca_bundle`, or of the system's
/// bundle when None.
pub fn tls_config(ca_bundle: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let bundles: Vec<&Path> = match ca_bundle {
        Some(path) => vec![path],
        None => SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .filter(|p| p.exists())
            .take(1)
            .collect(),
    };
    for bundle in bundles {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(bundle)
            .map_err(|e| format!("CA bundle {}: {e}", bundle.display()))?;
        let certs: Vec<_> = certs.filter_map(Result::ok).collect();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 && ca_bundle.is_some() {
            return Err(format!("CA bundle {}: no usable certificate", bundle.display()));
        }
    }
    // ring, as the store's TLS: rustls deprecates its provider for lacking a
    // post-quantum key exchange, but aws-lc-rs needs cmake and minutes of build.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The TLS settings for registries named insecure: a certificate is taken whoever
/// signed it (Docker's `InsecureSkipVerify` for them), but the handshake's signatures
/// are still checked against it.
pub fn insecure_tls_config() -> Result<Arc<ClientConfig>, String> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends a GET of `url` with `headers` and gives the response head; the body is
/// read by the caller.
pub async fn get(
    tls: &Arc<ClientConfig>,
    url: &Url,
    headers: &[(&'static str, String)],
) -> Result<Response<Incoming>, String> {
    let io = tokio::time::timeout(CONNECT_TIMEOUT, connect(tls, url))
        .await
        .map_err(|_| format!("connect to {}: timed out after {CONNECT_TIMEOUT:?}", url.authority()))??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::get(url.path_and_query.as_str())
        .header(HOST, url.authority())
        .header(USER_AGENT, concat!("berth/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        let value = HeaderValue::from_str(value).map_err(|_| format!("GET {url}: invalid {name} header value"))?;
        request = request.header(*name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {url}: {e}"))?;
    tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| format!("GET {url}: no response within {RESPONSE_TIMEOUT:?}"))?
        .map_err(|e| format!("GET {url}: {e}"))
}

async fn connect(tls: &Arc<ClientConfig>, url: &Url) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("dial tcp {}: {e}", url.authority()))?;
    let _ = tcp.set_nodelay(true);
    if !url.tls {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::try_from(url.host.clone()).map_err(|e| format!("TLS name {:?}: {e}", url.host))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {} ({}): {e}", url.authority(), url))?;
    Ok(Box::new(stream))
}

/// The next piece of a body, None at its end.
pub async fn next_chunk(body: &mut Incoming, url: &Url) -> Result<Option<Bytes>, String> {
    loop {
        let frame = tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame())
            .await
            .map_err(|_| format!("read {url}: no data for {BODY_IDLE_TIMEOUT:?}"))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(format!("read {url}: {e}")),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// The whole body, refused past `limit` bytes.
pub async fn read_body(response: Response<Incoming>, url: &Url, limit: u64) -> Result<Vec<u8>, String> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(&mut body, url).await? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(format!("read {url}: the response is larger than {limit} bytes"));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
