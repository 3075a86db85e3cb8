//! Liveness, readiness and startup probes, as the kubelet runs them.
//!
//! ```text
//!  pass: drain results ─► health (pure: thresholds, started, ready) ─► kills ─► … ─► sync workers
//!             ▲                                                                      │
//!             │ channel (+ a wake-up of the pass when a result may change something) │
//!             └──── one worker task per probe of a running container ◄──────────────┘
//!                   (its own timer: initialDelaySeconds, then every periodSeconds;
//!                    each attempt bounded by timeoutSeconds)
//! ```
//!
//! - `health`: the pure part — a run's probe results, thresholds, startup gating, and
//!   when a probe first runs;
//! - `workers`: the timers and the channel, started and stopped by each pass as the
//!   health says which probes should run;
//! - `exec`, `http`, `tcp`, `grpc`: one attempt of each handler. Probes reach the pod's
//!   address: its own, or the node's for host-network and process-runtime pods.

mod exec;
mod grpc;
pub(crate) mod health;
mod http;
pub(crate) mod results;
mod tcp;
pub(crate) mod workers;

#[cfg(test)]
mod handler_tests;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod wiring_tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::Runtime;
use berth_api::objects::{Container, IntOrString};
use berth_api::probes::Probe;

pub(crate) use health::Health;

/// The User-Agent of HTTP and gRPC probes, the kubelet's (`kube-probe/<major>.<minor>`).
pub(crate) const USER_AGENT: &str = "kube-probe/1.32";

/// The most of a probe's output (an exec's or an HTTP body) kept, as the kubelet's.
const MAX_OUTPUT_BYTES: usize = 10 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// The container's probe of this kind.
    pub(crate) fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => container.startup_probe.as_ref(),
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
        }
    }

    /// As the kubelet's events write it ("Liveness probe failed: …").
    pub(crate) fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// One attempt's result: success or not, and what the probe said (an exec's output,
/// an HTTP body, or why it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) success: bool,
    pub(crate) message: String,
}

impl Outcome {
    pub(crate) fn success(message: impl Into<String>) -> Outcome {
        Outcome {
            success: true,
            message: message.into(),
        }
    }

    pub(crate) fn failure(message: impl Into<String>) -> Outcome {
        Outcome {
            success: false,
            message: message.into(),
        }
    }
}

/// What an attempt reaches: the container (for exec) and the pod's address.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) runtime: Arc<dyn Runtime>,
    /// The runtime's id of the run probed.
    pub(crate) id: String,
    /// The pod's address: its own, or the node's.
    pub(crate) pod_ip: IpAddr,
    pub(crate) container: Container,
}

/// One attempt of `probe` against `target`, within its `timeoutSeconds`.
pub(crate) async fn attempt(probe: &Probe, target: &Target) -> Outcome {
    let timeout = Duration::from_secs(u64::from(berth_api::probes::Timing::of(probe).timeout_seconds));
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return exec::run(target.runtime.clone(), target.id.clone(), command, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        let port = match port_number(&http.port, &target.container) {
            Ok(port) => port,
            Err(e) => return Outcome::failure(e),
        };
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.pod_ip.to_string());
        let request = http::Request {
            https: http.scheme.as_deref() == Some("HTTPS"),
            host,
            port,
            path: http.path.clone().unwrap_or_default(),
            headers: http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        };
        return http::get(&request, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = match port_number(&tcp.port, &target.container) {
            Ok(port) => port,
            Err(e) => return Outcome::failure(e),
        };
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.pod_ip.to_string());
        return tcp::connect(&host, port, timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        let Ok(port) = u16::try_from(grpc.port) else {
            return Outcome::failure(format!("invalid port {}", grpc.port));
        };
        let service = grpc.service.clone().unwrap_or_default();
        return grpc::check(target.pod_ip, port, &service, timeout).await;
    }
    Outcome::failure("missing probe handler")
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port_number(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid port number: {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in container {}", container.name))
        }
    }
}

/// Output cut to the most a probe keeps, as text.
fn truncated(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT_BYTES)]).into_owned()
}
