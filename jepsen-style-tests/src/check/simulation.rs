//! Correct stores, simulated, for the checkers' tests: concurrent clients against a
//! sequential store that applies each operation at one instant between its invocation
//! and completion. Whatever such a store produces is valid by construction, so a
//! checker that flags it has a false positive, and a bug injected into it must be
//! found among thousands of valid operations.
//!
//! Faults are simulated on the client side: an operation may end `info` (and have
//! taken effect or not) or `fail` (and not have taken effect).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::history::{Completed, Consistency, Event, Kind, Op, WatchEvent, WatchSession, pair};

/// splitmix64: reproducible without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub seed: u64,
    pub keys: u64,
    /// Operations in all.
    pub ops: usize,
    pub processes: u64,
    /// Percent of writes and cas that end `info` (half of them took effect).
    pub info_percent: u64,
    /// Percent of operations that end `fail` (none took effect).
    pub fail_percent: u64,
    /// Longest time from invocation to effect, and from effect to completion.
    pub max_latency_ns: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            keys: 5,
            ops: 1000,
            processes: 10,
            info_percent: 3,
            fail_percent: 3,
            max_latency_ns: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Invoke,
    Effect,
    Complete,
}

/// The simulated client side: the event queue and the recorded history.
struct Clients {
    rng: Rng,
    queue: BinaryHeap<Reverse<(u64, u64, u64, Phase)>>,
    sequence: u64,
    events: Vec<(u64, u64, Event)>,
}

impl Clients {
    fn new(seed: u64, processes: u64) -> Self {
        let mut clients = Self {
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            sequence: 0,
            events: Vec::new(),
        };
        for p in 0..processes {
            let at = clients.rng.below(20);
            clients.schedule(at, p, Phase::Invoke);
        }
        clients
    }

    fn schedule(&mut self, at: u64, process: u64, phase: Phase) {
        self.sequence += 1;
        self.queue.push(Reverse((at, self.sequence, process, phase)));
    }

    fn record(&mut self, at: u64, process: u64, kind: Kind, op: Op, revision: Option<i64>) {
        self.sequence += 1;
        self.events.push((
            at,
            self.sequence,
            Event {
                process,
                kind,
                op,
                time_ns: at,
                revision,
                error: None,
            },
        ));
    }

    fn history(mut self) -> Vec<Event> {
        self.events.sort_by_key(|(at, sequence, _)| (*at, *sequence));
        self.events.into_iter().map(|(_, _, e)| e).collect()
    }
}

/// What an in-flight operation will do at its effect and report at completion.
struct InFlight {
    op: Op,
    outcome: Kind,
    takes_effect: bool,
    done: Option<(Op, Option<i64>)>,
}

/// One committed revision of the register store.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    pub revision: i64,
    pub event: WatchEvent,
}

pub(crate) struct Registers {
    pub events: Vec<Event>,
    pub commits: Vec<Commit>,
}

impl Registers {
    pub(crate) fn completed(&self) -> Vec<Completed> {
        pair(&self.events)
    }

    /// A watch session that saw `commits` from `start` on, `per_response` revisions
    /// per response, vouching (by progress) for everything it saw.
    pub(crate) fn session(&self, watcher: u64, start: i64, per_response: usize) -> WatchSession {
        let events: Vec<WatchEvent> = self
            .commits
            .iter()
            .filter(|c| c.revision >= start)
            .map(|c| c.event.clone())
            .collect();
        let responses: Vec<Vec<WatchEvent>> = events.chunks(per_response.max(1)).map(<[WatchEvent]>::to_vec).collect();
        let last = self.commits.last().map_or(start, |c| c.revision);
        WatchSession {
            watcher,
            start_revision: start,
            created_revision: 0,
            responses,
            progress_revision: last,
            compacted: None,
        }
    }
}

/// A register store (keys `r/0`…) under `config.processes` concurrent clients doing
/// linearizable and serializable reads, writes of unique values and cas.
pub(crate) fn registers(config: Config) -> Registers {
    let mut clients = Clients::new(config.seed, config.processes);
    let mut revision: i64 = 1;
    // Per key: the values it held, with the revision that wrote them, and its
    // (create_revision, version) in its current life.
    let mut values: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let mut meta: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut commits = Vec::new();
    let mut in_flight: BTreeMap<u64, InFlight> = BTreeMap::new();
    let mut started = 0;
    let mut counter = 0u64;

    while let Some(Reverse((at, _, process, phase))) = clients.queue.pop() {
        match phase {
            Phase::Invoke => {
                if started == config.ops {
                    continue;
                }
                started += 1;
                counter += 1;
                let rng = &mut clients.rng;
                let key = format!("r/{}", rng.below(config.keys));
                let current = values.get(&key).and_then(|v| v.last()).map(|(_, v)| v.clone());
                let op = match rng.below(100) {
                    0..35 => Op::Read {
                        key,
                        consistency: Consistency::Linearizable,
                        value: None,
                    },
                    35..45 => Op::Read {
                        key,
                        consistency: Consistency::Serializable,
                        value: None,
                    },
                    45..80 => Op::Write {
                        key,
                        value: format!("v{counter}"),
                    },
                    _ => {
                        let from = match current {
                            Some(v) if rng.chance(60) => v,
                            _ => format!("v{}", rng.below(counter.max(1))),
                        };
                        Op::Cas {
                            key,
                            from,
                            to: format!("v{counter}"),
                            succeeded: None,
                        }
                    }
                };
                let is_read = matches!(op, Op::Read { .. });
                let (outcome, takes_effect) = if rng.chance(config.fail_percent) {
                    (Kind::Fail, false)
                } else if !is_read && rng.chance(config.info_percent) {
                    (Kind::Info, rng.chance(50))
                } else {
                    (Kind::Ok, true)
                };
                clients.record(at, process, Kind::Invoke, op.clone(), None);
                in_flight.insert(
                    process,
                    InFlight {
                        op,
                        outcome,
                        takes_effect,
                        done: None,
                    },
                );
                let effect = at + clients.rng.between(1, config.max_latency_ns);
                clients.schedule(effect, process, Phase::Effect);
            }
            Phase::Effect => {
                let f = in_flight.get_mut(&process).expect("invoked before its effect");
                if f.takes_effect {
                    let done = match &f.op {
                        Op::Read {
                            key,
                            consistency: Consistency::Linearizable,
                            ..
                        } => {
                            let value = values.get(key).and_then(|v| v.last()).map(|(_, v)| v.clone());
                            (
                                Op::Read {
                                    key: key.clone(),
                                    consistency: Consistency::Linearizable,
                                    value,
                                },
                                revision,
                            )
                        }
                        Op::Read {
                            key,
                            consistency: Consistency::Serializable,
                            ..
                        } => {
                            // A lagging replica: one of the last few states.
                            let held = values.get(key).map(Vec::as_slice).unwrap_or_default();
                            let back = clients.rng.below(3) as usize;
                            let (r, value) = match held.len().checked_sub(1 + back).and_then(|i| held.get(i)) {
                                Some((r, v)) => (*r, Some(v.clone())),
                                None => (1, None),
                            };
                            (
                                Op::Read {
                                    key: key.clone(),
                                    consistency: Consistency::Serializable,
                                    value,
                                },
                                r,
                            )
                        }
                        Op::Write { key, value } => {
                            revision += 1;
                            put(&mut values, &mut meta, &mut commits, revision, key, value);
                            (f.op.clone(), revision)
                        }
                        Op::Cas { key, from, to, .. } => {
                            let held = values.get(key).and_then(|v| v.last()).map(|(_, v)| v.as_str());
                            let succeeded = held == Some(from.as_str());
                            if succeeded {
                                revision += 1;
                                put(&mut values, &mut meta, &mut commits, revision, key, to);
                            }
                            let done = Op::Cas {
                                key: key.clone(),
                                from: from.clone(),
                                to: to.clone(),
                                succeeded: Some(succeeded),
                            };
                            (done, revision)
                        }
                        other => unreachable!("not a register op: {other:?}"),
                    };
                    f.done = Some((done.0, Some(done.1)));
                }
                let complete = at + clients.rng.between(1, config.max_latency_ns);
                clients.schedule(complete, process, Phase::Complete);
            }
            Phase::Complete => {
                let f = in_flight.remove(&process).expect("invoked before its completion");
                let mut next_process = process;
                match f.outcome {
                    Kind::Ok => {
                        let (op, revision) = f.done.expect("ok ops took effect");
                        clients.record(at, process, Kind::Ok, op, revision);
                    }
                    kind => {
                        clients.record(at, process, kind, f.op, None);
                        if kind == Kind::Info {
                            // As in Jepsen: a client whose operation is in doubt is
                            // replaced by a fresh process.
                            next_process = process + config.processes;
                        }
                    }
                }
                let next = at + clients.rng.below(20);
                clients.schedule(next, next_process, Phase::Invoke);
            }
        }
    }
    Registers {
        events: clients.history(),
        commits,
    }
}

fn put(
    values: &mut BTreeMap<String, Vec<(i64, String)>>,
    meta: &mut BTreeMap<String, (i64, i64)>,
    commits: &mut Vec<Commit>,
    revision: i64,
    key: &str,
    value: &str,
) {
    let held = values.entry(key.to_string()).or_default();
    let prev_value = held.last().map(|(_, v)| v.clone());
    held.push((revision, value.to_string()));
    let (create_revision, version) = match meta.get(key) {
        Some(&(created, version)) => (created, version + 1),
        None => (revision, 1),
    };
    meta.insert(key.to_string(), (create_revision, version));
    commits.push(Commit {
        revision,
        event: WatchEvent {
            key: key.to_string(),
            is_delete: false,
            value: value.to_string(),
            mod_revision: revision,
            create_revision,
            version,
            prev_value,
        },
    });
}

pub(crate) struct Appends {
    pub events: Vec<Event>,
    pub final_lists: BTreeMap<String, Vec<u64>>,
}

/// A serializable list store (keys `a/0`…) under concurrent append transactions on
/// two keys each; each transaction reads and appends atomically at its effect.
pub(crate) fn appends(config: Config) -> Appends {
    let mut clients = Clients::new(config.seed, config.processes);
    let mut lists: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut in_flight: BTreeMap<u64, InFlight> = BTreeMap::new();
    let mut started = 0;
    let mut revision: i64 = 1;

    while let Some(Reverse((at, _, process, phase))) = clients.queue.pop() {
        match phase {
            Phase::Invoke => {
                if started == config.ops {
                    continue;
                }
                started += 1;
                let rng = &mut clients.rng;
                let first = rng.below(config.keys);
                let second = (first + 1 + rng.below(config.keys - 1)) % config.keys;
                let keys = vec![format!("a/{first}"), format!("a/{second}")];
                let op = Op::Append {
                    keys,
                    element: started as u64,
                    read: None,
                };
                let (outcome, takes_effect) = if rng.chance(config.fail_percent) {
                    (Kind::Fail, false)
                } else if rng.chance(config.info_percent) {
                    (Kind::Info, rng.chance(50))
                } else {
                    (Kind::Ok, true)
                };
                clients.record(at, process, Kind::Invoke, op.clone(), None);
                in_flight.insert(
                    process,
                    InFlight {
                        op,
                        outcome,
                        takes_effect,
                        done: None,
                    },
                );
                let effect = at + clients.rng.between(1, config.max_latency_ns);
                clients.schedule(effect, process, Phase::Effect);
            }
            Phase::Effect => {
                let f = in_flight.get_mut(&process).expect("invoked before its effect");
                if f.takes_effect
                    && let Op::Append { keys, element, .. } = &f.op
                {
                    let read: Vec<Vec<u64>> = keys.iter().map(|k| lists.get(k).cloned().unwrap_or_default()).collect();
                    for k in keys {
                        lists.entry(k.clone()).or_default().push(*element);
                    }
                    revision += 1;
                    f.done = Some((
                        Op::Append {
                            keys: keys.clone(),
                            element: *element,
                            read: Some(read),
                        },
                        Some(revision),
                    ));
                }
                let complete = at + clients.rng.between(1, config.max_latency_ns);
                clients.schedule(complete, process, Phase::Complete);
            }
            Phase::Complete => {
                let f = in_flight.remove(&process).expect("invoked before its completion");
                match f.outcome {
                    Kind::Ok => {
                        let (op, revision) = f.done.expect("ok ops took effect");
                        clients.record(at, process, Kind::Ok, op, revision);
                    }
                    kind => clients.record(at, process, kind, f.op, None),
                }
                let next = at + clients.rng.below(20);
                clients.schedule(next, process, Phase::Invoke);
            }
        }
    }
    Appends {
        events: clients.history(),
        final_lists: lists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_history_pairs_up_and_is_reproducible() {
        let config = Config {
            ops: 300,
            ..Config::default()
        };
        let a = registers(config);
        let b = registers(config);
        assert_eq!(a.events, b.events);
        let completed = a.completed();
        assert_eq!(completed.len(), 300);
        assert!(completed.iter().any(|c| c.kind == Kind::Info));
        assert!(completed.iter().any(|c| c.kind == Kind::Fail));
        assert!(completed.iter().any(|c| matches!(
            c.op,
            Op::Cas {
                succeeded: Some(true),
                ..
            }
        )));
        assert!(completed.iter().any(|c| matches!(
            c.op,
            Op::Cas {
                succeeded: Some(false),
                ..
            }
        )));
        assert!(!a.commits.is_empty());
    }
}
