//! Pods see each other's addresses across nodes. The bridge plugin's `ipMasq`
//! masquerades whatever a pod sends outside its node's block (it must: traffic to
//! the internet leaves with the node's address), which would also hide a pod's
//! address from pods on other nodes. Kubernetes' network model has no NAT between
//! pods, so traffic to the other nodes' pod CIDRs skips the masquerade: a chain of
//! berth's, jumped to first in nat POSTROUTING, accepts it before the bridge's rules
//! (an ACCEPT ends the nat table's POSTROUTING).
//!
//! The chain is rewritten whole (`iptables-restore --noflush` flushes the chains it
//! declares and leaves the others alone) from the same peers as the routes.

use std::io;
use std::path::Path;
use std::process::Command;

use berth_api::cidr::Ipv4Cidr;

use super::netns;

pub const CHAIN: &str = "BERTH-POD-PEERS";

/// The `iptables-restore` input that makes the chain hold one ACCEPT per peer block.
pub fn restore_input(peers: impl IntoIterator<Item = Ipv4Cidr>) -> String {
    let mut input = format!("*nat\n:{CHAIN} - [0:0]\n");
    for peer in peers {
        input.push_str(&format!(
            "-A {CHAIN} -d {peer} -m comment --comment \"berth: pods on another node\" -j ACCEPT\n"
        ));
    }
    input.push_str("COMMIT\n");
    input
}

/// Makes the node's nat table skip the masquerade for `peers` (blocking).
pub fn sync(host_netns: Option<&Path>, peers: impl IntoIterator<Item = Ipv4Cidr>) -> io::Result<()> {
    let mut restore = Command::new("iptables-restore");
    restore.arg("--noflush");
    let out = netns::output_in(host_netns, restore, restore_input(peers).as_bytes())?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let jump = ["-t", "nat", "-C", "POSTROUTING", "-j", CHAIN];
    if netns::run_in(host_netns, "iptables", &jump).is_err() {
        netns::run_in(
            host_netns,
            "iptables",
            &["-t", "nat", "-I", "POSTROUTING", "1", "-j", CHAIN],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_accepts_each_peer_block_and_nothing_else() {
        let peers = ["10.244.1.0/24".parse().unwrap(), "10.244.2.0/24".parse().unwrap()];
        assert_eq!(
            restore_input(peers),
            "*nat\n:BERTH-POD-PEERS - [0:0]\n\
             -A BERTH-POD-PEERS -d 10.244.1.0/24 -m comment --comment \"berth: pods on another node\" -j ACCEPT\n\
             -A BERTH-POD-PEERS -d 10.244.2.0/24 -m comment --comment \"berth: pods on another node\" -j ACCEPT\n\
             COMMIT\n"
        );
        assert_eq!(restore_input([]), "*nat\n:BERTH-POD-PEERS - [0:0]\nCOMMIT\n");
    }
}
