//! The checkers against histories of a simulated correct store (which they must pass,
//! at scale) and the same histories with one known bug injected (which they must
//! flag, naming the operation). Hand-written minimal cases for each anomaly live with
//! each checker; these show the same bugs are found among thousands of valid ops.

use std::time::{Duration, Instant};

use super::simulation::{Config, Registers, appends, registers};
use super::{CheckResult, Verdict, append, linearizable, revisions, watch};
use crate::history::{Completed, Consistency, Kind, Op, WatchSession, pair};

fn generous() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

fn assert_valid(r: &CheckResult) {
    assert_eq!(
        r.verdict,
        Verdict::Valid,
        "{}: {:#?}",
        r.name,
        r.anomalies.iter().take(5).collect::<Vec<_>>()
    );
}

fn assert_flags(r: &CheckResult, kind: &str, op: Option<usize>) {
    assert_eq!(r.verdict, Verdict::Invalid, "{} should have found {kind}", r.name);
    let found = r
        .anomalies
        .iter()
        .find(|a| a.kind == kind && op.is_none_or(|op| a.ops.contains(&op)));
    let Some(found) = found else {
        panic!(
            "{}: no {kind} naming {op:?} in {:#?}",
            r.name,
            r.anomalies.iter().take(5).collect::<Vec<_>>()
        );
    };
    // Shown with --nocapture: what a reader of the report would see.
    eprintln!(
        "[{}] {} anomalies; {}: {} {:?}",
        r.name,
        r.anomalies.len(),
        found.kind,
        found.description,
        found.ops
    );
}

/// A mid-sized history on few keys, so there is plenty of contention.
fn contended(seed: u64) -> Registers {
    registers(Config {
        seed,
        keys: 3,
        ops: 800,
        processes: 8,
        ..Config::default()
    })
}

fn sessions(sim: &Registers) -> Vec<WatchSession> {
    let mid = sim.commits[sim.commits.len() / 2].revision;
    vec![sim.session(1, 1, 1), sim.session(2, 1, 4), sim.session(3, mid, 2)]
}

fn is_ok_write(c: &Completed) -> bool {
    c.kind == Kind::Ok && matches!(c.op, Op::Write { .. })
}

fn is_ok_linearizable_read(c: &Completed) -> bool {
    c.kind == Kind::Ok
        && matches!(
            c.op,
            Op::Read {
                consistency: Consistency::Linearizable,
                ..
            }
        )
}

/// The value an ok write wrote, and the first ok linearizable read of its key invoked
/// after a later ok write of that key completed: the read must not see the value.
fn overwritten_value_and_a_later_read(h: &[Completed]) -> (String, usize) {
    for (i, w) in h.iter().enumerate().filter(|(_, c)| is_ok_write(c)) {
        let Op::Write { key, value } = &w.op else {
            unreachable!()
        };
        let Some(overwrite) = h[i + 1..]
            .iter()
            .find(|c| is_ok_write(c) && c.op.register_key() == Some(key) && c.invoke_ns > w.complete_ns.unwrap())
        else {
            continue;
        };
        let after = overwrite.complete_ns.unwrap();
        if let Some(r) = h
            .iter()
            .position(|c| is_ok_linearizable_read(c) && c.op.register_key() == Some(key) && c.invoke_ns > after)
        {
            return (value.clone(), r);
        }
    }
    panic!("the simulation always has an overwritten write and a read after it");
}

#[test]
fn a_big_random_register_history_is_valid_and_checked_in_time() {
    // 5 keys x 2,000 operations, 10 concurrent clients, with unknown and failed ops.
    let sim = registers(Config {
        seed: 7,
        keys: 5,
        ops: 10_000,
        processes: 10,
        ..Config::default()
    });
    let h = sim.completed();
    assert_eq!(h.len(), 10_000);
    let started = Instant::now();
    let r = linearizable::check(&h, started + Duration::from_secs(60));
    assert_valid(&r);
    assert!(r.ops_checked > 5_000, "{}", r.ops_checked);
    eprintln!("linearizable: {} ops in {:?}", r.ops_checked, started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_valid(&revisions::check(&h));
    assert_valid(&watch::check(&sessions(&sim), &h, "r/"));
}

#[test]
fn one_hot_key_with_ten_clients_is_valid() {
    let sim = registers(Config {
        seed: 11,
        keys: 1,
        ops: 2_000,
        processes: 10,
        info_percent: 5,
        ..Config::default()
    });
    let h = sim.completed();
    assert_valid(&linearizable::check(&h, generous()));
    assert_valid(&revisions::check(&h));
    assert_valid(&watch::check(&sessions(&sim), &h, "r/"));
}

#[test]
fn many_seeds_with_many_unknown_writes_are_valid() {
    for seed in 0..30 {
        let sim = registers(Config {
            seed,
            keys: 2,
            ops: 300,
            processes: 6,
            info_percent: 15,
            fail_percent: 5,
            max_latency_ns: 80,
        });
        let h = sim.completed();
        assert!(h.iter().any(|c| c.kind == Kind::Info), "seed {seed}");
        let r = linearizable::check(&h, generous());
        assert_eq!(r.verdict, Verdict::Valid, "seed {seed}: {:#?}", r.anomalies);
        assert_valid(&revisions::check(&h));
        assert_valid(&watch::check(&sessions(&sim), &h, "r/"));
    }
}

#[test]
fn a_stale_read_is_found() {
    let sim = contended(1);
    let mut h = sim.completed();
    assert_valid(&linearizable::check(&h, generous()));
    let (old, r) = overwritten_value_and_a_later_read(&h);
    let Op::Read { value, .. } = &mut h[r].op else {
        unreachable!()
    };
    *value = Some(old);
    let result = linearizable::check(&h, generous());
    assert_flags(&result, "not-linearizable", Some(h[r].index));
}

#[test]
fn a_lost_write_is_found_by_linearizability_and_by_watch() {
    let sim = contended(2);
    let mut h = sim.completed();
    // An acknowledged write followed by a read that saw it; make the read see what
    // the key held before the write instead, as if the write had been lost.
    let (w, r) = h
        .iter()
        .enumerate()
        .filter(|(_, c)| is_ok_write(c))
        .find_map(|(w, write)| {
            let Op::Write { key, value } = &write.op else {
                unreachable!()
            };
            let r = h.iter().position(|c| {
                is_ok_linearizable_read(c)
                    && c.invoke_ns > write.complete_ns.unwrap()
                    && matches!(&c.op, Op::Read { key: k, value: Some(v), .. } if k == key && v == value)
            })?;
            Some((w, r))
        })
        .expect("some read sees some write");
    let revision = h[w].revision.unwrap();
    let before = sim
        .commits
        .iter()
        .find(|c| c.revision == revision)
        .unwrap()
        .event
        .prev_value
        .clone();
    let Op::Read { value, .. } = &mut h[r].op else {
        unreachable!()
    };
    *value = before;
    assert_flags(
        &linearizable::check(&h, generous()),
        "not-linearizable",
        Some(h[r].index),
    );

    // The watch side: the write's revision is missing from a session that covered it.
    let h = sim.completed();
    let mut s = sessions(&sim);
    for response in &mut s[0].responses {
        response.retain(|e| e.mod_revision != revision);
    }
    s[0].responses.retain(|r| !r.is_empty());
    assert_flags(&watch::check(&s, &h, "r/"), "watch-gap", Some(h[w].index));
}

#[test]
fn watch_duplicates_reordering_and_wrong_prev_kv_are_found() {
    let sim = contended(3);
    let h = sim.completed();
    let base = sessions(&sim);
    assert_valid(&watch::check(&base, &h, "r/"));

    let mut dup = base.clone();
    let again = dup[1].responses[5].clone();
    dup[1].responses.insert(9, again);
    assert_flags(&watch::check(&dup, &h, "r/"), "watch-duplicate", None);

    let mut reordered = base.clone();
    reordered[0].responses.swap(10, 11);
    assert_flags(&watch::check(&reordered, &h, "r/"), "watch-reordered", None);

    let mut wrong = base.clone();
    let e = wrong[2]
        .responses
        .iter_mut()
        .flatten()
        .find(|e| e.prev_value.is_some())
        .unwrap();
    e.prev_value = Some("not-the-previous-value".into());
    assert_flags(&watch::check(&wrong, &h, "r/"), "watch-wrong-prev-kv", None);

    let mut gap = base.clone();
    gap[2].responses.remove(3);
    assert_flags(&watch::check(&gap, &h, "r/"), "watch-gap", None);
}

#[test]
fn a_split_transaction_is_found() {
    let sim = contended(4);
    let h = sim.completed();
    let mut s = sessions(&sim);
    // Session 2 delivers four revisions per response; re-label one event so that two
    // of them share a revision while sitting in one response (one txn, fine), then
    // move one of the pair into the next response (split).
    let response = &mut s[1].responses[2];
    let shared = response[0].mod_revision;
    response[1].mod_revision = shared;
    let moved = response.remove(1);
    s[1].responses[3].insert(0, moved);
    assert_flags(&watch::check(&s, &h, "r/"), "watch-split-revision", None);
}

#[test]
fn two_writes_with_one_revision_are_found() {
    let sim = contended(5);
    let mut h = sim.completed();
    let writes: Vec<usize> = (0..h.len()).filter(|&i| is_ok_write(&h[i])).collect();
    let (a, b) = (writes[10], writes[11]);
    h[b].revision = h[a].revision;
    let r = revisions::check(&h);
    assert!(
        r.anomalies
            .iter()
            .any(|x| x.kind == "shared-revision" && x.ops == vec![h[a].index, h[b].index]),
        "{:#?}",
        r.anomalies
    );
}

#[test]
fn revisions_going_backwards_in_real_time_are_found() {
    let sim = contended(6);
    let mut h = sim.completed();
    assert_valid(&revisions::check(&h));
    let w = h
        .iter()
        .position(|c| is_ok_write(c) && c.revision.unwrap() > 20)
        .unwrap();
    let done = h[w].complete_ns.unwrap();
    let later = h
        .iter()
        .position(|c| is_ok_linearizable_read(c) && c.invoke_ns > done)
        .unwrap();
    h[later].revision = Some(h[w].revision.unwrap() - 5);
    assert_flags(&revisions::check(&h), "revision-order", Some(h[later].index));
}

#[test]
fn random_append_histories_are_valid_and_lost_or_duplicated_appends_are_found() {
    for seed in 0..10 {
        let sim = appends(Config {
            seed,
            keys: 4,
            ops: 600,
            processes: 8,
            info_percent: 10,
            ..Config::default()
        });
        let h = pair(&sim.events);
        let r = append::check(&h, &sim.final_lists);
        assert_eq!(
            r.verdict,
            Verdict::Valid,
            "seed {seed}: {:#?}",
            r.anomalies.iter().take(5).collect::<Vec<_>>()
        );
    }
    let sim = appends(Config {
        seed: 42,
        keys: 4,
        ops: 600,
        processes: 8,
        ..Config::default()
    });
    let h = pair(&sim.events);
    let acknowledged = h.iter().find(|c| c.kind == Kind::Ok && c.invoke_ns > 1_000).unwrap();
    let Op::Append { keys, element, .. } = &acknowledged.op else {
        unreachable!()
    };

    let mut lost = sim.final_lists.clone();
    lost.get_mut(&keys[0]).unwrap().retain(|x| x != element);
    assert_flags(&append::check(&h, &lost), "lost-append", Some(acknowledged.index));

    let mut duplicated = sim.final_lists.clone();
    duplicated.get_mut(&keys[1]).unwrap().push(*element);
    assert_flags(&append::check(&h, &duplicated), "duplicate-element", None);
}

#[test]
fn a_hopeless_history_with_a_tiny_deadline_is_unknown_not_valid() {
    // 40 writes all concurrent, then two reads in a row that disagree: deciding that
    // no order of the 40 explains both means trying them all.
    let mut events = Vec::new();
    let mut at = 0;
    let mut push = |events: &mut Vec<crate::history::Event>, process, kind, op: Op, revision| {
        at += 1;
        events.push(crate::history::Event {
            process,
            kind,
            op,
            time_ns: at,
            revision,
            error: None,
        });
    };
    for p in 0..40 {
        push(
            &mut events,
            p,
            Kind::Invoke,
            Op::Write {
                key: "r/0".into(),
                value: format!("v{p}"),
            },
            None,
        );
    }
    for p in 0..40 {
        push(
            &mut events,
            p,
            Kind::Ok,
            Op::Write {
                key: "r/0".into(),
                value: format!("v{p}"),
            },
            Some(2 + p as i64),
        );
    }
    for v in ["v0", "v1"] {
        let read = |value: Option<String>| Op::Read {
            key: "r/0".into(),
            consistency: Consistency::Linearizable,
            value,
        };
        push(&mut events, 99, Kind::Invoke, read(None), None);
        push(&mut events, 99, Kind::Ok, read(Some(v.into())), Some(41));
    }
    let h = pair(&events);
    let started = Instant::now();
    let r = linearizable::check(&h, started + Duration::from_millis(200));
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the deadline was not honoured: {:?}",
        started.elapsed()
    );

    // And a large valid history is not called valid without being searched.
    let big = registers(Config {
        seed: 3,
        ops: 5_000,
        ..Config::default()
    })
    .completed();
    assert_eq!(linearizable::check(&big, Instant::now()).verdict, Verdict::Unknown);
}

/// The server side of the lease simulation: its revision and the watch events.
struct LeaseServer {
    revision: i64,
    events: Vec<crate::history::WatchEvent>,
}

impl LeaseServer {
    fn record(&mut self, key: &str, is_delete: bool) -> i64 {
        self.revision += 1;
        self.events.push(crate::history::WatchEvent {
            key: key.into(),
            is_delete,
            value: if is_delete { String::new() } else { "leased".into() },
            mod_revision: self.revision,
            create_revision: if is_delete { 0 } else { self.revision },
            version: i64::from(!is_delete),
            prev_value: is_delete.then(|| "leased".into()),
        });
        self.revision
    }
}

/// A lease store simulated on one timeline: leases granted one after another with a
/// 2 s TTL, renewed at random intervals (sometimes too late), read, sometimes revoked
/// (or revoked with an unknown outcome); the server expires a lease exactly `ttl`
/// after it last renewed it, and every put and delete goes to one watch session.
fn simulated_leases(seed: u64) -> (Vec<Completed>, WatchSession) {
    use super::fixture::{History, grant, keepalive, lease_read, revoke};
    use super::simulation::Rng;

    const TTL_NS: u64 = 2_000_000_000;
    // Up to 200 ms each way.
    let lat = |rng: &mut Rng| rng.between(1, 200_000_000);
    let mut rng = Rng::new(seed);
    let mut h = History::new();
    let mut server = LeaseServer {
        revision: 1,
        events: Vec::new(),
    };
    let mut t: u64 = 0;
    for lease in 1..=40 {
        let key = format!("l/{lease}");
        let received = t + lat(&mut rng);
        let granted = server.record(&key, false);
        let mut expiry = received + TTL_NS;
        let mut deleted = false;
        let done = received + lat(&mut rng);
        h.ok(1, grant(lease, 2, &key), t, done, Some(granted));
        t = done;
        // Expires the lease if the server's clock has passed its deadline.
        let expire = |now: u64, expiry: u64, deleted: &mut bool, server: &mut LeaseServer| {
            if !*deleted && now >= expiry {
                *deleted = true;
                server.record(&key, true);
            }
        };
        for _ in 0..rng.between(1, 6) {
            t += rng.below(2_500_000_000);
            let received = t + lat(&mut rng);
            expire(received, expiry, &mut deleted, &mut server);
            let ttl = if deleted { 0 } else { 2 };
            if !deleted {
                expiry = received + TTL_NS;
            }
            let done = received + lat(&mut rng);
            h.ok(1, keepalive(lease, Some(ttl)), t, done, Some(server.revision));
            t = done + rng.below(100_000_000);
            let received = t + lat(&mut rng);
            expire(received, expiry, &mut deleted, &mut server);
            let done = received + lat(&mut rng);
            h.ok(
                1,
                lease_read(lease, &key, Some(!deleted)),
                t,
                done,
                Some(server.revision),
            );
            t = done;
        }
        match rng.below(4) {
            0 | 1 => {
                let received = t + lat(&mut rng);
                expire(received, expiry, &mut deleted, &mut server);
                if deleted {
                    // Expired first: the revoke finds no lease.
                    h.fail(1, revoke(lease), t, received + 1);
                } else {
                    deleted = true;
                    let revoked = server.record(&key, true);
                    let done = received + lat(&mut rng);
                    h.ok(1, revoke(lease), t, done, Some(revoked));
                    t = done;
                    h.ok(1, lease_read(lease, &key, Some(false)), t + 1, t + 2, Some(revoked));
                }
            }
            2 => {
                // Revoked with an unknown outcome: it took effect, late, if the lease
                // was still there.
                h.info(1, revoke(lease), t);
                let received = t + 3 * lat(&mut rng);
                expire(received, expiry, &mut deleted, &mut server);
                if !deleted {
                    deleted = true;
                    server.record(&key, true);
                }
            }
            _ => {}
        }
        // Whatever is left expires; the next lease starts after that.
        expire(u64::MAX, expiry, &mut deleted, &mut server);
        t = t.max(expiry) + 1;
    }
    let session = WatchSession {
        watcher: 1,
        start_revision: 1,
        created_revision: 1,
        responses: server.events.into_iter().map(|e| vec![e]).collect(),
        progress_revision: server.revision,
        compacted: None,
    };
    (h.ops, session)
}

#[test]
fn random_lease_histories_are_valid_and_an_early_delete_is_found() {
    use super::lease;
    for seed in 0..20 {
        let (h, session) = simulated_leases(seed);
        let r = lease::check(&h, std::slice::from_ref(&session));
        assert_eq!(
            r.verdict,
            Verdict::Valid,
            "seed {seed}: {:#?}",
            r.anomalies.iter().take(3).collect::<Vec<_>>()
        );
        assert!(r.ops_checked > 100, "{}", r.ops_checked);
    }
    // Drop the watch's delete of a lease that was revoked: the session watched the key
    // and covered the revoke, so it must have delivered it.
    let (h, mut session) = simulated_leases(3);
    let revoked = h
        .iter()
        .find(|c| c.kind == Kind::Ok && matches!(c.op, Op::LeaseRevoke { .. }))
        .unwrap();
    let at = revoked.revision.unwrap();
    session.responses.retain(|r| r[0].mod_revision != at);
    let r = lease::check(&h, &[session]);
    assert_flags(&r, "lease-delete-not-delivered", Some(revoked.index));
}
