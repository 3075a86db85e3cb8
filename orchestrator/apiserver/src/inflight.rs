//! How many requests run at once, as kube-apiserver's `--max-requests-inflight` and
//! `--max-mutating-requests-inflight` bound them: a request that finds every slot of
//! its class taken is answered at once with 429 `TooManyRequests` and `Retry-After:
//! 1`, rather than queued. Long-running requests (watches, logs) hold no slot and
//! have no request timeout, as in Kubernetes; health probes hold no slot either, so
//! that a busy server does not read as a dead one.

use std::sync::Arc;

use axum::http::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::route::{Route, Subresource};
use super::settings::Settings;
use super::status::ApiError;

/// What a request is, for the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A watch or a log: no slot, no request timeout.
    LongRunning,
    /// `/healthz`, `/livez`, `/readyz`: no slot.
    Probe,
    ReadOnly,
    /// POST, PUT, PATCH, DELETE.
    Mutating,
}

impl Class {
    pub fn of(method: &Method, route: &Route, is_watch: bool) -> Class {
        let is_log = matches!(
            route,
            Route::Object {
                subresource: Some(
                    Subresource::Log | Subresource::Exec | Subresource::Attach | Subresource::PortForward
                ),
                ..
            }
        );
        match route {
            _ if is_log || (is_watch && *method == Method::GET) => Class::LongRunning,
            Route::Healthz | Route::Readyz => Class::Probe,
            _ if matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE) => Class::Mutating,
            _ => Class::ReadOnly,
        }
    }

    pub fn is_long_running(self) -> bool {
        self == Class::LongRunning
    }
}

/// The slots of each class; `None` where the setting is 0 (no limit).
#[derive(Clone)]
pub struct InFlight {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
}

fn slots(n: usize) -> Option<Arc<Semaphore>> {
    (n > 0).then(|| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))))
}

impl InFlight {
    pub fn new(settings: &Settings) -> InFlight {
        InFlight {
            read_only: slots(settings.max_requests_inflight),
            mutating: slots(settings.max_mutating_requests_inflight),
        }
    }

    /// A slot for a request of `class` (held until the handler returns), `None` for
    /// one that needs none, or 429 when all are taken.
    pub fn enter(&self, class: Class) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let slots = match class {
            Class::LongRunning | Class::Probe => return Ok(None),
            Class::ReadOnly => &self.read_only,
            Class::Mutating => &self.mutating,
        };
        match slots {
            None => Ok(None),
            Some(slots) => slots
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ApiError::too_many_requests()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::kind;

    #[test]
    fn classes_follow_kubernetes() {
        let pods = Route::Collection {
            kind: kind("pods"),
            namespace: None,
        };
        let log = Route::Object {
            kind: kind("pods"),
            namespace: Some("default".into()),
            name: "p".into(),
            subresource: Some(Subresource::Log),
        };
        assert_eq!(Class::of(&Method::GET, &pods, true), Class::LongRunning);
        assert_eq!(Class::of(&Method::GET, &log, false), Class::LongRunning);
        assert_eq!(Class::of(&Method::GET, &pods, false), Class::ReadOnly);
        assert_eq!(Class::of(&Method::POST, &pods, false), Class::Mutating);
        assert_eq!(Class::of(&Method::DELETE, &pods, true), Class::Mutating);
        assert_eq!(Class::of(&Method::GET, &Route::Readyz, false), Class::Probe);
        assert_eq!(Class::of(&Method::GET, &Route::Version, false), Class::ReadOnly);
    }

    #[test]
    fn slots_run_out_per_class_and_come_back() {
        let settings = Settings {
            max_requests_inflight: 1,
            max_mutating_requests_inflight: 0,
            ..Settings::default()
        };
        let inflight = InFlight::new(&settings);
        let held = inflight.enter(Class::ReadOnly).unwrap();
        assert!(held.is_some());
        let refused = inflight.enter(Class::ReadOnly).unwrap_err();
        assert_eq!((refused.code, refused.reason), (429, "TooManyRequests"));
        assert_eq!(refused.retry_after_seconds(), Some(1));
        assert!(inflight.enter(Class::LongRunning).unwrap().is_none(), "exempt");
        assert!(inflight.enter(Class::Mutating).unwrap().is_none(), "0: no limit");
        drop(held);
        assert!(inflight.enter(Class::ReadOnly).unwrap().is_some());
    }
}
