//! Pods see each other's addresses across nodes. The bridge plugin's `ipMasq`
//! masquerades whatever a pod sends outside its node's block (it must: traffic to
//! the internet leaves with the node's address), which would also hide a pod's
//! address from pods on other nodes. Kubernetes' network model has no NAT between
//! pods, so traffic from this node's block to the other nodes' blocks skips the
//! masquerade: a chain of berth's, jumped to first in nat POSTROUTING, accepts it
//! before the bridge's rules (an ACCEPT ends the nat table's POSTROUTING).
//!
//! One chain per pod bridge (`BERTH-PEERS-<bridge>`), each matching its own block as
//! the source: agents that share one host (`berth up`, each with its own bridge)
//! keep a chain each and never rewrite each other's. A chain is rewritten whole
//! (`iptables-restore --noflush` flushes the chains it declares and leaves the
//! others alone).

use std::io;
use std::path::Path;
use std::process::Command;

use berth_api::cidr::Ipv4Cidr;

use super::netns;

/// The chain of the pods on `bridge` (an interface name has at most 15 characters,
/// so the name stays within iptables' 28).
pub fn chain_name(bridge: &str) -> String {
    format!("BERTH-PEERS-{bridge}")
}

/// The `iptables-restore` input that makes `chain` accept what goes from `own` to
/// each peer block (empty while this node has no block).
pub fn restore_input(chain: &str, own: Option<Ipv4Cidr>, peers: impl IntoIterator<Item = Ipv4Cidr>) -> String {
    let mut input = format!("*nat\n:{chain} - [0:0]\n");
    let Some(own) = own else {
        input.push_str("COMMIT\n");
        return input;
    };
    for peer in peers {
        input.push_str(&format!(
            "-A {chain} -s {own} -d {peer} -m comment --comment \"berth: pods on another node\" -j ACCEPT\n"
        ));
    }
    input.push_str("COMMIT\n");
    input
}

/// Makes the node's nat table skip the masquerade from `own` to `peers` (blocking).
pub fn sync(
    host_netns: Option<&Path>,
    chain: &str,
    own: Option<Ipv4Cidr>,
    peers: impl IntoIterator<Item = Ipv4Cidr>,
) -> io::Result<()> {
    let mut restore = Command::new("iptables-restore");
    restore.arg("--noflush");
    let out = netns::output_in(host_netns, restore, restore_input(chain, own, peers).as_bytes())?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let jump = ["-t", "nat", "-C", "POSTROUTING", "-j", chain];
    if netns::run_in(host_netns, "iptables", &jump).is_err() {
        netns::run_in(
            host_netns,
            "iptables",
            &["-t", "nat", "-I", "POSTROUTING", "1", "-j", chain],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_accepts_this_blocks_traffic_to_each_peer_block_and_nothing_else() {
        let own = Some("10.244.0.0/24".parse().unwrap());
        let peers = ["10.244.1.0/24".parse().unwrap(), "10.244.2.0/24".parse().unwrap()];
        assert_eq!(
            restore_input("BERTH-PEERS-berth0", own, peers),
            "*nat\n:BERTH-PEERS-berth0 - [0:0]\n\
             -A BERTH-PEERS-berth0 -s 10.244.0.0/24 -d 10.244.1.0/24 -m comment --comment \"berth: pods on another node\" -j ACCEPT\n\
             -A BERTH-PEERS-berth0 -s 10.244.0.0/24 -d 10.244.2.0/24 -m comment --comment \"berth: pods on another node\" -j ACCEPT\n\
             COMMIT\n"
        );
        let empty = "*nat\n:BERTH-PEERS-berth0 - [0:0]\nCOMMIT\n";
        assert_eq!(restore_input("BERTH-PEERS-berth0", own, []), empty);
        assert_eq!(
            restore_input("BERTH-PEERS-berth0", None, peers),
            empty,
            "no block of its own yet"
        );
        assert!(chain_name("fifteen-chars-x").len() <= 28);
    }
}
