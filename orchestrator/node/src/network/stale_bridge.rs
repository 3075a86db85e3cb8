//! A bridge left from another pod CIDR. The bridge plugin leaves the pods' bridge with
//! its gateway address when the last pod goes (it is the node's), and refuses to use a
//! bridge whose address is not the gateway of the CIDR it is given ("already has an IP
//! address different from"). A node that comes back with another block (a new data
//! dir, a new cluster) would then fail every pod. So before a pod's ADD, a bridge that
//! carries another address and has no pod on it is removed, and the plugin makes it
//! again; one that still has pods is left alone, and the plugin's error says why.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use berth_api::cidr::Ipv4Cidr;
use serde_json::Value;

use super::netns::run_in;

/// The IPv4 addresses (with their prefix lengths) in `ip -j -4 addr show` output.
fn addresses(json: &str) -> Vec<(Ipv4Addr, u8)> {
    let links: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    links
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|link| link["addr_info"].as_array().into_iter().flatten())
        .filter_map(|a| Some((a["local"].as_str()?.parse().ok()?, a["prefixlen"].as_u64()? as u8)))
        .collect()
}

/// Whether the bridge's addresses are other than the gateway the plugin will want.
fn is_stale(addresses: &[(Ipv4Addr, u8)], cidr: Ipv4Cidr) -> bool {
    let gateway = cidr.host(1);
    addresses
        .iter()
        .any(|&(ip, len)| Some(ip) != gateway || len != cidr.prefix_len())
}

/// Removes `bridge` (in the host namespace `host_netns`) when it carries an address
/// other than `cidr`'s gateway and no interface is attached to it.
pub(super) fn clear(host_netns: Option<&Path>, bridge: &str, cidr: Ipv4Cidr) -> io::Result<()> {
    let Ok(shown) = run_in(host_netns, "ip", &["-j", "-4", "addr", "show", "dev", bridge]) else {
        return Ok(()); // no such bridge yet
    };
    let found = addresses(&shown);
    if !is_stale(&found, cidr) {
        return Ok(());
    }
    let attached = run_in(host_netns, "ip", &["-j", "link", "show", "master", bridge])?;
    if serde_json::from_str::<Value>(&attached).is_ok_and(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
        return Ok(());
    }
    tracing::info!(%bridge, addresses = ?found, %cidr, "removing a pod bridge left from another pod CIDR");
    run_in(host_netns, "ip", &["link", "delete", bridge]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_is_stale_when_it_has_another_gateway() {
        let cidr: Ipv4Cidr = "10.244.1.0/24".parse().unwrap();
        let shown = r#"[{"ifname":"berth0","addr_info":[{"family":"inet","local":"10.244.0.1","prefixlen":24}]}]"#;
        assert_eq!(addresses(shown), [(Ipv4Addr::new(10, 244, 0, 1), 24)]);
        assert!(is_stale(&addresses(shown), cidr));
        let own = r#"[{"ifname":"berth0","addr_info":[{"family":"inet","local":"10.244.1.1","prefixlen":24}]}]"#;
        assert!(!is_stale(&addresses(own), cidr));
        // A bridge without an address (the plugin gives it one) is not in the way.
        assert!(!is_stale(&addresses(r#"[{"ifname":"berth0","addr_info":[]}]"#), cidr));
        assert!(!is_stale(&addresses(""), cidr));
    }
}
