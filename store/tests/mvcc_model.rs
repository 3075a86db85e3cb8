//! The MVCC layer against a model that is too simple to be wrong: a map from every
//! revision to the whole key space at that revision. Restarts reload the state from
//! the sled backend, so recovery is checked by the same assertions.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_proto::berthpb::{Command, command, command_result};
use berth_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};
use berth_store::backend::{SharedBackend, SledBackend, Tree, WriteBatch};
use berth_store::mvcc::{KeyRange, MvccError, RangeOptions};
use berth_store::state_machine::AppliedState;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put { key: u8, value: u8 },
    Delete { from: u8, to: u8 },
    Compact { back: u8 },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..8, any::<u8>()).prop_map(|(key, value)| Op::Put { key, value }),
        2 => (0u8..8, 0u8..9).prop_map(|(from, to)| Op::Delete { from, to }),
        1 => (0u8..6).prop_map(|back| Op::Compact { back }),
        1 => Just(Op::Restart),
    ]
}

/// What a key holds: value, create revision, mod revision, version.
type Value = (Vec<u8>, i64, i64, i64);

#[derive(Default)]
struct Model {
    /// The whole key space after each revision; index 0 is the empty store.
    history: Vec<BTreeMap<Vec<u8>, Value>>,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Self {
            history: vec![BTreeMap::new()],
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

fn apply(state: &mut AppliedState, backend: &SharedBackend, cmd: command::Command) -> command_result::Result {
    let mut lease_batch = WriteBatch::new();
    let applied = state
        .apply(&Command { command: Some(cmd) }, &mut lease_batch)
        .expect("apply");
    let mut batch = state.kv.take_batch();
    batch.ops.append(&mut lease_batch.ops);
    backend.write(Tree::State, batch).unwrap();
    applied.result.result.expect("a result")
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
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mvcc_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let open = || -> (SharedBackend, AppliedState) {
            let backend: SharedBackend = Arc::new(SledBackend::open(dir.path()).unwrap());
            let state = AppliedState::load(&backend).unwrap();
            (backend, state)
        };
        let (mut backend, mut state) = open();
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Put { key: k, value } => {
                    apply(&mut state, &backend, command::Command::Put(PutRequest { key: key(k), value: vec![value], ..Default::default() }));
                    let mut next = model.at(model.current()).clone();
                    let rev = model.current() + 1;
                    let entry = match next.get(&key(k)) {
                        Some((_, create, _, version)) => (vec![value], *create, rev, version + 1),
                        None => (vec![value], rev, rev, 1),
                    };
                    next.insert(key(k), entry);
                    model.history.push(next);
                }
                Op::Delete { from, to } => {
                    let (start, end) = (key(from), key(to));
                    apply(&mut state, &backend, command::Command::DeleteRange(DeleteRangeRequest { key: start.clone(), range_end: end.clone(), ..Default::default() }));
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
                    let result = apply(&mut state, &backend, command::Command::Compaction(CompactionRequest { revision: target, physical: true }));
                    if target > model.compacted && target <= model.current() {
                        prop_assert!(matches!(result, command_result::Result::Compaction(_)), "compaction to {} failed: {:?}", target, result);
                        model.compacted = target;
                    } else {
                        prop_assert!(matches!(result, command_result::Result::Error(_)));
                    }
                }
                Op::Restart => {
                    backend.flush().unwrap();
                    drop(state);
                    drop(backend);
                    (backend, state) = open();
                }
            }
            check(&state, &model);
        }
    }
}
