//! Leases: a key lives exactly as long as its lease.
//!
//! - (a) while its lease was provably alive (see `lease_life`), its key is never seen
//!   absent: not by a read, and not as a delete event in a watch session (placed in
//!   time through the revision clock);
//! - (b) after an `ok` revoke, a read invoked once it completed does not find the key,
//!   no keepalive invoked after it renews the lease, and every watch session that
//!   watched the key and covered the revoke's revision delivered its delete;
//! - (c) a keepalive does not answer "not found" (ttl 0) while the lease was provably
//!   alive.
//!
//! A key granted more than once (or also by a grant of unknown outcome, whose lease is
//! unknown) is left alone: its absence could be another lease's doing. Lease reads
//! are taken to be linearizable (the workload reads with the default, linearizable).
//! A watch session is taken to watch a key only if it delivered some event for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use super::lease_life::{LeaseLife, seconds};
use super::revision_clock::RevisionClock;
use super::watch_coverage::Coverage;
use super::{CheckResult, Findings, describe};
use crate::history::{Completed, Kind, Op, WatchEvent, WatchSession};

pub const NAME: &str = "lease";

/// Checks the lease operations of `history` and the lease keys' watch events.
pub fn check(history: &[Completed], sessions: &[WatchSession]) -> CheckResult {
    let started = Instant::now();
    let mut findings = Findings::default();
    let lives = LeaseLife::all(history);
    let owners = key_owners(history, &lives);
    let coverage: Vec<Coverage> = sessions.iter().map(|s| Coverage::new(s, "")).collect();
    let mut ops_checked = 0;

    for (position, c) in history.iter().enumerate().filter(|(_, c)| c.kind == Kind::Ok) {
        let (Some(complete_ns), lease) = (c.complete_ns, lease_of(&c.op)) else {
            continue;
        };
        let Some(life) = lease.and_then(|l| lives.get(&l)) else {
            continue;
        };
        ops_checked += 1;
        match &c.op {
            Op::LeaseRead {
                lease,
                key,
                present: Some(false),
            } if owners.get(key.as_str()) == Some(lease)
                && life.key_certainly_attached(history, c.invoke_ns, complete_ns) =>
            {
                let (why, mut ops) = life.explain(history);
                ops.push(position);
                let description = format!("{} while {why}", describe(c));
                flag(&mut findings, history, "lease-key-lost", ops, description);
            }
            Op::LeaseKeepAlive { ttl_s: Some(ttl), .. }
                if *ttl <= 0 && life.certainly_alive(c.invoke_ns, complete_ns) =>
            {
                let (why, mut ops) = life.explain(history);
                ops.push(position);
                let description = format!("{} while {why}", describe(c));
                flag(&mut findings, history, "lease-lost-while-alive", ops, description);
            }
            Op::LeaseRevoke { lease } => {
                check_after_revoke(history, position, *lease, life, &owners, &coverage, &mut findings);
            }
            _ => {}
        }
    }
    check_delete_events(history, &lives, &owners, &coverage, &mut findings);
    findings.finish(NAME, ops_checked, started)
}

fn lease_of(op: &Op) -> Option<i64> {
    match op {
        Op::LeaseGrant { lease, .. }
        | Op::LeaseKeepAlive { lease, .. }
        | Op::LeaseRevoke { lease }
        | Op::LeaseRead { lease, .. } => Some(*lease),
        _ => None,
    }
}

/// The lease each key belongs to, for keys exactly one grant may have attached.
fn key_owners<'a>(history: &'a [Completed], lives: &BTreeMap<i64, LeaseLife>) -> HashMap<&'a str, i64> {
    let mut grants: HashMap<&str, Vec<i64>> = HashMap::new();
    for c in history.iter().filter(|c| c.kind != Kind::Fail) {
        if let Op::LeaseGrant { lease, key, .. } = &c.op {
            // An unknown grant has lease 0 (unknown): it may have attached the key too.
            grants
                .entry(key.as_str())
                .or_default()
                .push(if c.kind == Kind::Ok { *lease } else { 0 });
        }
    }
    grants
        .into_iter()
        .filter(|(_, leases)| leases.len() == 1 && leases[0] != 0)
        .filter(|(_, leases)| lives.get(&leases[0]).is_some_and(|l| !l.ambiguous))
        .map(|(key, leases)| (key, leases[0]))
        .collect()
}

fn flag(findings: &mut Findings, history: &[Completed], kind: &str, positions: Vec<usize>, description: String) {
    let mut ops: Vec<usize> = positions.iter().map(|&p| history[p].index).collect();
    ops.sort_unstable();
    ops.dedup();
    findings.flag(kind, ops, description);
}

fn check_after_revoke(
    history: &[Completed],
    position: usize,
    lease: i64,
    life: &LeaseLife,
    owners: &HashMap<&str, i64>,
    coverage: &[Coverage],
    findings: &mut Findings,
) {
    let revoke = &history[position];
    let Some(revoked_ns) = revoke.complete_ns else { return };
    let key = life.key.as_deref().filter(|k| owners.get(k) == Some(&lease));
    for (p, c) in history
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == Kind::Ok && c.invoke_ns > revoked_ns)
    {
        let resurrected = match &c.op {
            Op::LeaseRead {
                key: k,
                present: Some(true),
                ..
            } => Some(k.as_str()) == key,
            Op::LeaseKeepAlive {
                lease: l,
                ttl_s: Some(ttl),
            } => *l == lease && *ttl > 0,
            _ => false,
        };
        if resurrected {
            flag(
                findings,
                history,
                "lease-alive-after-revoke",
                vec![position, p],
                format!("{} was invoked after {} completed", describe(c), describe(revoke)),
            );
        }
    }
    let (Some(key), Some(revision)) = (key, revoke.revision.filter(|&r| r > 0)) else {
        return;
    };
    for cov in coverage.iter().filter(|cov| cov.covers(revision)) {
        let events: Vec<&WatchEvent> = cov
            .events
            .values()
            .flatten()
            .filter(|e| e.key == key)
            .copied()
            .collect();
        let watched = !events.is_empty();
        let deleted = events.iter().any(|e| e.is_delete && e.mod_revision <= revision);
        if watched && !deleted {
            flag(
                findings,
                history,
                "lease-delete-not-delivered",
                vec![position],
                format!(
                    "{} covered revision {revision} of {} and delivered events for {key:?}, but not its delete",
                    cov.label(),
                    describe(revoke)
                ),
            );
        }
    }
}

/// A delete of a leased key, committed while its lease was provably alive.
fn check_delete_events(
    history: &[Completed],
    lives: &BTreeMap<i64, LeaseLife>,
    owners: &HashMap<&str, i64>,
    coverage: &[Coverage],
    findings: &mut Findings,
) {
    let clock = RevisionClock::new(history);
    let mut judged: BTreeSet<(&str, i64)> = BTreeSet::new();
    for cov in coverage {
        for e in cov.events.values().flatten().filter(|e| e.is_delete) {
            let Some(lease) = owners.get(e.key.as_str()) else {
                continue;
            };
            if !judged.insert((&e.key, e.mod_revision)) {
                continue;
            }
            let Some((after, by)) = clock.committed_between(e.mod_revision) else {
                continue;
            };
            let life = &lives[lease];
            if life.key_certainly_attached(history, after, by) {
                let (why, ops) = life.explain(history);
                flag(
                    findings,
                    history,
                    "lease-key-deleted-while-alive",
                    ops,
                    format!(
                        "{} delivered the delete of {:?} at revision {}, committed between {} and {}, while {why}",
                        cov.label(),
                        e.key,
                        e.mod_revision,
                        seconds(after),
                        seconds(by)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::fixture::{History, S, delete, grant, keepalive, lease_read, put, read, revoke, session, write};

    fn kinds(r: &CheckResult) -> Vec<&str> {
        r.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    /// Lease 7 on "l/a": granted at 0 (ttl 3 s), renewed at 2 s and 4 s: alive until 7 s.
    fn kept_alive() -> History {
        let mut h = History::new();
        h.ok(1, grant(7, 3, "l/a"), 0, S / 10, Some(2));
        h.ok(1, keepalive(7, Some(3)), 2 * S, 2 * S + 10, Some(2));
        h.ok(1, keepalive(7, Some(3)), 4 * S, 4 * S + 10, Some(2));
        h
    }

    #[test]
    fn a_lease_kept_alive_keeps_its_key() {
        let mut h = kept_alive();
        h.ok(1, lease_read(7, "l/a", Some(true)), 3 * S, 3 * S + 10, Some(2));
        h.ok(1, lease_read(7, "l/a", Some(false)), 8 * S, 8 * S + 10, Some(3));
        let r = check(&h.ops, &[]);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    }

    #[test]
    fn a_key_read_absent_while_its_lease_was_alive_is_flagged() {
        let mut h = kept_alive();
        let lost = h.ok(2, lease_read(7, "l/a", Some(false)), 5 * S, 5 * S + 10, Some(3));
        let r = check(&h.ops, &[]);
        assert_eq!(kinds(&r), vec!["lease-key-lost"]);
        assert!(r.anomalies[0].ops.contains(&lost), "{r:?}");
        // Near the proven end (7 s) it is no longer certain.
        let mut h = kept_alive();
        h.ok(2, lease_read(7, "l/a", Some(false)), 7 * S - 5, 7 * S + 10, Some(3));
        assert_eq!(check(&h.ops, &[]).verdict, Verdict::Valid);
    }

    #[test]
    fn a_key_read_absent_after_a_revoke_was_invoked_is_fine() {
        let mut h = kept_alive();
        h.info(2, revoke(7), 3 * S);
        h.ok(3, lease_read(7, "l/a", Some(false)), 3 * S + 1, 3 * S + 10, Some(3));
        assert_eq!(check(&h.ops, &[]).verdict, Verdict::Valid);
    }

    #[test]
    fn a_keepalive_answering_not_found_while_alive_is_flagged() {
        let mut h = kept_alive();
        h.ok(2, keepalive(7, Some(0)), 5 * S, 5 * S + 10, None);
        assert_eq!(kinds(&check(&h.ops, &[])), vec!["lease-lost-while-alive"]);
    }

    #[test]
    fn after_a_revoke_the_key_is_gone_and_the_lease_stays_dead() {
        let mut h = kept_alive();
        let r_ = h.ok(2, revoke(7), 5 * S, 5 * S + 10, Some(3));
        h.ok(2, lease_read(7, "l/a", Some(false)), 5 * S + 20, 5 * S + 30, Some(3));
        assert_eq!(check(&h.ops, &[]).verdict, Verdict::Valid);
        let seen = h.ok(2, lease_read(7, "l/a", Some(true)), 5 * S + 40, 5 * S + 50, Some(3));
        let renewed = h.ok(2, keepalive(7, Some(3)), 5 * S + 60, 5 * S + 70, None);
        let r = check(&h.ops, &[]);
        assert_eq!(kinds(&r), vec!["lease-alive-after-revoke", "lease-alive-after-revoke"]);
        assert_eq!(r.anomalies[0].ops, vec![r_, seen]);
        assert_eq!(r.anomalies[1].ops, vec![r_, renewed]);
    }

    #[test]
    fn a_watch_that_saw_the_key_must_see_the_revoke_delete_it() {
        let mut h = kept_alive();
        h.ok(2, revoke(7), 5 * S, 5 * S + 10, Some(3));
        let with_delete = session(
            1,
            1,
            vec![vec![put("l/a", "x", 2, 2, 1, None)], vec![delete("l/a", 3, Some("x"))]],
        );
        let mut without = session(2, 1, vec![vec![put("l/a", "x", 2, 2, 1, None)]]);
        without.progress_revision = 3;
        let unrelated = session(
            3,
            1,
            vec![
                vec![put("r/z", "x", 2, 2, 1, None)],
                vec![put("r/z", "y", 3, 2, 2, Some("x"))],
            ],
        );
        let r = check(&h.ops, &[with_delete, without, unrelated]);
        assert_eq!(kinds(&r), vec!["lease-delete-not-delivered"]);
        assert!(r.anomalies[0].description.contains("watch session 2"), "{r:?}");
    }

    #[test]
    fn a_lease_key_deleted_while_its_lease_was_kept_alive_is_flagged() {
        let mut h = kept_alive();
        // Register traffic places revision 3 in time: committed within 3 s..3.1 s.
        h.ok(5, write("r/x", "1"), 3 * S - 50, 3 * S - 40, Some(2));
        h.ok(5, read("r/x", Some("1")), 3 * S, 3 * S + 100, Some(3));
        let s = session(
            1,
            1,
            vec![vec![put("l/a", "x", 2, 2, 1, None)], vec![delete("l/a", 3, Some("x"))]],
        );
        let r = check(&h.ops, std::slice::from_ref(&s));
        assert_eq!(kinds(&r), vec!["lease-key-deleted-while-alive"]);
        // The same delete placed after the lease's proven life is fine.
        let mut h = kept_alive();
        h.ok(5, write("r/x", "1"), 8 * S - 50, 8 * S - 40, Some(2));
        h.ok(5, read("r/x", Some("1")), 8 * S, 8 * S + 100, Some(3));
        assert_eq!(check(&h.ops, &[s]).verdict, Verdict::Valid);
    }

    #[test]
    fn a_key_granted_twice_is_left_alone() {
        let mut h = kept_alive();
        h.info(3, grant(0, 3, "l/a"), S);
        h.ok(2, lease_read(7, "l/a", Some(false)), 5 * S, 5 * S + 10, Some(3));
        assert_eq!(check(&h.ops, &[]).verdict, Verdict::Valid);
    }
}
