//! The proxy's effects on the host: each sync writes the chains that changed in one
//! `iptables-restore` (rules.rs says what); a full sync writes them all, and first
//! reads the host (`iptables-save`) for the jumps into berth's chains and sets the
//! kernel settings and the service route (host.rs). [`Proxier::stop`] removes it all.
//!
//! The first sync after a start is full and takes the chains found on the host as
//! its own: what a killed agent left is rewritten or deleted then, without a moment
//! with no rules for the Services that still have them.
//!
//! After the rules, a sync that changed where UDP Services' traffic may go deletes
//! the UDP flows that went stale (conntrack.rs), as does every full sync.
//!
//! One lock: the state, held across each sync and the stop (calls block), so a
//! sync still running when the agent stops cannot write after the cleanup.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use berth_api::cidr::Ipv4Cidr;

use super::chains::ChainNames;
use super::conntrack::{self, UdpTargets};
use super::model::ServicePort;
use super::rules::{self, Chain, ChainContent, ProxyNode, UNKNOWN_CONTENT};
use super::{host, iptables};

/// The default of `--service-cluster-ip-range`, as the API server's.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// What a proxy is set up with.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// The Node's name (its endpoints are local ones).
    pub node_name: String,
    /// Names this proxy's chains: the pod bridge's name, so agents sharing a host
    /// keep separate chains (at most 15 characters).
    pub tag: String,
    /// The host's network namespace when the agent is not in it (tests).
    pub host_netns: Option<PathBuf>,
    /// `--service-cluster-ip-range`.
    pub service_cidr: Ipv4Cidr,
    /// The bridge the service CIDR is routed to (the pod network's); None leaves
    /// the host's routes alone (no pod network).
    pub route_bridge: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    /// The proxy's chains on the host as the last sync left them (None before the
    /// first sync has read them).
    applied: Option<BTreeMap<Chain, ChainContent>>,
    /// A sync failed: the next one reads the host again.
    needs_full: bool,
    /// Stopped: nothing more is written.
    stopped: bool,
    /// The service CIDR's route is in place (checked at every sync until it is).
    routed: bool,
    /// The UDP targets the stale flows were last deleted for (None: not yet, or the
    /// last attempt failed).
    udp_cleaned: Option<UdpTargets>,
    /// Whether the `conntrack` tool runs here (None: not asked yet).
    has_conntrack: Option<bool>,
}

/// Writes the rules of one proxy to its host.
#[derive(Debug)]
pub struct Proxier {
    settings: ProxySettings,
    node: ProxyNode,
    state: Mutex<State>,
}

impl Proxier {
    /// Whether this host can run the proxy: root, and iptables' restore command.
    pub fn available() -> Result<(), String> {
        if !rustix::process::geteuid().is_root() {
            return Err("the service proxy needs root (it writes the node's iptables)".into());
        }
        let restore = std::process::Command::new("iptables-restore").arg("--version").output();
        if !restore.is_ok_and(|out| out.status.success()) {
            return Err("the service proxy needs iptables-restore (Debian: iptables)".into());
        }
        Ok(())
    }

    pub fn new(settings: ProxySettings) -> Proxier {
        let node = ProxyNode {
            name: settings.node_name.clone(),
            chains: ChainNames::new(&settings.tag),
            pod_bridge: settings.route_bridge.clone(),
        };
        Proxier {
            settings,
            node,
            state: Mutex::default(),
        }
    }

    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    pub fn chains(&self) -> &ChainNames {
        &self.node.chains
    }

    /// Makes the host's rules those of `ports` (blocking). A `full` sync also puts
    /// back the jumps into berth's chains, the kernel settings and the service
    /// route, should anyone have removed them.
    pub fn sync(&self, ports: &[ServicePort], full: bool) -> io::Result<()> {
        let mut state = self.state.lock().expect("proxier lock");
        if state.stopped {
            return Ok(());
        }
        let host_netns = self.settings.host_netns.as_deref();
        let mut missing = Vec::new();
        let full = full || state.needs_full || state.applied.is_none();
        if full {
            state.needs_full = true;
            let saved = iptables::save(host_netns)?;
            if state.applied.is_none() {
                let found = iptables::existing_chains(&saved, &self.node.chains);
                state.applied = Some(found.into_iter().map(|c| (c, UNKNOWN_CONTENT.to_string())).collect());
            }
            missing = iptables::missing_jumps(&saved, &rules::jumps(&self.node.chains));
            if let Err(e) = host::set_sysctls(host_netns) {
                tracing::warn!(error = %e, "cannot set the kernel settings the service proxy needs");
            }
            state.routed = false;
        }
        if let Some(bridge) = self.settings.route_bridge.as_deref().filter(|_| !state.routed) {
            match host::ensure_service_route(host_netns, self.settings.service_cidr, bridge) {
                Ok(routed) => state.routed = routed,
                Err(e) => {
                    tracing::warn!(error = %e, cidr = %self.settings.service_cidr, "cannot route the service CIDR")
                }
            }
        }
        let previous = state.applied.clone().unwrap_or_default();
        let ruleset = rules::ruleset(ports, &self.node, &previous, full, &missing);
        if let Err(e) = iptables::restore(host_netns, &ruleset.text) {
            state.needs_full = true;
            return Err(e);
        }
        state.applied = Some(ruleset.chains);
        state.needs_full = false;
        self.clean_stale_flows(&mut state, ports, full);
        Ok(())
    }

    /// Deletes the UDP flows the new rules made stale, when the UDP targets changed
    /// since the last clean-up (or on a `full` sync). A failure is logged and tried
    /// again at the next sync; the rules stand either way.
    fn clean_stale_flows(&self, state: &mut State, ports: &[ServicePort], full: bool) {
        let targets = UdpTargets::of(ports);
        let previous = state.udp_cleaned.take();
        let unchanged = previous.as_ref() == Some(&targets);
        if (unchanged && !full) || (targets.is_empty() && previous.as_ref().is_none_or(UdpTargets::is_empty)) {
            state.udp_cleaned = Some(targets);
            return;
        }
        if !*state.has_conntrack.get_or_insert_with(|| {
            let found = conntrack::available();
            if !found {
                tracing::warn!(
                    "the conntrack tool is missing (Debian: conntrack): UDP clients of a Service \
                     keep sending to endpoints that are gone until their flows time out"
                );
            }
            found
        }) {
            return;
        }
        match conntrack::clean(self.settings.host_netns.as_deref(), &targets, previous.as_ref()) {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(filters = deleted, "deleted stale UDP flows of Services");
                }
                state.udp_cleaned = Some(targets);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete stale UDP flows; retrying at the next sync");
                state.udp_cleaned = previous;
            }
        }
    }

    /// Removes every rule and chain of the proxy, and its route (blocking); later
    /// syncs do nothing.
    pub fn stop(&self) -> io::Result<()> {
        let mut state = self.state.lock().expect("proxier lock");
        state.stopped = true;
        let host_netns = self.settings.host_netns.as_deref();
        if let Some(bridge) = &self.settings.route_bridge
            && let Err(e) = host::remove_service_route(host_netns, self.settings.service_cidr, bridge)
        {
            tracing::warn!(error = %e, "cannot remove the service CIDR's route");
        }
        iptables::cleanup(host_netns, &self.node.chains)?;
        state.applied = Some(BTreeMap::new());
        Ok(())
    }
}
