//! Keys and values of the generated load.
//!
//! A key is a one-letter workload prefix and a zero-padded decimal index, `key_size`
//! bytes long (`p0000042` for put, index 42, size 8), so keys stay printable for etcdctl
//! and workloads in one cluster never touch each other's keys. A key space larger than
//! the padding can hold makes the keys longer rather than wrapping around.

/// The keys `prefix + index` for `index` in `0..size`.
#[derive(Clone, Debug)]
pub struct KeySpace {
    prefix: String,
    key_size: usize,
    size: u64,
    is_sequential: bool,
}

impl KeySpace {
    pub fn new(prefix: &str, key_size: usize, size: u64, is_sequential: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            key_size,
            size: size.max(1),
            is_sequential,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key with this index (taken modulo the key space).
    pub fn key(&self, index: u64) -> Vec<u8> {
        let width = self.key_size.saturating_sub(self.prefix.len());
        format!("{}{:0width$}", self.prefix, index % self.size).into_bytes()
    }

    /// The key for request `ticket`: the ticket's own index with `--sequential-keys`,
    /// a random one otherwise.
    pub fn pick(&self, ticket: u64, rng: &mut Rng) -> Vec<u8> {
        if self.is_sequential {
            self.key(ticket)
        } else {
            self.key(rng.next_u64())
        }
    }
}

/// A value of `size` bytes. The bytes are pseudo-random (as etcd's benchmark does) so
/// neither side gains from a compressible payload.
pub fn value_bytes(size: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x5eed);
    (0..size).map(|_| b'a' + (rng.next_u64() % 26) as u8).collect()
}

/// xorshift64*: a small, fast generator for picking keys; no need for a crate.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Spread small seeds (client indexes) apart; the state must never be zero.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_padded_to_key_size() {
        let keys = KeySpace::new("p", 8, 1000, true);
        assert_eq!(keys.key(42), b"p0000042");
        assert_eq!(keys.key(1042), b"p0000042");
        assert_eq!(keys.pick(7, &mut Rng::new(1)), b"p0000007");
    }

    #[test]
    fn a_large_key_space_makes_longer_keys() {
        let keys = KeySpace::new("p", 3, 100_000, true);
        assert_eq!(keys.key(12_345), b"p12345");
    }

    #[test]
    fn random_keys_stay_in_the_key_space() {
        let keys = KeySpace::new("r", 8, 10, false);
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let key = keys.pick(0, &mut rng);
            let index: u64 = std::str::from_utf8(&key[1..]).unwrap().parse().unwrap();
            assert!(index < 10, "index {index} outside the key space of 10");
        }
    }

    #[test]
    fn values_have_the_asked_size() {
        assert_eq!(value_bytes(256).len(), 256);
        assert!(value_bytes(0).is_empty());
    }
}
