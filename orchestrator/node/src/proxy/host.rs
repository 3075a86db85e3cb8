//! What the proxy needs of the host besides its rules: two kernel settings, and a
//! route for the service CIDR.
//!
//! - `net.bridge.bridge-nf-call-iptables=1` (module `br_netfilter`): a pod's packet
//!   to a Service whose endpoint is on the same bridge is DNATed on its way through
//!   the host, but the endpoint's reply goes back over the bridge; without this the
//!   reply skips conntrack, is never un-DNATed, and the client drops it.
//! - `net.ipv4.conf.all.route_localnet=1`: NodePorts on 127.0.0.1, as kube-proxy
//!   allows them; the DNATed packet leaves with a loopback source, which the
//!   masquerade then rewrites. (rules.rs drops loopback destinations from outside.)
//! - A route for the service CIDR to the pod bridge, under berth's own protocol
//!   number: the host's own connections to a cluster IP find a route (their DNAT
//!   comes after the routing decision), and traffic to a service IP that no rule
//!   matches stays on this node instead of following the default route. The bridge
//!   is the pod network's, made with the node's first pod; until then the host's
//!   own routes apply.

use std::io;
use std::path::Path;

use berth_api::cidr::Ipv4Cidr;

use crate::network::netns;

/// The `proto` of the service CIDR route (66 is the routes to other nodes' pods).
pub const SERVICE_ROUTE_PROTOCOL: &str = "67";

const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

/// Sets the kernel settings the rules rely on, in the host's network namespace
/// (`/proc/sys/net` is per namespace, read as the calling thread's). Loads
/// `br_netfilter` if its settings are absent.
pub fn set_sysctls(host_netns: Option<&Path>) -> io::Result<()> {
    netns::in_netns(host_netns, || -> io::Result<()> {
        if !Path::new(BRIDGE_NF_CALL_IPTABLES).exists() {
            let loaded = std::process::Command::new("modprobe").arg("br_netfilter").status();
            if !loaded.is_ok_and(|s| s.success()) {
                tracing::warn!(
                    "cannot load br_netfilter: pods reaching a Service whose endpoint is on their own node may not get answers"
                );
            }
        }
        for setting in [BRIDGE_NF_CALL_IPTABLES, ROUTE_LOCALNET] {
            if Path::new(setting).exists() {
                std::fs::write(setting, "1").map_err(|e| io::Error::other(format!("setting {setting}: {e}")))?;
            }
        }
        Ok(())
    })?
}

/// Routes `cidr` to `bridge`, once the pod network has made the bridge (with the
/// node's first pod); idempotent. Whether the route is there.
pub fn ensure_service_route(host_netns: Option<&Path>, cidr: Ipv4Cidr, bridge: &str) -> io::Result<bool> {
    if netns::run_in(host_netns, "ip", &["link", "show", "dev", bridge]).is_err() {
        return Ok(false);
    }
    let cidr = cidr.to_string();
    netns::run_in(
        host_netns,
        "ip",
        &[
            "route",
            "replace",
            &cidr,
            "dev",
            bridge,
            "proto",
            SERVICE_ROUTE_PROTOCOL,
        ],
    )?;
    Ok(true)
}

/// Removes the route [`ensure_service_route`] made, if it is still there and still
/// this bridge's (agents sharing a host each route the CIDR to their own bridge,
/// the last one's route winning).
pub fn remove_service_route(host_netns: Option<&Path>, cidr: Ipv4Cidr, bridge: &str) -> io::Result<()> {
    let cidr = cidr.to_string();
    let shown = netns::run_in(
        host_netns,
        "ip",
        &[
            "route",
            "show",
            "exact",
            &cidr,
            "dev",
            bridge,
            "proto",
            SERVICE_ROUTE_PROTOCOL,
        ],
    )
    .unwrap_or_default();
    if shown.trim().is_empty() {
        return Ok(());
    }
    netns::run_in(
        host_netns,
        "ip",
        &["route", "del", &cidr, "dev", bridge, "proto", SERVICE_ROUTE_PROTOCOL],
    )
    .map(drop)
}
