//! Talking to the host's iptables (the nf_tables backend on Debian 12, the same
//! commands on the legacy one): `iptables-save` to learn what is there, one
//! `iptables-restore --noflush` per change. What to write is decided by pure
//! functions here (reading `iptables-save` output) and in rules.rs.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::process::Command;

use super::chains::ChainOwner;
use super::rules::{Chain, Jump, Table};
use crate::network::netns;

/// `iptables-save` of the tables the proxy uses (blocking).
pub fn save(host_netns: Option<&Path>) -> io::Result<String> {
    let mut out = String::new();
    for table in [Table::Filter, Table::Nat] {
        out.push_str(&netns::run_in(host_netns, "iptables-save", &["-t", table.as_str()])?);
    }
    Ok(out)
}

/// Feeds `input` to `iptables-restore --noflush` (blocking): each table's part is
/// one transaction, and chains the input does not name are left as they are.
pub fn restore(host_netns: Option<&Path>, input: &str) -> io::Result<()> {
    let mut restore = Command::new("iptables-restore");
    // -w: wait for the legacy backend's lock rather than fail (the nf_tables one
    // retries a transaction another writer raced by itself).
    restore.args(["-w", "5", "--noflush"]);
    let out = netns::output_in(host_netns, restore, input.as_bytes())?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The `(table, line)` pairs of `iptables-save` output, for the lines inside a table.
fn lines_by_table(save: &str) -> impl Iterator<Item = (Table, &str)> {
    let mut table = None;
    save.lines().filter_map(move |line| {
        if let Some(name) = line.strip_prefix('*') {
            table = match name.trim() {
                "filter" => Some(Table::Filter),
                "nat" => Some(Table::Nat),
                _ => None,
            };
            return None;
        }
        Some((table?, line))
    })
}

/// The proxy's chains that exist now (in `iptables-save` output).
pub fn existing_chains(save: &str, names: &impl ChainOwner) -> BTreeSet<Chain> {
    lines_by_table(save)
        .filter_map(|(table, line)| {
            let chain = line.strip_prefix(':')?.split_whitespace().next()?;
            names.is_own(chain).then(|| (table, chain.to_string()))
        })
        .collect()
}

/// Whether a rule line jumps to `target` (`... -j TARGET`, as iptables-save ends it).
fn jumps_to(line: &str, target: &str) -> bool {
    line.trim_end().rsplit_once(" -j ").is_some_and(|(_, t)| t == target)
}

/// The jumps of `wanted` that `iptables-save` output does not show.
pub fn missing_jumps(save: &str, wanted: &[Jump]) -> Vec<Jump> {
    wanted
        .iter()
        .filter(|jump| {
            let rule = format!("-A {} ", jump.from);
            let wanted_new = jump.matches.contains("--ctstate NEW");
            !lines_by_table(save).any(|(table, line)| {
                table == jump.table
                    && line.starts_with(&rule)
                    && jumps_to(line, &jump.target)
                    && line.contains("--ctstate NEW") == wanted_new
            })
        })
        .cloned()
        .collect()
}

/// The `iptables-restore --noflush` input that removes every rule and chain of the
/// proxy named by `names` found in `iptables-save` output: the jumps into its
/// chains (from any chain not its own), then the chains, flushed and deleted.
/// Nothing else is touched. Empty when there is nothing of the proxy's.
pub fn cleanup_input(save: &str, names: &impl ChainOwner) -> String {
    let own = existing_chains(save, names);
    let mut input = String::new();
    for table in [Table::Filter, Table::Nat] {
        let chains: Vec<&String> = own.iter().filter(|(t, _)| *t == table).map(|(_, c)| c).collect();
        let jumps_in: Vec<String> = lines_by_table(save)
            .filter(|(t, _)| *t == table)
            .filter_map(|(_, line)| {
                let rule = line.strip_prefix("-A ")?;
                let (chain, _) = rule.split_once(' ')?;
                let target = line.trim_end().rsplit_once(" -j ")?.1.split_whitespace().next()?;
                (!names.is_own(chain) && names.is_own(target)).then(|| format!("-D {rule}"))
            })
            .collect();
        if chains.is_empty() && jumps_in.is_empty() {
            continue;
        }
        input.push_str(&format!("*{}\n", table.as_str()));
        for chain in &chains {
            input.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for delete in jumps_in {
            input.push_str(&delete);
            input.push('\n');
        }
        for chain in &chains {
            input.push_str(&format!("-X {chain}\n"));
        }
        input.push_str("COMMIT\n");
    }
    input
}

/// Removes every rule and chain of the proxy from the host (blocking).
pub fn cleanup(host_netns: Option<&Path>, names: &impl ChainOwner) -> io::Result<()> {
    let input = cleanup_input(&save(host_netns)?, names);
    if input.is_empty() {
        return Ok(());
    }
    restore(host_netns, &input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::chains::ChainNames;
    use crate::proxy::rules::jumps;

    const SAVED: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:BERTH-NP-berth0 - [0:0]
:BERTH-SVCS-berth1 - [0:0]
-A INPUT -m conntrack --ctstate NEW -j BERTH-NP-berth0
-A FORWARD -j BERTH-FWD-berth0
-A FORWARD -m conntrack --ctstate NEW -j BERTH-SVCS-berth1
-A OUTPUT -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:BERTH-SVCS-berth0 - [0:0]
:BERTH-PEERS-berth0 - [0:0]
:CNI-abc - [0:0]
-A PREROUTING -m comment --comment \"berth service portals\" -j BERTH-SVCS-berth0
-A POSTROUTING -j BERTH-PEERS-berth0
-A POSTROUTING -s 10.244.0.2/32 -j CNI-abc
COMMIT
";

    #[test]
    fn the_proxys_own_chains_and_jumps_are_found_and_nothing_else() {
        let names = ChainNames::new("berth0");
        let sep = names.endpoint("default/web", "tcp", "10.244.1.5:80");
        let saved = SAVED.replace(":CNI-abc - [0:0]\n", &format!(":CNI-abc - [0:0]\n:{sep} - [0:0]\n"));
        assert_eq!(
            existing_chains(&saved, &names),
            BTreeSet::from([
                (Table::Filter, "BERTH-NP-berth0".to_string()),
                (Table::Nat, "BERTH-SVCS-berth0".to_string()),
                (Table::Nat, sep.clone()),
            ])
        );
        let missing: Vec<(&str, String)> = missing_jumps(&saved, &jumps(&names))
            .into_iter()
            .map(|j| (j.from, j.target))
            .collect();
        assert_eq!(
            missing,
            [
                ("OUTPUT", "BERTH-SVCS-berth0".to_string()),
                ("POSTROUTING", "BERTH-POST-berth0".to_string()),
                ("FORWARD", "BERTH-NP-berth0".to_string()),
                ("FORWARD", "BERTH-SVCS-berth0".to_string()),
                ("OUTPUT", "BERTH-SVCS-berth0".to_string()),
            ]
        );
    }

    #[test]
    fn cleanup_removes_the_jumps_then_the_chains_of_this_proxy_only() {
        let names = ChainNames::new("berth0");
        assert_eq!(
            cleanup_input(SAVED, &names),
            "*filter
:BERTH-NP-berth0 - [0:0]
-D INPUT -m conntrack --ctstate NEW -j BERTH-NP-berth0
-D FORWARD -j BERTH-FWD-berth0
-X BERTH-NP-berth0
COMMIT
*nat
:BERTH-SVCS-berth0 - [0:0]
-D PREROUTING -m comment --comment \"berth service portals\" -j BERTH-SVCS-berth0
-X BERTH-SVCS-berth0
COMMIT
"
        );
        assert_eq!(cleanup_input("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", &names), "");
    }
}
