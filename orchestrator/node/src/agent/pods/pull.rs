//! A container's image as the supervisor remembers it, and the kubelet's image pull
//! back-off. A pull runs in the background (it can take minutes); the pass that asks
//! for it goes on, and a later pass finds its outcome here.
//!
//! ```text
//!  Wanted ──(plan: Pull)──► Pulling ──ok──► Pulled
//!    ▲                         │
//!    │                         └─err─► Failed (ErrImagePull; reported once)
//!    │                                   │ next pass, back-off not over
//!    │                                   ▼
//!    └──────(back-off over)────── Failed, backing off (ImagePullBackOff)
//! ```
//!
//! The back-off is the kubelet's: 10 s after the first failure, doubling up to
//! 300 s, over again after a success.

use std::time::Duration;

use tokio::time::Instant;

use super::memory::{MAX_BACKOFF, Now};
use crate::image::{PullError, PulledImage};

/// The first image pull back-off, as the kubelet's.
pub(crate) const PULL_BACKOFF_BASE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum ImageState {
    /// To be pulled: never asked for, or asked again once a back-off has passed.
    #[default]
    Wanted,
    /// A pull is under way in the background.
    Pulling,
    Pulled(Box<PulledImage>),
    /// The last pull failed; pulled again from `retry_at`.
    Failed {
        error: PullError,
        retry_at: Instant,
        /// The failure has been reported as such (ErrImagePull): the status now says
        /// ImagePullBackOff until the next pull.
        backing_off: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ImageMemory {
    pub(crate) state: ImageState,
    /// The wait after the next failure; zero until the first failure.
    pub(crate) backoff: Duration,
    /// Failed pulls since the last success.
    pub(crate) failures: u32,
}

impl ImageMemory {
    pub(crate) fn pulled(&self) -> Option<&PulledImage> {
        match &self.state {
            ImageState::Pulled(image) => Some(image),
            _ => None,
        }
    }

    /// A pull has been handed to the background.
    pub(crate) fn pull_started(&mut self) {
        self.state = ImageState::Pulling;
    }

    /// A pull ended: the image is ready, or the next pull waits out the back-off.
    pub(crate) fn pull_finished(&mut self, result: Result<PulledImage, PullError>, now: Now) {
        match result {
            Ok(image) => {
                self.state = ImageState::Pulled(Box::new(image));
                self.backoff = Duration::ZERO;
                self.failures = 0;
            }
            Err(error) => {
                self.backoff = if self.backoff.is_zero() {
                    PULL_BACKOFF_BASE
                } else {
                    (self.backoff * 2).min(MAX_BACKOFF)
                };
                self.failures += 1;
                self.state = ImageState::Failed {
                    error,
                    retry_at: now.instant + self.backoff,
                    backing_off: false,
                };
            }
        }
    }

    /// The pass's step: `true` when the image should be pulled now (the state is then
    /// Pulling), and whether the failure just turned into a back-off (for the
    /// kubelet's BackOff event).
    pub(crate) fn step(&mut self, now: Now) -> (bool, bool) {
        match &mut self.state {
            ImageState::Wanted => {
                self.pull_started();
                (true, false)
            }
            ImageState::Failed { retry_at, .. } if *retry_at <= now.instant => {
                self.pull_started();
                (true, false)
            }
            ImageState::Failed { backing_off, error, .. } if !*backing_off => {
                *backing_off = true;
                // Only a registry's failure backs off under that name; the others
                // keep their own reason (the kubelet's ErrImageNeverPull,
                // InvalidImageName).
                (false, matches!(error, PullError::Pull { .. }))
            }
            _ => (false, false),
        }
    }

    /// The container's waiting reason and message while its image is not ready;
    /// None once it is.
    pub(crate) fn waiting(&self, image: &str) -> Option<(String, String)> {
        // As the kubelet since 1.30: the back-off names the error it waits out.
        let back_off = |error: Option<&PullError>| {
            let message = match error {
                Some(error) => format!("Back-off pulling image {image:?}: {}: {error}", error.reason()),
                None => format!("Back-off pulling image {image:?}"),
            };
            ("ImagePullBackOff".to_string(), message)
        };
        match &self.state {
            ImageState::Pulled(_) => None,
            ImageState::Wanted | ImageState::Pulling if self.failures > 0 => Some(back_off(None)),
            ImageState::Wanted | ImageState::Pulling => Some(("ContainerCreating".into(), String::new())),
            ImageState::Failed {
                error: error @ PullError::Pull { .. },
                backing_off,
                ..
            } => Some(if *backing_off {
                back_off(Some(error))
            } else {
                (error.reason().to_string(), error.to_string())
            }),
            ImageState::Failed { error, .. } => Some((error.reason().to_string(), error.to_string())),
        }
    }
}
