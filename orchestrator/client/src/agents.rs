//! Reaching a node's agent over HTTP: its address from the Node's status (as the
//! API server reaches the kubelet), and its resource usage report
//! (`GET /metrics/usage`, a [`UsageSummary`]), which the API server's
//! `metrics.k8s.io` and the autoscaler both read.

use std::time::Duration;

use berth_api::metrics::UsageSummary;
use serde_json::Value;

use crate::http_client::HttpClient;

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
    Ok(if ip.contains(':') {
        format!("http://[{ip}]:{port}")
    } else {
        format!("http://{ip}:{port}")
    })
}

/// The usage report of the agent at `base`; the error says why there is none.
pub async fn usage(base: &str) -> Result<UsageSummary, String> {
    let client = HttpClient::new(vec![base.to_owned()]);
    let response = tokio::time::timeout(USAGE_TIMEOUT, client.request("GET", "/metrics/usage", None))
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
