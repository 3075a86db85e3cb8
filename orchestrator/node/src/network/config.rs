//! The network configurations berth hands the CNI plugins, one per plugin of the
//! chain, built here without I/O so their shape is tested:
//!
//! ```text
//!  loopback  (its own network, "cni-loopback", as containerd keeps it apart)
//!  bridge    berth0, isGateway, ipMasq, hairpinMode,
//!            host-local IPAM over the node's pod CIDR, route 0.0.0.0/0
//!  portmap   only for pods with hostPorts: capabilities.portMappings,
//!            runtimeConfig.portMappings, and the bridge's result as prevResult
//! ```

use std::path::Path;

use serde_json::{Value, json};

use super::PortMapping;
use super::cni::CNI_VERSION;
use berth_api::cidr::Ipv4Cidr;

/// The name of berth's pod network (host-local keeps its leases under it).
pub const NETWORK_NAME: &str = "berth";

pub fn loopback() -> Value {
    json!({"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"})
}

/// The bridge with host-local addresses from `pod_cidr`, leases kept in
/// `ipam_data_dir` (under the agent's state dir, so two agents on one machine keep
/// theirs apart and a restarted agent finds them).
pub fn bridge(bridge_name: &str, pod_cidr: Ipv4Cidr, ipam_data_dir: &Path) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "type": "bridge",
        "bridge": bridge_name,
        "isGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": pod_cidr.to_string()}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": ipam_data_dir,
        },
    })
}

/// portmap for `ports`, chained after the bridge whose result is `prev_result`.
pub fn portmap(ports: &[PortMapping], prev_result: &Value) -> Value {
    let mappings: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut mapping = json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": p.protocol.to_lowercase(),
            });
            if !p.host_ip.is_empty() {
                mapping["hostIP"] = p.host_ip.clone().into();
            }
            mapping
        })
        .collect();
    json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "snat": true,
        "runtimeConfig": {"portMappings": mappings},
        "prevResult": prev_result,
    })
}

/// The same configuration with `prevResult` set (DEL gets the ADD's result, as the
/// specification asks of runtimes that have it).
pub fn with_prev_result(mut config: Value, prev_result: Option<&Value>) -> Value {
    if let Some(prev) = prev_result.filter(|p| !p.is_null()) {
        config["prevResult"] = prev.clone();
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_config_carries_the_node_cidr_the_gateway_and_masquerade() {
        let config = bridge("berth0", "10.244.3.0/24".parse().unwrap(), Path::new("/s/cni/networks"));
        assert_eq!(
            config,
            json!({
                "cniVersion": "1.0.0", "name": "berth", "type": "bridge", "bridge": "berth0",
                "isGateway": true, "ipMasq": true, "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.244.3.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": "/s/cni/networks",
                },
            })
        );
    }

    #[test]
    fn portmap_takes_the_mappings_as_runtime_config_and_the_bridge_result() {
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.244.3.2/24"}]});
        let ports = [
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "TCP".into(),
                host_ip: String::new(),
            },
            PortMapping {
                host_port: 5353,
                container_port: 53,
                protocol: "udp".into(),
                host_ip: "127.0.0.1".into(),
            },
        ];
        let config = portmap(&ports, &prev);
        assert_eq!(config["capabilities"], json!({"portMappings": true}));
        assert_eq!(
            config["runtimeConfig"]["portMappings"],
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
            ])
        );
        assert_eq!(config["prevResult"], prev);
        assert_eq!(with_prev_result(loopback(), None), loopback());
        assert_eq!(with_prev_result(loopback(), Some(&prev))["prevResult"], prev);
    }
}
