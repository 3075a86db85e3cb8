//! The agent's API over HTTPS: it shows its node certificate and takes only clients
//! whose certificate the cluster's CA signed for one of the allowed users (the API
//! server's `kube-apiserver-kubelet-client`). Handshakes run in their own tasks, so a
//! client stalling in one holds up no other; a finished one is handed to the server.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent's HTTPS settings.
#[derive(Clone)]
pub struct AgentTls {
    /// The node's certificate, with client certificates required (see
    /// `berth_pki::tls::server_config`).
    pub config: Arc<rustls::ServerConfig>,
    /// The users (client certificates' CN) that may call the agent.
    pub allowed_users: Vec<String>,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTls")
            .field("allowed_users", &self.allowed_users)
            .finish()
    }
}

/// A listener whose connections are TLS sessions with an allowed client.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
    _acceptor: berth_client::kv::AbortOnDrop,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: AgentTls) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let allowed = Arc::new(tls.allowed_users);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, sender, allowed) = (acceptor.clone(), sender.clone(), allowed.clone());
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let user = client_user(&tls);
                    if !user.as_ref().is_some_and(|u| allowed.contains(u)) {
                        tracing::warn!(%peer, user = ?user, "refused a client that may not use the agent's API");
                        return;
                    }
                    let _ = sender.send((tls, peer)).await;
                });
            }
        });
        Ok(TlsListener {
            accepted,
            local,
            _acceptor: berth_client::kv::AbortOnDrop(task),
        })
    }
}

/// The common name of the client's (verified) certificate.
fn client_user(tls: &TlsStream<TcpStream>) -> Option<String> {
    let cert = tls.get_ref().1.peer_certificates()?.first()?;
    Some(berth_pki::subject_of_der(cert).ok()?.common_name)
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The acceptor task lives as long as this listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
