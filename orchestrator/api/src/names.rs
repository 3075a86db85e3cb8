//! Generated names and identifiers: UIDs and the random suffixes of generated names.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Kubernetes' alphabet for generated name suffixes: lowercase letters and digits
/// without vowels and look-alikes, so suffixes never spell words.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// How many random characters end a generated name, in Kubernetes as here: a pod
/// of a ReplicaSet, an object created with `metadata.generateName`.
pub const GENERATED_SUFFIX_LEN: usize = 5;

/// 64 random bits, different on every call: the process's random hasher keys, a
/// call counter and the clock, hashed. Names need to be unlikely to collide, not
/// secret; a collision is caught by the store's create-if-absent.
pub fn random_bits() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// `n` random characters for a generated name (`<replicaset>-<suffix>`).
pub fn random_suffix(n: usize) -> String {
    let mut bits = random_bits();
    (0..n)
        .map(|_| {
            let c = SUFFIX_ALPHABET[(bits % SUFFIX_ALPHABET.len() as u64) as usize];
            bits /= SUFFIX_ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// A new random UID in the usual 8-4-4-4-12 form.
pub fn new_uid() -> String {
    let hex = format!("{:016x}{:016x}", random_bits(), random_bits());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_short_lowercase_and_vary() {
        let (a, b) = (random_suffix(GENERATED_SUFFIX_LEN), random_suffix(GENERATED_SUFFIX_LEN));
        assert_ne!(a, b);
        assert_eq!(a.len(), 5);
        assert!(a.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)), "{a}");
        let distinct: std::collections::BTreeSet<String> = (0..50).map(|_| random_suffix(5)).collect();
        assert!(distinct.len() > 45, "{distinct:?}");
    }

    #[test]
    fn uids_are_unique_and_well_formed() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
