//! The MVCC layer against a model that is too simple to be wrong: a map from every
//! revision to the whole key space at that revision. Restarts reload the state from
//! the sled backend, so recovery is checked by the same assertions. Writes reach the
//! backend only on a commit, several commands' worth at once as the state machine
//! commits them, so records are read from packs, from the overlay and from both; a
//! twin store that commits every command alone must agree on history and hash.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_proto::berthpb::{Command, command, command_result};
use berth_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};
use berth_store::StoreError;
use berth_store::backend::{MemoryBackend, SharedBackend, SledBackend, Tree, WriteBatch};
use berth_store::mvcc::{KeyRange, MvccError, RangeOptions};
use berth_store::raft::CommandOutcome;
use berth_store::state_machine::AppliedState;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A value of one byte, or of 1500 when `big` (so that records fill packs).
    Put {
        key: u8,
        value: u8,
        big: bool,
    },
    Delete {
        from: u8,
        to: u8,
    },
    Compact {
        back: u8,
    },
    Commit,
    Restart,
    /// A restart that loses what was not committed; the lost commands are applied
    /// again, as the Raft log would apply them.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..8, any::<u8>(), proptest::bool::weighted(0.2)).prop_map(|(key, value, big)| Op::Put { key, value, big }),
        2 => (0u8..8, 0u8..9).prop_map(|(from, to)| Op::Delete { from, to }),
        1 => (0u8..6).prop_map(|back| Op::Compact { back }),
        2 => Just(Op::Commit),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// What a key holds: value, create revision, mod revision, version.
type Value = (Vec<u8>, i64, i64, i64);

#[derive(Default)]
struct Model {
    /// The whole key space after each revision; revision 1 is the empty store, as in
    /// etcd (index 0 stands for nothing and is never read as a revision).
    history: Vec<BTreeMap<Vec<u8>, Value>>,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Self {
            history: vec![BTreeMap::new(), BTreeMap::new()],
            compacted: 0,
        }
    }
    fn current(&self) -> i64 {
        self.history.len() as i64 - 1
    }
    fn at(&self, rev: i64) -> &BTreeMap<Vec<u8>, Value> {
        &self.history[rev as usize]
    }
}

fn key(k: u8) -> Vec<u8> {
    vec![b'k', b'0' + k]
}

fn put(key: &[u8], value: Vec<u8>) -> command::Command {
    command::Command::Put(PutRequest {
        key: key.to_vec(),
        value,
        ..Default::default()
    })
}

/// Applies `cmd` to `state`; its writes wait for [`commit`].
fn apply(state: &mut AppliedState, cmd: command::Command) -> CommandOutcome {
    let mut lease_batch = WriteBatch::new();
    let applied = state
        .apply(&Command { command: Some(cmd) }, &mut lease_batch)
        .expect("apply");
    assert!(lease_batch.is_empty(), "no leases here");
    applied.result
}

fn commit(state: &mut AppliedState, backend: &SharedBackend) {
    backend.write(Tree::State, state.kv.take_batch()).unwrap();
}

/// Applies `cmd` to `state`, noting it among the commands since the last commit, and
/// to the twin, which commits at once; returns the main store's result.
fn apply_both(
    (state, since_commit): (&mut AppliedState, &mut Vec<command::Command>),
    twin: &mut AppliedState,
    twin_backend: &SharedBackend,
    cmd: command::Command,
) -> CommandOutcome {
    since_commit.push(cmd.clone());
    let result = apply(state, cmd.clone());
    assert_eq!(
        apply(twin, cmd),
        result,
        "the twin applied the same command differently"
    );
    commit(twin, twin_backend);
    result
}

/// The backend holds what the key index says; history and hash read from it agree
/// with the twin's.
fn check_committed(state: &AppliedState, twin: &AppliedState, model: &Model) {
    state.kv.check_stored().unwrap();
    twin.kv.check_stored().unwrap();
    let (current, from) = (model.current(), model.compacted.max(1));
    let history = |s: &AppliedState| s.kv.events_between(from, current, usize::MAX, true).unwrap();
    assert_eq!(history(state), history(twin), "history from revision {from}");
    for first in from..=current {
        let one = |s: &AppliedState| s.kv.events_between(first, first, 1, false).unwrap();
        assert_eq!(one(state), one(twin), "history of revision {first} alone");
    }
    assert_eq!(
        state.kv.hash_kv(current).unwrap(),
        twin.kv.hash_kv(current).unwrap(),
        "hash at revision {current}"
    );
}

fn check(state: &AppliedState, model: &Model) {
    assert_eq!(state.kv.current_revision(), model.current(), "current revision");
    assert_eq!(state.kv.compact_revision(), model.compacted, "compact revision");
    let all = KeyRange::new(b"k", b"l");
    for rev in 0..=model.current() {
        let read = state.kv.range(
            &all,
            &RangeOptions {
                revision: rev,
                ..Default::default()
            },
        );
        if rev != 0 && rev < model.compacted {
            assert!(
                matches!(read, Err(MvccError::Compacted { .. })),
                "rev {rev} must be compacted"
            );
            continue;
        }
        let got: BTreeMap<Vec<u8>, Value> = read
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| (kv.key, (kv.value, kv.create_revision, kv.mod_revision, kv.version)))
            .collect();
        let at = if rev == 0 { model.current() } else { rev };
        assert_eq!(&got, model.at(at), "state at revision {rev}");
    }
    let future = state.kv.range(
        &all,
        &RangeOptions {
            revision: model.current() + 1,
            ..Default::default()
        },
    );
    assert!(matches!(future, Err(MvccError::FutureRevision { .. })));
    state.kv.validate().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mvcc_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let open = || -> (SharedBackend, AppliedState) {
            let backend: SharedBackend = Arc::new(SledBackend::open(dir.path()).unwrap());
            let state = AppliedState::load(&backend).unwrap();
            (backend, state)
        };
        let (mut backend, mut state) = open();
        let twin_backend: SharedBackend = Arc::new(MemoryBackend::new());
        let mut twin = AppliedState::load(&twin_backend).unwrap();
        let mut model = Model::new();
        let mut since_commit = Vec::new();
        for op in ops {
            match op {
                Op::Put { key: k, value, big } => {
                    let value = vec![value; if big { 1500 } else { 1 }];
                    apply_both((&mut state, &mut since_commit), &mut twin, &twin_backend, put(&key(k), value.clone())).expect("a put applies");
                    let mut next = model.at(model.current()).clone();
                    let rev = model.current() + 1;
                    let entry = match next.get(&key(k)) {
                        Some((_, create, _, version)) => (value, *create, rev, version + 1),
                        None => (value, rev, rev, 1),
                    };
                    next.insert(key(k), entry);
                    model.history.push(next);
                }
                Op::Delete { from, to } => {
                    let (start, end) = (key(from), key(to));
                    apply_both((&mut state, &mut since_commit), &mut twin, &twin_backend, command::Command::DeleteRange(DeleteRangeRequest { key: start.clone(), range_end: end.clone(), ..Default::default() })).expect("a delete applies");
                    let mut next = model.at(model.current()).clone();
                    let before = next.len();
                    next.retain(|k, _| !(k >= &start && k < &end));
                    // A delete that removes nothing does not make a revision.
                    if next.len() != before {
                        model.history.push(next);
                    }
                }
                Op::Compact { back } => {
                    let target = model.current() - i64::from(back);
                    let result = apply_both((&mut state, &mut since_commit), &mut twin, &twin_backend, command::Command::Compaction(CompactionRequest { revision: target, physical: true }));
                    if target > model.compacted && target <= model.current() {
                        prop_assert!(matches!(result, Ok(command_result::Result::Compaction(_))), "compaction to {} failed: {:?}", target, result);
                        model.compacted = target;
                    } else {
                        prop_assert!(matches!(result, Err(StoreError::Compacted { .. } | StoreError::FutureRevision { .. })), "{:?}", result);
                    }
                }
                Op::Commit => {
                    commit(&mut state, &backend);
                    since_commit.clear();
                    check_committed(&state, &twin, &model);
                }
                Op::Crash => {
                    backend.flush().unwrap();
                    drop(state);
                    drop(backend);
                    (backend, state) = open();
                    for cmd in &since_commit {
                        // Its outcome was checked when it was first applied.
                        let _ = apply(&mut state, cmd.clone());
                    }
                }
                Op::Restart => {
                    commit(&mut state, &backend);
                    since_commit.clear();
                    backend.flush().unwrap();
                    drop(state);
                    drop(backend);
                    (backend, state) = open();
                    check_committed(&state, &twin, &model);
                }
            }
            check(&state, &model);
        }
    }
}

/// History read across many scans of the backend: one store stores every record
/// alone, the other in packs of a few records.
#[test]
fn history_reads_across_many_stored_values() {
    let lone: SharedBackend = Arc::new(MemoryBackend::new());
    let packed: SharedBackend = Arc::new(MemoryBackend::new());
    let (mut a, mut b) = (AppliedState::load(&lone).unwrap(), AppliedState::load(&packed).unwrap());
    for i in 0..1200u32 {
        let cmd = put(format!("k{}", i % 300).as_bytes(), vec![b'v'; 1000 + i as usize % 7]);
        apply(&mut a, cmd.clone()).expect("a put applies");
        commit(&mut a, &lone);
        apply(&mut b, cmd).expect("a put applies");
        if i % 50 == 49 {
            commit(&mut b, &packed);
        }
    }
    // The puts made revisions 2..=1201 (the empty store is revision 1).
    for (from, to, max) in [(2, 1201, usize::MAX), (299, 1100, 700), (5, 5, 1), (1000, 1201, 256)] {
        let history = |s: &AppliedState| s.kv.events_between(from, to, max, true).unwrap();
        let (ha, hb) = (history(&a), history(&b));
        assert_eq!(ha.len(), max.min((to - from + 1) as usize), "revisions {from}..={to}");
        assert_eq!(ha.first().unwrap().revision, from);
        assert_eq!(ha, hb, "revisions {from}..={to}, at most {max}");
    }
    assert_eq!(a.kv.hash_kv(1201).unwrap(), b.kv.hash_kv(1201).unwrap());
    a.kv.check_stored().unwrap();
    b.kv.check_stored().unwrap();
    let reopened = AppliedState::load(&packed).unwrap();
    let all = KeyRange::new(b"k", b"l");
    for rev in [0, 1, 600, 1199] {
        let opts = RangeOptions {
            revision: rev,
            ..Default::default()
        };
        assert_eq!(
            reopened.kv.range(&all, &opts).unwrap(),
            a.kv.range(&all, &opts).unwrap(),
            "at {rev}"
        );
    }
}

/// Stored values whose records overlap are reported when the store opens.
#[test]
fn overlapping_stored_records_are_corrupt() {
    use berth_proto::Message;
    use berth_proto::mvccpb::KeyValue;
    let key = |main: u64| [&[b'r'][..], &main.to_be_bytes(), &0u64.to_be_bytes()].concat();
    let record = |main: i64| {
        let kv = KeyValue {
            key: b"k".to_vec(),
            create_revision: 1,
            mod_revision: main,
            version: main,
            value: b"v".to_vec(),
            lease: 0,
        };
        [vec![0u8], kv.encode_to_vec()].concat()
    };
    // A pack of revisions 1 and 3 (kind 2; main, sub, length, record), then a lone
    // record at revision 2, inside the pack's span.
    let mut pack = vec![2u8];
    for main in [1u64, 3] {
        let body = record(main as i64);
        pack.extend_from_slice(&main.to_be_bytes());
        pack.extend_from_slice(&0u64.to_be_bytes());
        pack.extend_from_slice(&(body.len() as u32).to_be_bytes());
        pack.extend_from_slice(&body);
    }
    let backend: SharedBackend = Arc::new(MemoryBackend::new());
    let mut batch = WriteBatch::new();
    batch.put(key(1), pack);
    batch.put(key(2), record(2));
    batch.put(b"m/current_revision".to_vec(), 3i64.to_be_bytes().to_vec());
    backend.write(Tree::State, batch).unwrap();
    match AppliedState::load(&backend) {
        Err(e) => assert!(e.to_string().contains("stored after revision"), "{e}"),
        Ok(_) => panic!("overlapping records must not load"),
    }
}
