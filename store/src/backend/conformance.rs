//! The contract every backend must keep, run against each implementation.

use super::*;

fn suite(open: &mut dyn FnMut() -> SharedBackend) {
    get_returns_what_was_written(open());
    batches_touch_only_their_tree(open());
    scan_is_ordered_bounded_and_limited(open());
    last_finds_the_greatest_key_in_range(open());
    empty_and_inverted_ranges_are_empty(open());
    deletes_in_a_batch_apply_in_order(open());
}

fn get_returns_what_was_written(b: SharedBackend) {
    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"1".to_vec());
    b.write(Tree::State, batch).unwrap();
    b.flush().unwrap();
    assert_eq!(b.get(Tree::State, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(b.get(Tree::State, b"b").unwrap(), None);
}

fn batches_touch_only_their_tree(b: SharedBackend) {
    let mut batch = WriteBatch::new();
    batch.put(b"k".to_vec(), b"log".to_vec());
    b.write(Tree::RaftLog, batch).unwrap();
    assert_eq!(b.get(Tree::State, b"k").unwrap(), None);
    assert_eq!(b.get(Tree::RaftLog, b"k").unwrap(), Some(b"log".to_vec()));
}

fn scan_is_ordered_bounded_and_limited(b: SharedBackend) {
    let mut batch = WriteBatch::new();
    for k in ["d", "a", "c", "b", "e"] {
        batch.put(k.as_bytes().to_vec(), k.to_uppercase().into_bytes());
    }
    b.write(Tree::State, batch).unwrap();
    let keys = |pairs: Vec<Pair>| {
        pairs
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(b.scan(Tree::State, b"b", Some(b"e"), 0).unwrap()), ["b", "c", "d"]);
    assert_eq!(keys(b.scan(Tree::State, b"b", None, 0).unwrap()), ["b", "c", "d", "e"]);
    assert_eq!(keys(b.scan(Tree::State, b"", None, 2).unwrap()), ["a", "b"]);
    let pairs = b.scan(Tree::State, b"c", Some(b"d"), 0).unwrap();
    assert_eq!(pairs, vec![(b"c".to_vec(), b"C".to_vec())]);
}

fn last_finds_the_greatest_key_in_range(b: SharedBackend) {
    let mut batch = WriteBatch::new();
    for k in ["x1", "x2", "x3", "y1"] {
        batch.put(k.as_bytes().to_vec(), Vec::new());
    }
    b.write(Tree::State, batch).unwrap();
    assert_eq!(b.last(Tree::State, b"x", Some(b"y")).unwrap().unwrap().0, b"x3");
    assert_eq!(b.last(Tree::State, b"x", None).unwrap().unwrap().0, b"y1");
    assert_eq!(b.last(Tree::State, b"z", None).unwrap(), None);
}

fn empty_and_inverted_ranges_are_empty(b: SharedBackend) {
    let mut batch = WriteBatch::new();
    batch.put(b"m".to_vec(), Vec::new());
    b.write(Tree::State, batch).unwrap();
    assert!(b.scan(Tree::State, b"m", Some(b"m"), 0).unwrap().is_empty());
    assert!(b.scan(Tree::State, b"n", Some(b"a"), 0).unwrap().is_empty());
    assert_eq!(b.last(Tree::State, b"n", Some(b"a")).unwrap(), None);
}

fn deletes_in_a_batch_apply_in_order(b: SharedBackend) {
    let mut batch = WriteBatch::new();
    batch.put(b"p".to_vec(), b"1".to_vec());
    batch.delete(b"p".to_vec());
    batch.put(b"q".to_vec(), b"1".to_vec());
    batch.delete(b"q".to_vec());
    batch.put(b"q".to_vec(), b"2".to_vec());
    b.write(Tree::State, batch).unwrap();
    assert_eq!(b.get(Tree::State, b"p").unwrap(), None);
    assert_eq!(b.get(Tree::State, b"q").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn memory_backend_conforms() {
    suite(&mut || Arc::new(MemoryBackend::new()));
}

#[test]
fn write_behind_over_sled_conforms() {
    let dirs = std::cell::RefCell::new(Vec::new());
    suite(&mut || {
        let dir = tempfile::tempdir().unwrap();
        let backend: SharedBackend = Arc::new(SledBackend::open(dir.path()).unwrap());
        dirs.borrow_mut().push(dir);
        Arc::new(WriteBehind::new(backend))
    });
}

#[test]
fn sled_backend_conforms() {
    let dirs = std::cell::RefCell::new(Vec::new());
    suite(&mut || {
        let dir = tempfile::tempdir().unwrap();
        let backend = SledBackend::open(dir.path()).unwrap();
        dirs.borrow_mut().push(dir);
        Arc::new(backend)
    });
}

#[test]
fn sled_backend_keeps_flushed_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = SledBackend::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b"durable".to_vec(), b"yes".to_vec());
        b.write(Tree::RaftLog, batch).unwrap();
        b.flush().unwrap();
    }
    let b = SledBackend::open(dir.path()).unwrap();
    assert_eq!(b.get(Tree::RaftLog, b"durable").unwrap(), Some(b"yes".to_vec()));
}
