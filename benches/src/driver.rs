//! Runs one operation per client against a shared [`Budget`] and times each request.
//!
//! Every client is a tokio task that loops: take a ticket, wait for its slot when a rate
//! is set, run the operation under the request timeout, record the duration (successes)
//! or the error. A request that times out or fails is counted, not retried: retrying
//! is the workload's business (txn retries its conflicts itself).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::budget::Budget;
use crate::progress::Progress;

/// One client's request. The implementor keeps its connection and any counters of its
/// own (conflicts, retries), which the workload reads after [`drive`] hands it back.
pub trait Operation: Send + 'static {
    fn run(&mut self, ticket: u64) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Clone, Copy, Debug)]
pub struct DriveOptions {
    pub request_timeout: Duration,
    /// Requests per second over all clients; 0 means unpaced.
    pub rate: f64,
}

/// What the clients of one workload did, merged.
#[derive(Debug, Default)]
pub struct Outcome {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    /// Error messages and how often each occurred (the first few distinct ones).
    pub error_counts: BTreeMap<String, u64>,
    pub elapsed: Duration,
}

const DISTINCT_ERRORS_KEPT: usize = 8;

impl Outcome {
    pub fn record_error(&mut self, message: String) {
        self.errors += 1;
        if let Some(count) = self.error_counts.get_mut(&message) {
            *count += 1;
        } else if self.error_counts.len() < DISTINCT_ERRORS_KEPT {
            self.error_counts.insert(message, 1);
        }
    }

    pub fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        for (message, count) in other.error_counts {
            if let Some(total) = self.error_counts.get_mut(&message) {
                *total += count;
            } else if self.error_counts.len() < DISTINCT_ERRORS_KEPT {
                self.error_counts.insert(message, count);
            }
        }
    }
}

/// Runs `operations` (one per client) until the budget is spent; returns them with the
/// merged outcome. `elapsed` runs from the budget's start to the last client's end.
pub async fn drive<O: Operation>(
    label: &str,
    operations: Vec<O>,
    budget: Arc<Budget>,
    options: DriveOptions,
) -> (Vec<O>, Outcome) {
    let _progress = Progress::start(label, budget.clone());
    let tasks: Vec<_> = operations
        .into_iter()
        .map(|operation| tokio::spawn(run_client(operation, budget.clone(), options)))
        .collect();
    let mut operations = Vec::with_capacity(tasks.len());
    let mut outcome = Outcome::default();
    for task in tasks {
        match task.await {
            Ok((operation, client_outcome)) => {
                operations.push(operation);
                outcome.merge(client_outcome);
            }
            Err(error) => outcome.record_error(format!("client task failed: {error}")),
        }
    }
    outcome.elapsed = budget.started_at().elapsed();
    (operations, outcome)
}

async fn run_client<O: Operation>(mut operation: O, budget: Arc<Budget>, options: DriveOptions) -> (O, Outcome) {
    let mut outcome = Outcome::default();
    while let Some(ticket) = budget.next_ticket() {
        if options.rate > 0.0 {
            let slot = budget.started_at() + Duration::from_secs_f64(ticket as f64 / options.rate);
            if slot >= budget.deadline() {
                break;
            }
            tokio::time::sleep_until(slot.into()).await;
        }
        let started_at = Instant::now();
        match tokio::time::timeout(options.request_timeout, operation.run(ticket)).await {
            Ok(Ok(())) => outcome.latencies.push(started_at.elapsed()),
            Ok(Err(error)) => outcome.record_error(format!("{error:#}")),
            Err(_) => outcome.record_error(format!("timed out after {:?}", options.request_timeout)),
        }
        budget.mark_completed();
    }
    (operation, outcome)
}
