//! Waiting for a condition that should come true soon: poll it, and give up only when
//! it plainly hangs.
//!
//! The timeout is generous on purpose and the same everywhere: a test that needs
//! something to happen within a given time asserts that itself, on a clock it reads.

use std::time::{Duration, Instant};

/// How long a condition may take before the wait calls it hung.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause between polls. Not shorter: a check that retries a request (a member
/// promotion, say) should not race the previous attempt's effects.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` until it gives a value, and returns it; panics with `what` after
/// [`HANG_TIMEOUT`].
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert_not_hung(what, started);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`eventually`] for code without an async runtime: sleeps the thread between polls.
pub fn eventually_blocking<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert_not_hung(what, started);
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn assert_not_hung(what: &str, started: Instant) {
    let waited = started.elapsed();
    assert!(waited < HANG_TIMEOUT, "timed out after {waited:?} waiting for {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_the_check_gives() {
        let mut polls = 0;
        let value = eventually("the third poll", async || {
            polls += 1;
            (polls == 3).then_some(polls * 10)
        })
        .await;
        assert_eq!(value, 30);
    }

    #[test]
    fn the_blocking_variant_returns_the_first_value_too() {
        let mut polls = 0;
        let value = eventually_blocking("the second poll", || {
            polls += 1;
            (polls == 2).then_some("done")
        });
        assert_eq!(value, "done");
    }

    #[test]
    fn a_hung_condition_panics_with_its_name() {
        assert_not_hung("the sky to fall", Instant::now());
        let long_ago = Instant::now() - HANG_TIMEOUT;
        let hung = std::panic::catch_unwind(|| assert_not_hung("the sky to fall", long_ago)).unwrap_err();
        let message = hung.downcast_ref::<String>().unwrap();
        assert!(message.contains("waiting for the sky to fall"), "{message}");
    }
}
