//! A container run's health as its probes found it, and the pure transitions on it,
//! as the kubelet's probe workers and results manager have them:
//!
//! ```text
//!  running ─► startup probe (if any) ── successThreshold successes ──► started
//!                 │ failureThreshold failures                            │
//!                 ▼                                                      ▼
//!              killed, restarted       liveness (initially success) and readiness
//!                                      (initially failure) probes run; liveness's
//!                                      failureThreshold failures: killed, restarted;
//!                                      readiness decides `ready`
//! ```
//!
//! A result counts towards a threshold only while the same result repeats: a probe
//! flips after `successThreshold` successes in a row, or `failureThreshold` failures in
//! a row. The health belongs to one run (container id); a result of another run resets
//! it, so a restarted container starts over: not started, not ready.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::ProbeKind;
use crate::agent::pods::memory::Now;
use berth_api::objects::Container;
use berth_api::probes::Timing;

/// One probe's results so far, for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Track {
    /// The probe's verdict once a threshold was reached; None: the initial one.
    pub(crate) verdict: Option<bool>,
    /// The latest result, and how many times in a row it came.
    last: Option<bool>,
    run: u32,
}

impl Track {
    /// Counts one result; the verdict, if this result settled one.
    fn record(&mut self, success: bool, timing: &Timing) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            timing.success_threshold
        } else {
            timing.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        self.verdict = Some(success);
        Some(success)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Health {
    /// The run (container id) these results are of.
    id: Option<String>,
    pub(crate) startup: Track,
    pub(crate) liveness: Track,
    pub(crate) readiness: Track,
    /// Set once the container is being killed for failing this probe: nothing more is
    /// recorded for this run, and it is killed once.
    pub(crate) killed_for: Option<ProbeKind>,
}

/// What a recorded result calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing changes, or only the container's readiness or startedness.
    None,
    /// The container failed its liveness or startup probe: kill it (its restart
    /// follows the restart policy).
    Kill(ProbeKind),
}

impl Health {
    /// This run's health: a fresh one when the last results were another run's.
    fn of_run(&mut self, id: &str) -> &mut Health {
        if self.id.as_deref() != Some(id) {
            *self = Health {
                id: Some(id.to_string()),
                ..Default::default()
            };
        }
        self
    }

    /// The health of run `id` as recorded; a fresh one for a run without results.
    fn view(&self, id: &str) -> Health {
        if self.id.as_deref() == Some(id) {
            self.clone()
        } else {
            Health::default()
        }
    }

    /// Counts a result of `container`'s `kind` probe for its run `id`.
    pub(crate) fn record(&mut self, container: &Container, id: &str, kind: ProbeKind, success: bool) -> Verdict {
        let Some(probe) = kind.of(container) else {
            return Verdict::None;
        };
        let timing = Timing::of(probe);
        let health = self.of_run(id);
        if health.killed_for.is_some() {
            return Verdict::None;
        }
        let track = match kind {
            ProbeKind::Startup => &mut health.startup,
            ProbeKind::Liveness => &mut health.liveness,
            ProbeKind::Readiness => &mut health.readiness,
        };
        match (kind, track.record(success, &timing)) {
            (ProbeKind::Startup | ProbeKind::Liveness, Some(false)) => Verdict::Kill(kind),
            _ => Verdict::None,
        }
    }

    /// Whether run `id` is being killed for failing a probe.
    pub(crate) fn is_killed(&self, id: &str) -> bool {
        self.view(id).killed_for.is_some()
    }

    /// The container is being killed for failing `kind`.
    pub(crate) fn killing(&mut self, id: &str, kind: ProbeKind) {
        self.of_run(id).killed_for = Some(kind);
    }

    /// Whether run `id` of `container` has started: it has no startup probe, or the
    /// probe succeeded.
    pub(crate) fn is_started(&self, container: &Container, id: &str) -> bool {
        container.startup_probe.is_none() || self.view(id).startup.verdict == Some(true)
    }

    /// Whether run `id` of `container` is ready: started, and without a readiness
    /// probe or with one that succeeded.
    pub(crate) fn is_ready(&self, container: &Container, id: &str) -> bool {
        self.is_started(container, id)
            && (container.readiness_probe.is_none() || self.view(id).readiness.verdict == Some(true))
    }

    /// The probes of run `id` that should be running now: the startup probe until it
    /// succeeds, then the liveness and readiness probes; none once it is being killed.
    pub(crate) fn wanted(&self, container: &Container, id: &str) -> Vec<ProbeKind> {
        if self.view(id).killed_for.is_some() {
            return Vec::new();
        }
        let candidates = if self.is_started(container, id) {
            [ProbeKind::Liveness, ProbeKind::Readiness].as_slice()
        } else {
            [ProbeKind::Startup].as_slice()
        };
        candidates
            .iter()
            .copied()
            .filter(|kind| kind.of(container).is_some())
            .collect()
    }
}

/// When a probe of a run that started at `started_at` (wall clock) first runs:
/// `initialDelaySeconds` after the start, or now if that has passed (a probe that
/// begins only once the startup probe succeeded, or after an agent restart).
pub(crate) fn first_run(now: Now, started_at: SystemTime, initial_delay: Duration) -> Instant {
    let ran = now.wall.duration_since(started_at).unwrap_or_default();
    now.instant + initial_delay.saturating_sub(ran)
}
