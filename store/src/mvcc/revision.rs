//! A revision names one change: `main` is the store-wide revision of the write
//! transaction (what etcd clients see), `sub` orders the changes inside it.

/// Tag of the backend keys that hold revisions; see [`Revision::to_key`].
pub const REVISION_KEY_PREFIX: u8 = b'r';
pub const REVISION_KEY_LEN: usize = 17;

/// The revision of a store that has never been written, as in etcd: its first
/// write gets revision 2. Stores whose first write came from an earlier version
/// number from 0 (see `CommandBatch.initial_revision`).
pub const INITIAL_REVISION: i64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// Big-endian so that backend key order is revision order (revisions are never
    /// negative).
    pub fn to_key(self) -> [u8; REVISION_KEY_LEN] {
        let mut key = [0u8; REVISION_KEY_LEN];
        key[0] = REVISION_KEY_PREFIX;
        key[1..9].copy_from_slice(&(self.main as u64).to_be_bytes());
        key[9..17].copy_from_slice(&(self.sub as u64).to_be_bytes());
        key
    }

    pub fn from_key(key: &[u8]) -> Option<Self> {
        if key.len() != REVISION_KEY_LEN || key[0] != REVISION_KEY_PREFIX {
            return None;
        }
        let main = u64::from_be_bytes(key[1..9].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(key[9..17].try_into().ok()?) as i64;
        Some(Self { main, sub })
    }

    /// The first backend key of main revision `main`.
    pub fn start_key(main: i64) -> [u8; REVISION_KEY_LEN] {
        Self::new(main, 0).to_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_revision_order() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 3),
        ];
        for pair in revs.windows(2) {
            assert!(pair[0].to_key() < pair[1].to_key(), "{:?} !< {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn key_round_trips() {
        let rev = Revision::new(123_456_789, 42);
        assert_eq!(Revision::from_key(&rev.to_key()), Some(rev));
        assert_eq!(Revision::from_key(b"short"), None);
    }
}
