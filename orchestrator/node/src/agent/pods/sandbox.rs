//! A pod's sandbox: what its containers share, set up once before the first of them
//! starts and torn down after the last one stopped. For a pod of a runtime that runs
//! images: the pod network (unless `hostNetwork: true`), the IPC and UTS namespaces
//! every container joins (as Kubernetes shares them across a pod; they are bind-mounted
//! files in the pod's directory, so a restarted agent finds them) and the files
//! bind-mounted into every container, `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname`. Pods of
//! the process runtime run on the host as they are and have none.
//!
//! ```text
//!  Wanted ──(plan: SetUpSandbox)──► SettingUp ──ok──► Ready { pod IP, SandboxSpec }
//!    ▲                                  │
//!    └────── back-off over ─────── Failed (FailedCreatePodSandBox)
//!  pod gone ──► Stop: containers, then TearDownSandbox (network, namespaces, files)
//! ```
//!
//! The files, as the kubelet writes them: `/etc/hosts` has the localhost lines and
//! `<pod IP> <hostname>` (with a `subdomain`: `<pod IP> <hostname>.<subdomain>.<ns>.svc.<domain>
//! <hostname>`; for host networking: the host's own file); `/etc/resolv.conf` follows
//! the pod's dnsPolicy and dnsConfig (dns_config.rs); `/etc/hostname` is the pod's
//! `hostname`, else its name (the node's with host networking).

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::memory::{MAX_BACKOFF, Now};
use crate::network::{PodNetworkSpec, PortMapping};
use crate::runtime::SandboxSpec;
use berth_api::meta::MetaExt;
use berth_api::objects::Pod;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum SandboxState {
    /// To be set up: never asked for, or asked again once a back-off has passed.
    #[default]
    Wanted,
    /// A setup is under way in the background.
    SettingUp,
    Ready(Box<Sandbox>),
    Failed {
        message: String,
        retry_at: Instant,
    },
}

/// A pod's sandbox, once set up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sandbox {
    /// The pod's own address; None with host networking (the node's is the pod's).
    pub(crate) pod_ip: Option<IpAddr>,
    pub(crate) spec: SandboxSpec,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SandboxMemory {
    pub(crate) state: SandboxState,
    /// The wait after the next failure; zero until the first failure.
    pub(crate) backoff: Duration,
}

impl SandboxMemory {
    pub(crate) fn ready(&self) -> Option<&Sandbox> {
        match &self.state {
            SandboxState::Ready(sandbox) => Some(sandbox),
            _ => None,
        }
    }

    /// The pass's step: `true` when the sandbox should be set up now (the state is
    /// then SettingUp).
    pub(crate) fn step(&mut self, now: Now) -> bool {
        let due = match &self.state {
            SandboxState::Wanted => true,
            SandboxState::Failed { retry_at, .. } => *retry_at <= now.instant,
            SandboxState::SettingUp | SandboxState::Ready(_) => false,
        };
        if due {
            self.state = SandboxState::SettingUp;
        }
        due
    }

    pub(crate) fn setup_finished(&mut self, result: Result<Sandbox, String>, base: Duration, now: Now) {
        match result {
            Ok(sandbox) => {
                self.state = SandboxState::Ready(Box::new(sandbox));
                self.backoff = Duration::ZERO;
            }
            Err(message) => {
                self.backoff = if self.backoff.is_zero() {
                    base
                } else {
                    (self.backoff * 2).min(MAX_BACKOFF)
                };
                self.state = SandboxState::Failed {
                    message,
                    retry_at: now.instant + self.backoff,
                };
            }
        }
    }
}

pub(crate) fn is_host_network(pod: &Pod) -> bool {
    pod.spec.host_network == Some(true)
}

/// What the pod network is asked to set up for `pod`: its `hostPort`s included.
pub(crate) fn network_spec(pod: &Pod) -> PodNetworkSpec {
    let ports = pod
        .spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p != 0)?;
            Some(PortMapping {
                host_port,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect();
    PodNetworkSpec {
        pod_uid: pod.metadata.uid().to_string(),
        namespace: pod.metadata.namespace().to_string(),
        name: pod.metadata.name().to_string(),
        ports,
    }
}

/// The pod's `/etc/hosts`: the kubelet's localhost lines and the pod's own name at
/// its address, fully qualified first when the pod has a subdomain (`fqdn`).
pub(crate) fn etc_hosts(pod_ip: IpAddr, hostname: &str, fqdn: Option<&str>) -> String {
    let names = match fqdn {
        Some(fqdn) => format!("{fqdn}\t{hostname}"),
        None => hostname.to_string(),
    };
    format!(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         {pod_ip}\t{names}\n"
    )
}

/// A host-network pod's `/etc/hosts`: the host's own, under the kubelet's header.
pub(crate) fn host_network_etc_hosts(host_hosts: &str) -> String {
    format!("# Kubernetes-managed hosts file (host network).\n{host_hosts}")
}
