//! Reaching a node's agent over HTTP: its address from the Node's status (as the
//! API server reaches the kubelet), and its resource usage report
//! (`GET /metrics/usage`, a [`UsageSummary`]), which the API server's
//! `metrics.k8s.io` and the autoscaler both read.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use berth_api::metrics::UsageSummary;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::http_client::HttpClient;

/// How this process reaches agents over HTTPS: the CA that signed the nodes'
/// certificates and its own client certificate (kube-apiserver's
/// `--kubelet-client-certificate`). One per process: a server is one client of
/// every agent. Unset: agents are reached over plain HTTP.
static CLIENT_TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Reach agents over HTTPS with `config` from now on; false if already set.
pub fn use_tls(config: Arc<rustls::ClientConfig>) -> bool {
    CLIENT_TLS.set(config).is_ok()
}

/// A client of the agent at `base`, over HTTPS when this process has its TLS.
pub fn client(base: &str) -> HttpClient {
    let client = HttpClient::new(vec![base.to_owned()]);
    match CLIENT_TLS.get() {
        Some(tls) => client.with_tls(tls.clone()),
        None => client,
    }
}

/// A byte stream to an agent, plain or TLS.
pub trait AgentIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AgentIo for T {}

/// Connects to the agent at `base` (from [`agent_url`]): TCP, then, for https, a
/// TLS handshake in which the agent's certificate must be the CA's and hold the
/// address dialled, so the server never talks to an address that is not a node's
/// own. Returns the stream and the `host:port` dialled.
pub async fn dial(base: &str) -> Result<(Box<dyn AgentIo>, String), String> {
    let (https, address) = match base.split_once("://") {
        Some(("https", rest)) => (true, rest.to_string()),
        Some((_, rest)) => (false, rest.to_string()),
        None => (false, base.to_string()),
    };
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| e.to_string())?;
    if !https {
        return Ok((Box::new(tcp), address));
    }
    let tls = CLIENT_TLS
        .get()
        .ok_or("https to an agent needs the agents' CA and a client certificate")?;
    let host = address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    Ok((Box::new(stream), address))
}

/// How long an agent has to answer for its usage: one slow node must not hold up
/// a list of every node's metrics for long.
const USAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's base URL from a Node's status: its InternalIP and
/// `daemonEndpoints.kubeletEndpoint.Port`.
pub fn agent_url(node: &Value) -> Result<String, String> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip = addresses
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .and_then(|a| a.get("address")?.as_str())
        .ok_or("it reports no InternalIP address")?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0)
        .ok_or("it reports no agent port (status.daemonEndpoints.kubeletEndpoint.Port)")?;
    let scheme = if CLIENT_TLS.get().is_some() { "https" } else { "http" };
    Ok(if ip.contains(':') {
        format!("{scheme}://[{ip}]:{port}")
    } else {
        format!("{scheme}://{ip}:{port}")
    })
}

/// The usage report of the agent at `base`; the error says why there is none.
pub async fn usage(base: &str) -> Result<UsageSummary, String> {
    let response = tokio::time::timeout(USAGE_TIMEOUT, client(base).request("GET", "/metrics/usage", None))
        .await
        .map_err(|_| format!("{base} did not answer within {USAGE_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    if !response.is_success() {
        return Err(format!(
            "{base} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body).trim()
        ));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("{base} sent an unreadable usage report: {e}"))
}

/// The usage report of a Node's agent.
pub async fn node_usage(node: &Value) -> Result<UsageSummary, String> {
    usage(&agent_url(node)?).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_agent() {
        let node = |ip: &str, port: u16| {
            json!({"status": {"addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": ip}],
                              "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})
        };
        assert_eq!(agent_url(&node("10.0.0.5", 10250)), Ok("http://10.0.0.5:10250".into()));
        assert_eq!(agent_url(&node("::1", 9)), Ok("http://[::1]:9".into()));
        assert!(agent_url(&node("10.0.0.5", 0)).unwrap_err().contains("no agent port"));
        assert!(agent_url(&json!({"status": {}})).unwrap_err().contains("InternalIP"));
    }
}
