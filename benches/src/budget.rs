//! The request budget that bounds every load loop in count and in time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Hands out request tickets `0, 1, 2, ...` until `total` were handed out or the
/// deadline passed, whichever comes first. Shared by all clients of one workload.
#[derive(Debug)]
pub struct Budget {
    total: u64,
    started_at: Instant,
    deadline: Instant,
    issued: AtomicU64,
    completed: AtomicU64,
}

impl Budget {
    pub fn new(total: u64, duration: Duration) -> Self {
        let started_at = Instant::now();
        Self {
            total,
            started_at,
            deadline: started_at + duration,
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        }
    }

    /// The next ticket, or `None` when the budget is spent or the time is up.
    pub fn next_ticket(&self) -> Option<u64> {
        if self.is_past_deadline() {
            return None;
        }
        let ticket = self.issued.fetch_add(1, Ordering::Relaxed);
        (ticket < self.total).then_some(ticket)
    }

    pub fn is_past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Counts one finished request (successful or not), for the progress indicator.
    pub fn mark_completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_total() {
        let budget = Budget::new(3, Duration::from_secs(60));
        let tickets: Vec<_> = std::iter::from_fn(|| budget.next_ticket()).collect();
        assert_eq!(tickets, vec![0, 1, 2]);
        assert_eq!(budget.next_ticket(), None);
    }

    #[test]
    fn stops_at_deadline() {
        let budget = Budget::new(u64::MAX, Duration::ZERO);
        assert_eq!(budget.next_ticket(), None);
    }
}
