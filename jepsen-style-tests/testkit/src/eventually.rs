//! Waiting for a condition that should come true soon: poll it, and give up only when
//! it plainly hangs.
//!
//! The timeout is generous on purpose and the same everywhere: a test that needs
//! something to happen within a given time asserts that itself, on a clock it reads.

use std::time::{Duration, Instant};

/// How long a condition may take before the wait calls it hung.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(60);

/// The first pause between polls; it doubles up to [`MAX_PAUSE`], so a quick
/// condition is seen quickly and a slow one is not polled in a tight loop.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Polls `check` until it gives a value, and returns it; panics with `what` after
/// [`HANG_TIMEOUT`].
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let mut polls = Polls::new(what);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(polls.next_pause()).await;
    }
}

/// [`eventually`] for code without an async runtime: sleeps the thread between polls.
pub fn eventually_blocking<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let mut polls = Polls::new(what);
    loop {
        if let Some(value) = check() {
            return value;
        }
        std::thread::sleep(polls.next_pause());
    }
}

struct Polls<'a> {
    what: &'a str,
    started: Instant,
    pause: Duration,
}

impl<'a> Polls<'a> {
    fn new(what: &'a str) -> Self {
        Self {
            what,
            started: Instant::now(),
            pause: FIRST_PAUSE,
        }
    }

    /// The pause before the next poll; panics once the condition has hung.
    fn next_pause(&mut self) -> Duration {
        let waited = self.started.elapsed();
        assert!(
            waited < HANG_TIMEOUT,
            "timed out after {waited:?} waiting for {}",
            self.what
        );
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        pause
    }
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
    fn pauses_grow_to_a_ceiling_and_a_hung_condition_panics_with_its_name() {
        let mut polls = Polls::new("the sky to fall");
        let pauses: Vec<Duration> = (0..8).map(|_| polls.next_pause()).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(pauses[7], MAX_PAUSE);
        polls.started = Instant::now() - HANG_TIMEOUT;
        let hung = std::panic::catch_unwind(move || polls.next_pause()).unwrap_err();
        let message = hung.downcast_ref::<String>().unwrap();
        assert!(message.contains("waiting for the sky to fall"), "{message}");
    }
}
