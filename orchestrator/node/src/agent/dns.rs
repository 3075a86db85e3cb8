//! The node's cluster DNS: the catalog of Services and EndpointSlices the agent
//! follows (for the DNS server and the containers' service variables), the server on
//! the pod bridge's gateway address, and what pods are told (their resolv.conf's
//! nameserver and search domains).
//!
//! Where the server listens: port 53 (UDP and TCP) of the first address of the node's
//! pod CIDR, the bridge's gateway. Every pod of the node reaches it directly over its
//! veth (no NAT, no route), it is known as soon as the Node has its CIDR, and no host
//! resolver already uses it (a stub such as systemd-resolved holds 127.0.0.53:53 and
//! may hold 0.0.0.0:53 too). The socket is bound with IP_FREEBIND, since the bridge
//! gets the address only with the node's first pod. `--cluster-dns` (the kubelet's
//! name) changes what pods are told, for a cluster that runs its DNS elsewhere; by
//! default they are told this server's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_dns::resolv::{DEFAULT_RESOLV_CONF, ResolvConf, host_resolv_conf};
use berth_dns::{Catalog, Listeners, Resolver, ZoneConfig};

use super::pods::dns_config::ClusterNames;
use crate::network::PodCidr;

/// The agent's DNS flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDnsConfig {
    /// `--cluster-domain`.
    pub domain: String,
    /// `--cluster-dns`: the nameservers pods are told; empty: this node's server.
    pub cluster_dns: Vec<IpAddr>,
    /// `--resolv-conf`: the host's resolvers (forwarded to) and searches (appended to
    /// the pods').
    pub resolv_conf: PathBuf,
    /// The server's port (53; tests that share a host may choose another).
    pub port: u16,
}

impl Default for ClusterDnsConfig {
    fn default() -> Self {
        ClusterDnsConfig {
            domain: berth_dns::DEFAULT_CLUSTER_DOMAIN.into(),
            cluster_dns: Vec::new(),
            resolv_conf: PathBuf::from(DEFAULT_RESOLV_CONF),
            port: 53,
        }
    }
}

/// The DNS settings and state a node's agent shares between its server, its sandbox
/// setups and its container starts.
pub(crate) struct NodeDns {
    pub(crate) config: ClusterDnsConfig,
    /// The node's pod CIDR, when its pods have the pod network.
    pub(crate) pod_cidr: Option<PodCidr>,
    pub(crate) catalog: Arc<Catalog>,
}

impl NodeDns {
    /// This node's server's address: the pod bridge's gateway.
    pub(crate) fn server_address(&self) -> Option<Ipv4Addr> {
        (*self.pod_cidr.as_ref()?.borrow())?.host(1)
    }

    /// What pods are told: `--cluster-dns`, else this node's server (none before the
    /// node has a pod CIDR, or without a pod network).
    pub(crate) fn cluster_names(&self) -> ClusterNames {
        let nameservers = if self.config.cluster_dns.is_empty() {
            self.server_address().map(IpAddr::V4).into_iter().collect()
        } else {
            self.config.cluster_dns.clone()
        };
        ClusterNames {
            domain: self.config.domain.clone(),
            nameservers,
        }
    }

    /// The host's resolver configuration (blocking: reads a file).
    pub(crate) fn host_resolv_conf(&self) -> ResolvConf {
        host_resolv_conf(&self.config.resolv_conf)
    }

    /// Serves on the gateway address once the node has a pod CIDR, again on the new
    /// one if it changes; forever.
    pub(crate) async fn serve(self: Arc<Self>, host_netns: Option<PathBuf>) {
        let Some(pod_cidr) = self.pod_cidr.clone() else {
            return;
        };
        let mut cidr = pod_cidr.subscribe();
        loop {
            let gateway = cidr.borrow_and_update().and_then(|c| c.host(1));
            let Some(gateway) = gateway else {
                if cidr.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let address = SocketAddr::new(IpAddr::V4(gateway), self.config.port);
            let bound = crate::network::netns::in_netns(host_netns.as_deref(), || Listeners::bind_std(address, true))
                .and_then(|bound| bound)
                .and_then(|(udp, tcp)| Listeners::from_std(udp, tcp));
            let listeners = match bound {
                Ok(listeners) => listeners,
                Err(e) => {
                    tracing::warn!(%address, error = %e, "cannot serve cluster DNS; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = cidr.changed() => {}
                    }
                    continue;
                }
            };
            let host = self.host_resolv_conf();
            let upstreams: Vec<SocketAddr> = host
                .nameservers
                .iter()
                .filter(|ip| **ip != IpAddr::V4(gateway))
                .map(|ip| SocketAddr::new(*ip, 53))
                .collect();
            if upstreams.is_empty() {
                tracing::warn!(resolv_conf = %self.config.resolv_conf.display(),
                    "no upstream resolvers: names outside the cluster will not resolve");
            }
            tracing::info!(%address, domain = %self.config.domain, ?upstreams, "serving cluster DNS");
            let resolver = Arc::new(Resolver {
                zone: ZoneConfig::new(&self.config.domain),
                catalog: self.catalog.clone(),
                upstreams,
            });
            tokio::select! {
                () = listeners.serve(resolver) => {}
                changed = cidr.changed() => if changed.is_err() { return },
            }
        }
    }
}
