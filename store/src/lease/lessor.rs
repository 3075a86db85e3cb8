//! The leader's lessor: lease deadlines kept in memory only.
//!
//! Keepalives renew a deadline here and never touch the log or the disk. When the
//! leader sees a deadline pass, it proposes a `LeaseRevoke` through the log, so the
//! revocation happens at the same point of history on every replica and apply never
//! reads a clock. A replica that becomes leader starts every deadline afresh (now +
//! granted TTL), so a failover never expires a lease whose holder kept it alive.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// etcd's upper bound on a lease TTL (`etcdserver: too large lease TTL` above it).
pub const MAX_LEASE_TTL_SECONDS: i64 = 9_000_000_000;

/// How long the lessor waits before proposing the revocation of the same lease again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Deadlines {
    is_primary: bool,
    by_lease: HashMap<i64, Instant>,
    /// Leases found expired whose revocation is proposed: no keepalive brings them
    /// back (etcd's `Renew` of an expired lease waits for its revocation).
    revoking: HashSet<i64>,
}

#[derive(Debug)]
pub struct Lessor {
    min_ttl_seconds: i64,
    state: Mutex<Deadlines>,
}

impl Lessor {
    pub fn new(min_ttl_seconds: i64) -> Self {
        Self {
            min_ttl_seconds: min_ttl_seconds.max(1),
            state: Mutex::new(Deadlines::default()),
        }
    }

    /// The TTL a grant gets: etcd raises short TTLs to a minimum derived from the
    /// election timeout, so a lease cannot expire during an election.
    pub fn effective_ttl(&self, requested_seconds: i64) -> i64 {
        requested_seconds.max(self.min_ttl_seconds)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This replica became leader: every lease gets its full TTL from now.
    pub fn promote(&self, leases: impl Iterator<Item = (i64, i64)>) {
        let now = Instant::now();
        let mut state = self.lock();
        state.is_primary = true;
        state.by_lease = leases.map(|(id, ttl)| (id, now + ttl_duration(ttl))).collect();
        state.revoking.clear();
    }

    /// This replica is no longer leader: its deadlines mean nothing any more.
    pub fn demote(&self) {
        let mut state = self.lock();
        state.is_primary = false;
        state.by_lease.clear();
        state.revoking.clear();
    }

    pub fn is_primary(&self) -> bool {
        self.lock().is_primary
    }

    /// A keepalive: the lease lives for its granted TTL from now. False, and
    /// nothing renewed, for a lease found expired whose revocation is under way: the
    /// caller answers once it is revoked (or another leader answers).
    pub fn renew(&self, id: i64, ttl_seconds: i64) -> bool {
        let mut state = self.lock();
        if state.revoking.contains(&id) {
            return false;
        }
        state.by_lease.insert(id, Instant::now() + ttl_duration(ttl_seconds));
        true
    }

    /// Seconds left before the lease expires, as etcd reports them (rounded up).
    pub fn remaining_seconds(&self, id: i64, ttl_seconds: i64) -> i64 {
        let state = self.lock();
        match state.by_lease.get(&id) {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let secs = left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0);
                secs.min(ttl_seconds)
            }
            None => ttl_seconds,
        }
    }

    /// The leases whose deadline has passed. Leases seen for the first time start
    /// their TTL now; deadlines of leases that no longer exist are forgotten. A lease
    /// returned here is not returned again before `REVOKE_RETRY` has passed.
    pub fn take_expired(&self, leases: impl Iterator<Item = (i64, i64)>) -> Vec<i64> {
        let now = Instant::now();
        let mut state = self.lock();
        if !state.is_primary {
            return Vec::new();
        }
        let mut alive = HashMap::with_capacity(state.by_lease.len());
        let mut expired = Vec::new();
        for (id, ttl) in leases {
            let deadline = *state.by_lease.get(&id).unwrap_or(&(now + ttl_duration(ttl)));
            if deadline <= now {
                expired.push(id);
                alive.insert(id, now + REVOKE_RETRY);
            } else {
                alive.insert(id, deadline);
            }
        }
        state.revoking.retain(|id| alive.contains_key(id));
        state.revoking.extend(expired.iter().copied());
        state.by_lease = alive;
        expired
    }
}

fn ttl_duration(ttl_seconds: i64) -> Duration {
    Duration::from_secs(ttl_seconds.clamp(0, MAX_LEASE_TTL_SECONDS) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ttls_are_raised_to_the_minimum() {
        let lessor = Lessor::new(3);
        assert_eq!(lessor.effective_ttl(1), 3);
        assert_eq!(lessor.effective_ttl(10), 10);
    }

    #[test]
    fn only_the_primary_expires_leases() {
        let lessor = Lessor::new(1);
        assert!(lessor.take_expired([(1, 0)].into_iter()).is_empty());
        lessor.promote(std::iter::once((1, 0)));
        assert_eq!(lessor.take_expired([(1, 0)].into_iter()), vec![1]);
        // Not proposed twice in a row.
        assert!(lessor.take_expired([(1, 0)].into_iter()).is_empty());
        lessor.demote();
        assert!(lessor.take_expired([(1, 0)].into_iter()).is_empty());
    }

    #[test]
    fn a_renewed_lease_does_not_expire() {
        let lessor = Lessor::new(1);
        lessor.promote(std::iter::once((7, 60)));
        assert!(lessor.renew(7, 60));
        assert!(lessor.take_expired([(7, 60)].into_iter()).is_empty());
        assert!(lessor.remaining_seconds(7, 60) > 58);
    }

    #[test]
    fn a_lease_whose_revocation_is_proposed_is_not_renewed() {
        let lessor = Lessor::new(1);
        lessor.promote([(1, 0), (2, 60)].into_iter());
        assert_eq!(lessor.take_expired([(1, 0), (2, 60)].into_iter()), vec![1]);
        // A keepalive that comes after the expiry was seen does not bring it back.
        assert!(!lessor.renew(1, 60));
        assert!(lessor.renew(2, 60));
        // Revoked (gone from the leases), the id is forgotten.
        assert!(lessor.take_expired([(2, 60)].into_iter()).is_empty());
        assert!(lessor.renew(1, 60), "a lease of that id granted again is renewed");
        // A new leader starts every lease afresh.
        assert_eq!(lessor.take_expired([(1, 0)].into_iter()), Vec::<i64>::new());
        lessor.demote();
        lessor.promote(std::iter::once((1, 60)));
        assert!(lessor.renew(1, 60));
    }
}
