//! The filter's effects on the host: each sync whose rules differ from the last
//! writes all of the filter's chains in one `iptables-restore --noflush` (one
//! transaction of the filter table), deleting those no longer wanted. The first
//! sync, and every full one, reads the host (`iptables-save`) for the chains found
//! there (what a killed agent left is taken over, and chains that are not the ones
//! the last sync left are written again) and for the jump from FORWARD.
//! [`Filter::stop`] removes everything of the filter's.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use super::model::PodFilter;
use super::rules::{self, FilterChains};
use crate::proxy::iptables;
use crate::proxy::rules::Table;

#[derive(Debug, Default)]
struct State {
    /// The chains on the host and their rules as the last sync left them (None
    /// before the first sync read the host).
    applied: Option<BTreeMap<String, Vec<String>>>,
    /// A sync failed: the next one reads the host again.
    needs_full: bool,
    stopped: bool,
}

/// Writes one agent's network policy filter to its host.
#[derive(Debug)]
pub struct Filter {
    names: FilterChains,
    host_netns: Option<PathBuf>,
    state: Mutex<State>,
}

impl Filter {
    /// The filter tagged `tag` (the pod bridge's name), in `host_netns` (tests) or
    /// the agent's own network namespace.
    pub fn new(tag: &str, host_netns: Option<PathBuf>) -> Filter {
        Filter {
            names: FilterChains::new(tag),
            host_netns,
            state: Mutex::default(),
        }
    }

    pub fn chains(&self) -> &FilterChains {
        &self.names
    }

    /// Makes the host's filter that of `filters` (blocking).
    pub fn sync(&self, filters: &[PodFilter], full: bool) -> io::Result<()> {
        let mut state = self.state.lock().expect("filter lock");
        if state.stopped {
            return Ok(());
        }
        let host_netns = self.host_netns.as_deref();
        let wanted = rules::chains(filters, &self.names);
        let full = full || state.needs_full || state.applied.is_none();
        let mut add_jump = None;
        if full {
            state.needs_full = true;
            let saved = iptables::save(host_netns)?;
            let found: BTreeSet<String> = iptables::existing_chains(&saved, &self.names)
                .into_iter()
                .filter(|(table, _)| *table == Table::Filter)
                .map(|(_, chain)| chain)
                .collect();
            // What a predecessor left, or a host whose chains changed under us, is
            // rewritten whole: those chains' rules are not known.
            let known = state
                .applied
                .as_ref()
                .map(|a| a.keys().cloned().collect::<BTreeSet<_>>());
            if known.as_ref() != Some(&found) {
                state.applied = Some(found.into_iter().map(|c| (c, vec!["\0unknown".to_string()])).collect());
            }
            let jump = format!("-A FORWARD {}", self.names.jump_spec());
            if !saved.lines().any(|line| line.trim_end() == jump) {
                add_jump = Some(self.names.jump_spec());
            }
        }
        let applied = state.applied.clone().unwrap_or_default();
        if add_jump.is_none() && applied == wanted {
            state.needs_full = false;
            return Ok(());
        }
        let stale: Vec<String> = applied.keys().filter(|c| !wanted.contains_key(*c)).cloned().collect();
        let input = rules::restore_input(&wanted, &stale, add_jump);
        if let Err(e) = iptables::restore(host_netns, &input) {
            state.needs_full = true;
            return Err(e);
        }
        state.applied = Some(wanted);
        state.needs_full = false;
        Ok(())
    }

    /// Removes the jump and every chain of the filter (blocking); later syncs do
    /// nothing.
    pub fn stop(&self) -> io::Result<()> {
        let mut state = self.state.lock().expect("filter lock");
        state.stopped = true;
        iptables::cleanup(self.host_netns.as_deref(), &self.names)?;
        state.applied = Some(BTreeMap::new());
        Ok(())
    }
}
