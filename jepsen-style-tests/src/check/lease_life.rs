//! When a lease was provably alive, in the history's clock — conservatively, so that
//! the lease checker has no false positives.
//!
//! Proofs of life are the `ok` grant and the `ok` keepalives that answered ttl > 0.
//! A proof P shows two things:
//! - the lease existed at some moment no later than P's completion;
//! - the server (re)started its TTL when it received P, which was after P's
//!   invocation, so it cannot expire before `P.invoke + ttl` (no slack: see
//!   [`RENEWAL_SLACK_NS`]).
//!
//! A lease id is granted once and never comes back, so a lease that existed at two
//! moments existed in between. Hence it was alive throughout
//!
//! ```text
//!   [ earliest proof completion ,  min( latest P.invoke + P.ttl ,  first revoke invocation ) )
//! ```
//!
//! — any revoke that may have happened (`ok` or `info`) ends the interval at its
//! invocation. Its key was attached by the grant, so the key was present from the
//! grant's completion within that interval.

use crate::history::{Completed, Kind, Op};

/// Subtracted from every proven expiry. Zero: the server renews on receipt, which is
/// after the client's invocation, and the cluster's nodes share the test's clock.
pub(crate) const RENEWAL_SLACK_NS: u64 = 0;

#[derive(Debug, Clone, Default)]
pub(crate) struct LeaseLife {
    /// Position of the `ok` grant (the one that attached the key).
    pub grant: Option<usize>,
    pub key: Option<String>,
    /// Set when more than one grant claims this lease: nothing is claimed about it.
    pub ambiguous: bool,
    /// Earliest completion of a proof of life.
    exists_from: Option<u64>,
    /// Latest proven expiry, and the position of the proof that gives it.
    alive_until: Option<(u64, usize)>,
    /// Earliest invocation of a revoke that may have happened, and its position.
    revoked_from: Option<(u64, usize)>,
}

impl LeaseLife {
    /// Reads the lease's operations from the history: `lives[lease]`.
    pub(crate) fn all(history: &[Completed]) -> std::collections::BTreeMap<i64, LeaseLife> {
        let mut lives: std::collections::BTreeMap<i64, LeaseLife> = std::collections::BTreeMap::new();
        for (position, c) in history.iter().enumerate() {
            match (&c.op, c.kind) {
                (Op::LeaseGrant { lease, ttl_s, key }, Kind::Ok) => {
                    let life = lives.entry(*lease).or_default();
                    life.ambiguous |= life.grant.is_some();
                    life.grant = Some(position);
                    life.key = Some(key.clone());
                    life.prove(c, *ttl_s, position);
                }
                (
                    Op::LeaseKeepAlive {
                        lease,
                        ttl_s: Some(ttl_s),
                    },
                    Kind::Ok,
                ) if *ttl_s > 0 => {
                    lives.entry(*lease).or_default().prove(c, *ttl_s, position);
                }
                (Op::LeaseRevoke { lease }, Kind::Ok | Kind::Info) => {
                    let life = lives.entry(*lease).or_default();
                    if life.revoked_from.is_none_or(|(t, _)| c.invoke_ns < t) {
                        life.revoked_from = Some((c.invoke_ns, position));
                    }
                }
                _ => {}
            }
        }
        lives
    }

    fn prove(&mut self, c: &Completed, ttl_s: i64, position: usize) {
        let Some(complete_ns) = c.complete_ns else { return };
        let Ok(ttl_s) = u64::try_from(ttl_s) else { return };
        if ttl_s == 0 {
            return;
        }
        self.exists_from = Some(self.exists_from.map_or(complete_ns, |t| t.min(complete_ns)));
        let expiry = c
            .invoke_ns
            .saturating_add(ttl_s.saturating_mul(1_000_000_000))
            .saturating_sub(RENEWAL_SLACK_NS);
        if self.alive_until.is_none_or(|(t, _)| expiry > t) {
            self.alive_until = Some((expiry, position));
        }
    }

    /// The moment the lease may have stopped living: expiry or a revoke.
    fn alive_before(&self) -> Option<u64> {
        let (until, _) = self.alive_until?;
        Some(self.revoked_from.map_or(until, |(r, _)| r.min(until)))
    }

    /// Whether the lease certainly existed at every moment of `from..=to`.
    pub(crate) fn certainly_alive(&self, from: u64, to: u64) -> bool {
        !self.ambiguous
            && self.exists_from.is_some_and(|t| t <= from)
            && self.alive_before().is_some_and(|end| to < end)
    }

    /// Whether the lease certainly held its key at every moment of `from..=to`.
    pub(crate) fn key_certainly_attached(&self, history: &[Completed], from: u64, to: u64) -> bool {
        let attached = self.grant.and_then(|g| history[g].complete_ns);
        attached.is_some_and(|t| t <= from) && self.certainly_alive(from, to)
    }

    /// Why the lease was alive, for anomaly descriptions; and the positions involved.
    pub(crate) fn explain(&self, history: &[Completed]) -> (String, Vec<usize>) {
        let mut positions = Vec::new();
        let mut text = String::from("the lease was provably alive");
        if let Some(g) = self.grant {
            positions.push(g);
            text += &format!(
                " from {} (grant #{} completed)",
                seconds(history[g].complete_ns.unwrap_or(0)),
                history[g].index
            );
        }
        if let Some((until, p)) = self.alive_until {
            if Some(p) != self.grant {
                positions.push(p);
            }
            text += &format!(
                " until {} (#{} invoked at {} with ttl)",
                seconds(until),
                history[p].index,
                seconds(history[p].invoke_ns)
            );
        }
        if let Some((_, r)) = self.revoked_from {
            text += &format!(", revoke #{} invoked later", history[r].index);
        }
        (text, positions)
    }
}

/// Nanoseconds as seconds since the run started, for descriptions.
pub(crate) fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixture::{History, S, grant, keepalive, revoke};

    #[test]
    fn alive_from_the_grant_until_the_last_renewal_plus_ttl() {
        let mut h = History::new();
        h.ok(1, grant(7, 3, "l/a"), 0, S / 10, Some(2));
        h.ok(1, keepalive(7, Some(3)), 2 * S, 2 * S + 1, None);
        let life = &LeaseLife::all(&h.ops)[&7];
        assert!(!life.certainly_alive(0, S / 10), "not before the grant completed");
        assert!(life.certainly_alive(S / 10, 5 * S - 1));
        assert!(
            !life.certainly_alive(S, 5 * S),
            "renewed at 2 s with 3 s: may be gone at 5 s"
        );
    }

    #[test]
    fn a_revoke_that_may_have_happened_ends_it_and_a_lost_keepalive_proves_nothing() {
        let mut h = History::new();
        h.ok(1, grant(7, 3, "l/a"), 0, 10, Some(2));
        h.ok(1, keepalive(7, Some(0)), S, S + 1, None);
        h.info(1, keepalive(7, None), S);
        h.info(2, revoke(7), 2 * S);
        h.fail(2, revoke(7), S, S + 1);
        let life = &LeaseLife::all(&h.ops)[&7];
        assert!(life.certainly_alive(10, 2 * S - 1));
        assert!(!life.certainly_alive(10, 2 * S));
    }

    #[test]
    fn two_grants_of_one_lease_make_it_ambiguous() {
        let mut h = History::new();
        h.ok(1, grant(7, 3, "l/a"), 0, 10, Some(2));
        h.ok(2, grant(7, 3, "l/b"), 0, 10, Some(3));
        assert!(!LeaseLife::all(&h.ops)[&7].certainly_alive(10, 20));
    }
}
