//! HTTPS as registries serve it: a server certificate from a CA made in the test,
//! trusted through a CA bundle file, and refused without it.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Writes the CA's PEM to `ca_file` and gives the server's TLS settings for "localhost".
fn certificates(ca_file: &Path) -> Arc<ServerConfig> {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(ca_file, ca_cert.pem()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &Issuer::new(ca, ca_key))
        .unwrap();
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Arc::new(config)
}

/// Answers each TLS connection's request with `{}`.
async fn serve(listener: tokio::net::TcpListener, config: Arc<ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                .await;
            let _ = tls.shutdown().await;
        });
    }
}

#[tokio::test]
async fn https_is_verified_against_the_ca_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    let server = certificates(&ca_file);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = tokio::spawn(serve(listener, server));
    let url = Url::parse(&format!("https://localhost:{port}/v2/")).unwrap();

    let trusted = tls_config(Some(&ca_file)).unwrap();
    let response = get(&trusted, &url, &[]).await.unwrap();
    assert_eq!(response.status(), hyper::StatusCode::OK);
    assert_eq!(read_body(response, &url, 100).await.unwrap(), b"{}");

    // The system's CAs do not know the test's.
    let system = tls_config(None).unwrap();
    let err = get(&system, &url, &[]).await.unwrap_err();
    assert!(err.contains("certificate"), "{err}");

    let not_pem = tmp.path().join("empty.pem");
    std::fs::write(&not_pem, "no certificates here").unwrap();
    assert!(
        tls_config(Some(&not_pem))
            .unwrap_err()
            .contains("no usable certificate")
    );
}

#[tokio::test]
async fn an_insecure_registry_is_reached_over_https_whoever_signed_its_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let server = certificates(&tmp.path().join("ca.pem"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = tokio::spawn(serve(listener, server));

    let url = Url::parse(&format!("https://127.0.0.1:{port}/v2/")).unwrap();
    let response = get(&insecure_tls_config().unwrap(), &url, &[]).await.unwrap();
    assert_eq!(response.status(), hyper::StatusCode::OK);

    // Through a pull: a loopback registry is tried over HTTPS first. This one answers
    // every request with `{}`, so the pull gets as far as reading the manifest.
    use crate::image::{Images, ImagesConfig, NodeImages, PullPolicy};
    let images = NodeImages::new(ImagesConfig::new(tmp.path())).unwrap();
    let err = images
        .ensure(&format!("127.0.0.1:{port}/app:1"), PullPolicy::Always, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported manifest media type"), "{err}");
}
