//! The idle keep-alive connections of an [`HttpClient`](super::HttpClient), by base:
//! a connection whose whole response was read goes back here, and the next request
//! to that base takes the most recently used one. Idle ones are dropped after
//! [`IDLE_FOR`] (well within the API server's idle timeout, so the server seldom
//! closes one under a request), and at most [`MAX_IDLE`] are kept.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;

/// How long a connection stays idle before it is closed.
pub(super) const IDLE_FOR: Duration = Duration::from_secs(30);
/// How many idle connections a client keeps, across its bases.
pub(super) const MAX_IDLE: usize = 32;

struct Idle {
    base: usize,
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<Idle>>,
}

impl Pool {
    /// A kept connection to base `base` that is still open, if any.
    pub(super) fn take(&self, base: usize) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().expect("pool lock");
        idle.retain(|c| c.since.elapsed() < IDLE_FOR && !c.sender.is_closed());
        let at = idle.iter().rposition(|c| c.base == base && c.sender.is_ready())?;
        Some(idle.remove(at).sender)
    }

    /// Keeps `sender` (of base `base`) for the next request, unless it is closed.
    pub(super) fn put(&self, base: usize, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            base,
            sender,
            since: Instant::now(),
        });
    }

    #[cfg(test)]
    pub(super) fn all_closed(&self) -> bool {
        self.idle
            .lock()
            .expect("pool lock")
            .iter()
            .all(|c| c.sender.is_closed())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }
}
