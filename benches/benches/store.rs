//! Micro benchmarks of the store's hot paths, against `berth-store`'s public API.
//!
//! Plain `harness = false` benches timed with `std::time::Instant`: criterion would add
//! minutes of compile time on a two-core machine for little gain at this stage. Each
//! bench runs a warm-up round, then several rounds of a fixed number of iterations, and
//! prints the median and the fastest round's time per iteration.
//!
//! ```sh
//! cargo bench -p berth-benches --bench store              # all
//! cargo bench -p berth-benches --bench store -- watch     # names containing "watch"
//! cargo bench -p berth-benches --bench store -- --quick   # fewer rounds
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_proto::berthpb::{Command, command};
use berth_proto::etcdserverpb::{PutRequest, WatchResponse};
use berth_store::backend::{MemoryBackend, SharedBackend, Tree, WriteBatch, open_on_disk};
use berth_store::mvcc::{KeyRange, RangeOptions};
use berth_store::raft::wal::Wal;
use berth_store::state_machine::{AppliedState, StateHandle};
use berth_store::watch::{WatchHub, WatchSpec, Watcher};

const VALUE_SIZE: usize = 256;

struct Settings {
    rounds: usize,
}

/// A named bench: sets itself up and calls [`measure`].
type Bench = (&'static str, fn(&str, &Settings));

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let is_quick = arguments.iter().any(|argument| argument == "--quick");
    let filter = arguments.iter().find(|argument| !argument.starts_with('-'));
    let settings = Settings {
        rounds: if is_quick { 3 } else { 10 },
    };
    let benches: [Bench; 8] = [
        ("mvcc_apply_batch_of_100_puts", mvcc_apply_batch),
        ("mvcc_range_over_10k_keys", mvcc_range_10k),
        ("mvcc_range_one_key_of_10k", mvcc_range_one_of_10k),
        ("watch_fan_out_to_1k_watchers", watch_fan_out),
        ("log_append_1_entry_and_fdatasync", log_append_one),
        ("log_append_100_entries_and_fdatasync", log_append_hundred),
        ("backend_append_1_entry_and_fsync", backend_append_one),
        ("backend_append_100_entries_and_fsync", backend_append_hundred),
    ];
    for (name, bench) in benches {
        if filter.is_none_or(|filter| name.contains(filter.as_str())) {
            bench(name, &settings);
        }
    }
}

/// Times `body` over `settings.rounds` rounds of `iterations` calls after one warm-up
/// round, and prints the median and minimum time per call.
fn measure(name: &str, settings: &Settings, iterations: usize, mut body: impl FnMut()) {
    let mut per_iteration = Vec::with_capacity(settings.rounds);
    for round in 0..=settings.rounds {
        let started_at = Instant::now();
        for _ in 0..iterations {
            body();
        }
        if round > 0 {
            per_iteration.push(started_at.elapsed() / iterations as u32);
        }
    }
    per_iteration.sort_unstable();
    println!(
        "{name:<40} median {:>12}  min {:>12}  ({} rounds × {iterations})",
        human(per_iteration[per_iteration.len() / 2]),
        human(per_iteration[0]),
        settings.rounds
    );
}

fn human(duration: Duration) -> String {
    let ns = duration.as_nanos();
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.2} µs", ns as f64 / 1e3),
        _ => format!("{:.3} ms", ns as f64 / 1e6),
    }
}

fn put_command(key: u64) -> Command {
    Command {
        command: Some(command::Command::Put(PutRequest {
            key: format!("k{key:07}").into_bytes(),
            value: vec![b'v'; VALUE_SIZE],
            ..Default::default()
        })),
    }
}

/// Applies puts and writes their batch to the backend, as the state machine does.
fn apply_puts(state: &mut AppliedState, keys: impl Iterator<Item = u64>) {
    let mut lease_batch = WriteBatch::new();
    for key in keys {
        state.apply(&put_command(key), &mut lease_batch).expect("apply");
    }
    let mut batch = state.kv.take_batch();
    batch.ops.append(&mut lease_batch.ops);
    state.kv.backend().write(Tree::State, batch).expect("write");
}

fn memory_state() -> AppliedState {
    let backend: SharedBackend = Arc::new(MemoryBackend::new());
    AppliedState::load(&backend).expect("load")
}

fn state_with_keys(count: u64) -> AppliedState {
    let mut state = memory_state();
    for chunk_start in (0..count).step_by(1000) {
        apply_puts(&mut state, chunk_start..(chunk_start + 1000).min(count));
    }
    state
}

/// One Raft entry's worth of client writes: 100 puts to a 100k key space applied to
/// MVCC, and the resulting batch written to the in-memory backend.
fn mvcc_apply_batch(name: &str, settings: &Settings) {
    let mut state = memory_state();
    let mut next_key = 0u64;
    measure(name, settings, 20, || {
        apply_puts(&mut state, (next_key..next_key + 100).map(|key| key * 7919 % 100_000));
        next_key += 100;
    });
}

fn mvcc_range_10k(name: &str, settings: &Settings) {
    let state = state_with_keys(10_000);
    let range = KeyRange::new(b"k", b"l");
    measure(name, settings, 5, || {
        let result = state.kv.range(&range, &RangeOptions::default()).expect("range");
        assert_eq!(result.kvs.len(), 10_000);
    });
}

fn mvcc_range_one_of_10k(name: &str, settings: &Settings) {
    let state = state_with_keys(10_000);
    let mut key = 0u64;
    measure(name, settings, 10_000, || {
        let range = KeyRange::single(format!("k{:07}", key % 10_000).as_bytes());
        key += 7919;
        let result = state.kv.range(&range, &RangeOptions::default()).expect("range");
        assert_eq!(result.kvs.len(), 1);
    });
}

/// One put applied, committed and published; timed until all 1000 watchers of its
/// prefix have queued their response.
fn watch_fan_out(name: &str, settings: &Settings) {
    const WATCHERS: usize = 1000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = StateHandle::new(memory_state());
    let hub = WatchHub::new();
    let (out, mut responses) = tokio::sync::mpsc::channel::<WatchResponse>(4 * WATCHERS);
    runtime.block_on(async {
        for watch_id in 0..WATCHERS {
            let spec = WatchSpec {
                watch_id: watch_id as i64,
                range: KeyRange::new(b"k", b"l"),
                start_revision: 0,
                prev_kv: false,
                filter_put: false,
                filter_delete: false,
                progress_notify: None,
            };
            let (watcher, _progress) = Watcher::new(spec, state.clone(), &hub, out.clone());
            tokio::spawn(watcher.run());
        }
    });
    let mut key = 0u64;
    measure(name, settings, 20, || {
        let events = {
            let mut state = state.write();
            let mut lease_batch = WriteBatch::new();
            let applied = state.apply(&put_command(key), &mut lease_batch).expect("apply");
            let batch = state.kv.take_batch();
            state.kv.backend().write(Tree::State, batch).expect("write");
            applied.events.expect("a put has events")
        };
        key += 1;
        hub.publish(vec![events]);
        runtime.block_on(async {
            let mut events_received = 0;
            while events_received < WATCHERS {
                let response = responses.recv().await.expect("watchers are running");
                events_received += response.events.len();
            }
        });
    });
}

/// The Raft log's append path: entries written to the log's segment files, then each
/// file written to synced with `fdatasync`.
fn log_append(name: &str, settings: &Settings, entries_per_sync: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = Wal::open(dir.path()).expect("open");
    let entry = vec![b'e'; VALUE_SIZE + 64];
    let mut index = 1u64;
    measure(name, settings, 50, || {
        let records: Vec<(u64, Vec<u8>)> = (index..index + entries_per_sync).map(|i| (i, entry.clone())).collect();
        index += entries_per_sync;
        wal.append(&records).expect("append");
        for file in wal.take_unsynced() {
            file.sync_data().expect("fdatasync");
        }
    });
}

fn log_append_one(name: &str, settings: &Settings) {
    log_append(name, settings, 1);
}

fn log_append_hundred(name: &str, settings: &Settings) {
    log_append(name, settings, 100);
}

/// The state machine's write-out path (and the vote's): a batch written to the on-disk
/// backend, then flushed.
fn backend_append(name: &str, settings: &Settings, entries_per_flush: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = open_on_disk(dir.path()).expect("open");
    let entry = vec![b'e'; VALUE_SIZE + 64];
    let mut index = 0u64;
    measure(name, settings, 50, || {
        let mut batch = WriteBatch::new();
        for _ in 0..entries_per_flush {
            batch.put(index.to_be_bytes().to_vec(), entry.clone());
            index += 1;
        }
        backend.write(Tree::RaftLog, batch).expect("write");
        backend.flush().expect("flush");
    });
}

fn backend_append_one(name: &str, settings: &Settings) {
    backend_append(name, settings, 1);
}

fn backend_append_hundred(name: &str, settings: &Settings) {
    backend_append(name, settings, 100);
}
