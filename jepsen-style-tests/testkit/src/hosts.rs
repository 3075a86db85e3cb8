//! Several "hosts" on one machine for tests of nodes that talk to each other over a
//! network: each host is a network namespace with one veth to a bridge in the root
//! namespace, an address on a private /24 and a default route through the bridge.
//! A process started "on" a host (an agent) enters only its network namespace
//! (`nsenter --net`), so its mounts, cgroups and files stay the machine's, as a real
//! host's would be its own: a restarted agent finds what the one before it mounted.
//!
//! ```text
//!   root namespace                          host namespaces
//!   bridge bh<N>  172.31.N.1/24 ◄─veth─► h<N>-0  172.31.N.10/24  (agent 0, its pods)
//!                               ◄─veth─► h<N>-1  172.31.N.11/24  (agent 1, its pods)
//! ```
//!
//! N is claimed by creating the bridge (`ip link add` fails when another test holds
//! that name), so tests running at the same time get different bridges and subnets.
//! Whatever a host's processes make inside its namespace (pod bridges, veths, routes,
//! iptables rules) dies with the namespace; the root namespace gets only the bridge,
//! the host ends of the veths and one FORWARD rule, all removed by the Drop, whether
//! the test passed or not. Processes started on a host must be stopped before the
//! Drop (a [`crate::Process`] is killed by its own Drop): a namespace outlives its
//! deletion while a process is still in it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::Process;

/// The private /16 the hosts' subnets are taken from (one /24 per network).
const SUBNETS: [u8; 2] = [172, 31];
/// The first host's last address byte; the bridge is `.1`.
const FIRST_HOST: u8 = 10;

/// The hosts of one test, and the bridge that joins them.
pub struct HostNetwork {
    index: u8,
    bridge: String,
    hosts: Vec<Host>,
    /// The FORWARD rule letting traffic between the hosts through the root
    /// namespace's firewall (bridged frames pass it when br_netfilter is loaded).
    forward_rule: Option<Vec<String>>,
}

/// One host: a named network namespace (`ip netns`) with an address on the network.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name, as `ip netns` lists it.
    pub name: String,
    pub ip: Ipv4Addr,
    /// The veth's end in the root namespace, on the bridge.
    veth: String,
}

/// Whether this machine can make hosts (root, `ip`, `nsenter`, `iptables`); if not,
/// says so through [`crate::skip`] (which fails under CI).
pub fn can_make_hosts() -> bool {
    if !rustix::process::geteuid().is_root() {
        crate::skip("root (network namespaces and a bridge for test hosts)");
        return false;
    }
    for (tool, flag) in [("ip", "-V"), ("nsenter", "--version"), ("iptables", "--version")] {
        let found = Command::new(system_tool(tool))
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            crate::skip(&format!("the {tool} command"));
            return false;
        }
    }
    true
}

/// A system tool by name: the one on `PATH`, else `/usr/sbin`'s or `/sbin`'s (where
/// Debian puts `ip`, `iptables` and `runc`, off some users' `PATH`).
pub fn system_tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a command, an error with its output if it fails.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(system_tool(program))
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl HostNetwork {
    /// `count` hosts on a new bridge; [`can_make_hosts`] first.
    pub fn create(count: usize) -> anyhow::Result<HostNetwork> {
        assert!(
            count <= usize::from(250 - FIRST_HOST),
            "at most {} hosts",
            250 - FIRST_HOST
        );
        let index = claim_bridge()?;
        let mut network = HostNetwork {
            index,
            bridge: format!("bh{index}"),
            hosts: Vec::new(),
            forward_rule: None,
        };
        // From here on the Drop undoes whatever was made, should a step fail.
        let gateway = format!("{}/24", network.gateway());
        run("ip", &["addr", "add", &gateway, "dev", &network.bridge])?;
        // A bridge takes the lowest address of its ports unless given one: when the
        // host whose veth had it left (a pulled cable), the gateway's address would
        // change under the other hosts' neighbour caches and cut them off for seconds.
        let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", network.bridge))
            .context("reading the bridge's address")?;
        run("ip", &["link", "set", &network.bridge, "address", mac.trim()])?;
        run("ip", &["link", "set", &network.bridge, "up"])?;
        let rule: Vec<String> = ["FORWARD", "-i", &network.bridge, "-o", &network.bridge, "-j", "ACCEPT"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut insert = vec!["-w", "-I"];
        insert.extend(rule.iter().map(String::as_str));
        run("iptables", &insert)?;
        network.forward_rule = Some(rule);
        for i in 0..count {
            let host = Host {
                name: format!("h{index}-{i}"),
                ip: Ipv4Addr::new(SUBNETS[0], SUBNETS[1], index, FIRST_HOST + i as u8),
                veth: format!("bh{index}v{i}"),
            };
            run("ip", &["netns", "add", &host.name])?;
            network.hosts.push(host.clone());
            network.plug(&host)?;
        }
        Ok(network)
    }

    /// Connects a new host to the bridge: the veth, its address, its routes.
    fn plug(&self, host: &Host) -> anyhow::Result<()> {
        run(
            "ip",
            &[
                "link", "add", &host.veth, "type", "veth", "peer", "name", "eth0", "netns", &host.name,
            ],
        )?;
        run("ip", &["link", "set", &host.veth, "master", &self.bridge])?;
        run("ip", &["link", "set", &host.veth, "up"])?;
        let address = format!("{}/24", host.ip);
        let gateway = self.gateway().to_string();
        host.ip(&["link", "set", "lo", "up"])?;
        host.ip(&["addr", "add", &address, "dev", "eth0"])?;
        host.ip(&["link", "set", "eth0", "up"])?;
        host.ip(&["route", "add", "default", "via", &gateway])?;
        Ok(())
    }

    /// The bridge's address in the root namespace: where the hosts reach servers
    /// that the test runs outside them (the control plane, a registry).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(SUBNETS[0], SUBNETS[1], self.index, 1)
    }

    /// A /16 for the pods of this network's hosts (`--cluster-cidr`), its own as the
    /// hosts' /24 is. Traffic between the hosts crosses the root namespace's bridge,
    /// and with br_netfilter loaded (Kubernetes nodes load it) bridged packets pass
    /// the root namespace's conntrack and nat rules: pod addresses that another test,
    /// or a node running in the root namespace, also uses would be masqueraded there.
    pub fn pod_cidr(&self) -> String {
        format!("10.{}.0.0/16", self.index)
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    /// Pulls host `index`'s cable: its veth goes, with both ends, so the host neither
    /// sends nor receives anything again, as a machine that lost power would (its
    /// processes are the caller's to kill).
    pub fn pull_cable(&self, index: usize) -> anyhow::Result<()> {
        run("ip", &["link", "del", &self.hosts[index].veth]).map(|_| ())
    }
}

/// The network indexes N: 10.N.0.0/16 (the pods') stays clear of Kubernetes' default
/// service range (10.96.0.0/12) and cluster CIDR (10.244.0.0/16).
const INDEXES: std::ops::RangeInclusive<u32> = 112..=243;

/// Creates the first free bridge `bh<N>`, starting from one this process's id picks.
fn claim_bridge() -> anyhow::Result<u8> {
    let count = INDEXES.end() - INDEXES.start() + 1;
    let start = std::process::id() % count;
    for offset in 0..count {
        let index = (INDEXES.start() + (start + offset) % count) as u8;
        let name = format!("bh{index}");
        let made = Command::new(system_tool("ip"))
            .args(["link", "add", &name, "type", "bridge"])
            .output()
            .context("running ip")?;
        if made.status.success() {
            return Ok(index);
        }
    }
    bail!("no free test bridge bh{}…bh{}", INDEXES.start(), INDEXES.end())
}

impl Host {
    /// The namespace's file, for `setns` or a CNI_NETNS.
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// A command that runs `program` on this host (in its network namespace only).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(system_tool("nsenter"));
        command
            .arg(format!("--net={}", self.netns_path().display()))
            .arg(system_tool(program));
        command
    }

    /// Runs `work` on a thread of its own inside this host's network namespace: the
    /// sockets it opens, and those of the threads it starts, are the host's.
    pub fn spawn_inside<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<anyhow::Result<T>> {
        let path = self.netns_path();
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&namespace),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .with_context(|| format!("entering {}", path.display()))?;
            Ok(work())
        })
    }

    /// Runs `ip args…` on this host.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command("ip").args(args).output().context("running nsenter")?;
        if !out.status.success() {
            bail!(
                "ip {} on {}: {}",
                args.join(" "),
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A [`Process`] (not started) running `program args…` on this host; nsenter
    /// execs it, so the process's pid is the program's.
    pub fn process<S: Into<String>>(
        &self,
        name: &str,
        program: impl AsRef<Path>,
        args: impl IntoIterator<Item = S>,
        log: impl Into<PathBuf>,
    ) -> Process {
        let mut words = vec![
            format!("--net={}", self.netns_path().display()),
            program.as_ref().display().to_string(),
        ];
        words.extend(args.into_iter().map(Into::into));
        Process::new(name, system_tool("nsenter"), log).with_args(words)
    }
}

impl Drop for HostNetwork {
    fn drop(&mut self) {
        for host in &self.hosts {
            // Whatever still runs on the host would keep its namespace alive.
            if let Ok(pids) = run("ip", &["netns", "pids", &host.name]) {
                for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
            }
            if let Err(e) = run("ip", &["netns", "del", &host.name]) {
                eprintln!("removing test host {}: {e}", host.name);
            }
            // Gone with the namespace's end; removed here should a process linger.
            let _ = Command::new(system_tool("ip"))
                .args(["link", "del", &host.veth])
                .output();
        }
        if let Some(rule) = self.forward_rule.take() {
            let mut delete = vec!["-w", "-D"];
            delete.extend(rule.iter().map(String::as_str));
            if let Err(e) = run("iptables", &delete) {
                eprintln!("removing the test hosts' FORWARD rule: {e}");
            }
        }
        if let Err(e) = run("ip", &["link", "del", &self.bridge]) {
            eprintln!("removing test bridge {}: {e}", self.bridge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness's promise: hosts reach each other and the root namespace through
    /// the bridge, a process started on a host sees only its host's network, and the
    /// Drop leaves nothing of it in the root namespace.
    #[test]
    fn hosts_reach_each_other_and_leave_nothing_behind() {
        if !can_make_hosts() {
            return;
        }
        let (bridge, names, veths);
        {
            let network = HostNetwork::create(2).unwrap();
            bridge = network.bridge().to_string();
            names = network.hosts().iter().map(|h| h.name.clone()).collect::<Vec<_>>();
            veths = network.hosts().iter().map(|h| h.veth.clone()).collect::<Vec<_>>();
            let (a, b) = (network.host(0), network.host(1));
            let addresses = a.ip(&["-br", "addr", "show", "dev", "eth0"]).unwrap();
            assert!(addresses.contains(&a.ip.to_string()), "{addresses}");
            for target in [b.ip, network.gateway()] {
                let out = a
                    .command("ping")
                    .args(["-c", "1", "-W", "5", &target.to_string()])
                    .output();
                // ping is not everywhere; the route is what this checks then.
                match out {
                    Ok(out) if out.status.code() != Some(127) => {
                        assert!(
                            out.status.success(),
                            "{} → {target}: {}",
                            a.name,
                            String::from_utf8_lossy(&out.stdout)
                        );
                    }
                    _ => {
                        let route = a.ip(&["route", "get", &target.to_string()]).unwrap();
                        assert!(route.contains("eth0"), "{route}");
                    }
                }
            }
            let links = a.ip(&["-br", "link"]).unwrap();
            assert!(!links.contains(&bridge), "the host sees the root's links: {links}");
        }
        let first_words = |text: String| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(|w| w.split('@').next().unwrap_or(w).to_string())
                .collect()
        };
        let links = first_words(run("ip", &["-br", "link"]).unwrap());
        for name in veths.iter().chain([&bridge]) {
            assert!(!links.contains(name), "{name} left behind: {links:?}");
        }
        let namespaces = first_words(run("ip", &["netns", "list"]).unwrap());
        for name in &names {
            assert!(!namespaces.contains(name), "{name} left behind");
        }
        let forward = run("iptables", &["-w", "-S", "FORWARD"]).unwrap();
        assert!(
            !forward.lines().any(|l| l.split_whitespace().any(|w| w == bridge)),
            "{forward}"
        );
    }
}
