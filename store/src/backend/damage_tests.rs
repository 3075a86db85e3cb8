//! What sled does with a damaged file, which the log's recovery relies on (see
//! `raft::log_store::recovery`): it opens, rolled back to the last point it can read,
//! with every batch whole, so the applied id written in a batch still matches the data
//! written with it.

use super::*;

#[test]
fn a_flipped_byte_rolls_sled_back_to_a_whole_batch_never_a_half_one() {
    for fraction in [0.2, 0.5, 0.9] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writes = 2000u32;
        {
            let backend = SledBackend::open(&path).unwrap();
            for i in 0..writes {
                let mut batch = WriteBatch::new();
                batch.put(format!("k{i:05}").into_bytes(), vec![7u8; 200]);
                batch.put(b"applied".to_vec(), i.to_le_bytes().to_vec());
                backend.write(Tree::State, batch).unwrap();
            }
            backend.flush().unwrap();
        }
        let file = path.join("db");
        let mut bytes = std::fs::read(&file).unwrap();
        let at = (bytes.len() as f64 * fraction) as usize;
        bytes[at] ^= 0x40;
        std::fs::write(&file, &bytes).unwrap();

        let backend = SledBackend::open(&path).unwrap_or_else(|e| panic!("sled refused its damaged file: {e}"));
        let keys = backend.scan(Tree::State, b"k", Some(b"l"), 0).unwrap().len() as u32;
        let applied = backend
            .get(Tree::State, b"applied")
            .unwrap()
            .map(|v| u32::from_le_bytes(v.try_into().unwrap()));
        assert!(
            keys < writes,
            "the flip at {fraction} of the file lost nothing: sled changed, see the module doc"
        );
        assert_eq!(
            applied,
            keys.checked_sub(1),
            "the applied id and the data disagree after the roll-back"
        );
    }
}
