//! Graceful pod deletion, decided as Kubernetes 1.32 decides it: a DELETE of a pod
//! that runs somewhere marks it (`deletionTimestamp` = now + grace,
//! `deletionGracePeriodSeconds` = grace) and leaves the object, so its agent can run
//! the preStop hooks, send SIGTERM, wait, and only then remove it for good. Pure: the
//! API server and the controllers (which write the store directly) apply the same
//! decision to their own form of the pod.
//!
//! ```text
//!  already terminating ─► grace 0 (or a stored 0)           ─► remove now
//!                      ─► a shorter grace                  ─► mark again, sooner
//!                      ─► none, or not shorter              ─► pending: leave it
//!  first delete:  grace = asked ? asked : spec.terminationGracePeriodSeconds (30)
//!                 never scheduled, node gone, Succeeded/Failed ─► 0
//!                 negative ─► 1;  0 ─► remove now;  else mark
//! ```

use std::time::{Duration, SystemTime};

use crate::meta::Time;
use crate::objects::Pod;
use crate::time::{from_system_time, to_system_time};

/// `terminationGracePeriodSeconds` when the pod does not say, as Kubernetes defaults it.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// What a DELETE of a pod does.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    /// Remove the object now.
    Now,
    /// Leave the object, marked: it is removed once its containers stopped.
    Mark { at: Time, grace_seconds: i64 },
    /// It is already terminating with a grace no longer than asked: nothing changes.
    Pending,
}

/// What the decision needs besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// `gracePeriodSeconds` of the DeleteOptions, if given.
    pub grace_seconds: Option<i64>,
    /// The pod's node has no Node object: nobody will stop its containers.
    pub node_gone: bool,
    pub now: SystemTime,
}

/// Decides what a DELETE of `pod` does.
pub fn decide(pod: &Pod, request: Request) -> Deletion {
    let meta = &pod.metadata;
    if let Some(marked_at) = &meta.deletion_timestamp {
        let current = match meta.deletion_grace_period_seconds {
            // A mark whose removal did not happen (or a mark without a grace): finish.
            None | Some(0) => return Deletion::Now,
            Some(current) => current,
        };
        return match request.grace_seconds {
            Some(0) => Deletion::Now,
            Some(asked) if asked < current => {
                let started = to_system_time(marked_at)
                    .checked_sub(seconds(current))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                Deletion::Mark {
                    at: from_system_time(started + seconds(asked.max(0))),
                    grace_seconds: asked.max(0),
                }
            }
            _ => Deletion::Pending,
        };
    }
    let mut grace = request.grace_seconds.unwrap_or_else(|| spec_grace_seconds(pod));
    let unscheduled = pod.spec.node_name.as_deref().is_none_or(str::is_empty);
    let finished = matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"));
    if unscheduled || request.node_gone || finished {
        grace = 0;
    }
    if grace < 0 {
        grace = 1;
    }
    if grace == 0 {
        return Deletion::Now;
    }
    Deletion::Mark {
        at: from_system_time(request.now + seconds(grace)),
        grace_seconds: grace,
    }
}

/// The pod's own grace: `terminationGracePeriodSeconds`, else 30.
pub fn spec_grace_seconds(pod: &Pod) -> i64 {
    pod.spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS)
}

/// How long the agent gives a terminating pod's containers: the grace the deletion
/// set, else (a pod that is simply gone) the pod's own.
pub fn grace_of(pod: &Pod) -> Duration {
    seconds(
        pod.metadata
            .deletion_grace_period_seconds
            .unwrap_or_else(|| spec_grace_seconds(pod))
            .max(0),
    )
}

fn seconds(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn running(grace: Option<i64>) -> Pod {
        let mut pod = Pod::default();
        pod.spec.node_name = Some("n1".into());
        pod.spec.termination_grace_period_seconds = grace;
        pod.status.phase = Some("Running".into());
        pod
    }

    fn at(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    fn request(grace_seconds: Option<i64>) -> Request {
        Request {
            grace_seconds,
            node_gone: false,
            now: at("2026-01-01T00:00:00Z"),
        }
    }

    fn mark(at_time: &str, grace_seconds: i64) -> Deletion {
        Deletion::Mark {
            at: from_system_time(at(at_time)),
            grace_seconds,
        }
    }

    #[test]
    fn a_running_pod_is_marked_with_the_asked_grace_else_its_own_else_thirty_seconds() {
        assert_eq!(decide(&running(None), request(None)), mark("2026-01-01T00:00:30Z", 30));
        assert_eq!(
            decide(&running(Some(5)), request(None)),
            mark("2026-01-01T00:00:05Z", 5)
        );
        assert_eq!(
            decide(&running(Some(5)), request(Some(60))),
            mark("2026-01-01T00:01:00Z", 60)
        );
        assert_eq!(
            decide(&running(Some(5)), request(Some(-3))),
            mark("2026-01-01T00:00:01Z", 1),
            "a negative grace is one second, as in Kubernetes"
        );
    }

    #[test]
    fn grace_zero_an_unscheduled_pod_a_gone_node_and_a_finished_pod_go_at_once() {
        assert_eq!(decide(&running(Some(5)), request(Some(0))), Deletion::Now);
        assert_eq!(decide(&running(Some(0)), request(None)), Deletion::Now);
        let mut unscheduled = running(None);
        unscheduled.spec.node_name = None;
        assert_eq!(decide(&unscheduled, request(None)), Deletion::Now);
        let gone = Request {
            node_gone: true,
            ..request(None)
        };
        assert_eq!(decide(&running(None), gone), Deletion::Now);
        for phase in ["Succeeded", "Failed"] {
            let mut finished = running(None);
            finished.status.phase = Some(phase.into());
            assert_eq!(decide(&finished, request(Some(30))), Deletion::Now, "{phase}");
        }
    }

    #[test]
    fn a_second_delete_may_only_shorten_the_grace() {
        let mut marked = running(None);
        marked.metadata.deletion_timestamp = Some(from_system_time(at("2026-01-01T00:00:30Z")));
        marked.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(decide(&marked, request(None)), Deletion::Pending);
        assert_eq!(decide(&marked, request(Some(30))), Deletion::Pending);
        assert_eq!(decide(&marked, request(Some(90))), Deletion::Pending);
        assert_eq!(
            decide(&marked, request(Some(10))),
            mark("2026-01-01T00:00:10Z", 10),
            "counted from when the first delete started the grace"
        );
        assert_eq!(decide(&marked, request(Some(0))), Deletion::Now);
        marked.metadata.deletion_grace_period_seconds = Some(0);
        assert_eq!(decide(&marked, request(None)), Deletion::Now, "a stored zero finishes");
    }

    #[test]
    fn the_agent_uses_the_deletions_grace_else_the_pods() {
        let mut pod = running(Some(7));
        assert_eq!(grace_of(&pod), Duration::from_secs(7));
        pod.metadata.deletion_grace_period_seconds = Some(2);
        assert_eq!(grace_of(&pod), Duration::from_secs(2));
        assert_eq!(grace_of(&running(None)), Duration::from_secs(30));
    }
}
