use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::{Ca, Profile, subject_of_der};

/// One handshake over loopback: the client's config against the server's; the
/// server's view of the client's user when it got through.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> std::result::Result<Option<String>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = TlsAcceptor::from(server).accept(tcp).await.map_err(|e| e.to_string())?;
        let user = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| subject_of_der(cert).unwrap().common_name);
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(user)
    });
    let tcp = TcpStream::connect(address).await.unwrap();
    let connected = TlsConnector::from(client)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    if let Ok(mut tls) = connected {
        // TLS 1.3 clients learn of a refused certificate only on their next read.
        let _ = tls.write_all(b"x").await;
        let _ = tls.flush().await;
        let mut byte = [0u8; 1];
        let _ = tls.read(&mut byte).await;
    }
    server_side.await.unwrap()
}

#[tokio::test]
async fn the_server_learns_who_the_client_is_and_refuses_strangers() {
    let ca = Ca::create("test-ca").unwrap();
    let server_identity = ca.issue(&Profile::server("api", &["localhost".to_string()])).unwrap();
    let alice = ca.issue(&Profile::client("alice", &[])).unwrap();
    let stranger_ca = Ca::create("stranger-ca").unwrap();
    let mallory = stranger_ca.issue(&Profile::client("mallory", &[])).unwrap();
    let ca_pem = ca.identity.cert_pem.as_str();

    let optional = server_config(&server_identity, Some(ca_pem), ClientAuth::Optional, &[]).unwrap();
    let as_alice = client_config(ca_pem, Some(&alice), &[]).unwrap();
    assert_eq!(
        handshake(optional.clone(), as_alice.clone()).await,
        Ok(Some("alice".to_string()))
    );
    let anonymous = client_config(ca_pem, None, &[]).unwrap();
    assert_eq!(handshake(optional.clone(), anonymous.clone()).await, Ok(None));
    let as_mallory = client_config(ca_pem, Some(&mallory), &[]).unwrap();
    assert!(
        handshake(optional, as_mallory).await.is_err(),
        "a certificate of another CA"
    );

    let required = server_config(&server_identity, Some(ca_pem), ClientAuth::Required, &[]).unwrap();
    assert!(handshake(required.clone(), anonymous).await.is_err(), "no certificate");
    assert_eq!(handshake(required, as_alice).await, Ok(Some("alice".to_string())));

    // The client checks the server too: a server of another CA is refused.
    let impostor = stranger_ca
        .issue(&Profile::server("api", &["localhost".to_string()]))
        .unwrap();
    let impostor = server_config(&impostor, None, ClientAuth::None, &[]).unwrap();
    let client = client_config(ca_pem, None, &[]).unwrap();
    assert!(handshake(impostor, client).await.is_err());
}

#[test]
fn bad_pem_is_refused_naming_what_it_was() {
    let error = roots("the client CA", "not pem").unwrap_err();
    assert!(error.to_string().contains("the client CA"), "{error}");
    let ca = Ca::create("test-ca").unwrap();
    let broken = Identity {
        cert_pem: ca.identity.cert_pem.clone(),
        key_pem: "garbage".into(),
    };
    let error = server_config(&broken, None, ClientAuth::None, &[]).unwrap_err();
    assert!(error.to_string().contains("the server key"), "{error}");
}
