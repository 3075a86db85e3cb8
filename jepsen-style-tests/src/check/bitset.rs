//! A fixed-size set of small integers, one bit each: the set of operations already
//! linearized in the search, hashed as a whole for its memo.

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Bitset(Box<[u64]>);

impl Bitset {
    pub(crate) fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)].into_boxed_slice())
    }

    pub(crate) fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub(crate) fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    pub(crate) fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_on_both_sides_of_a_word_boundary() {
        let mut b = Bitset::new(130);
        for i in [0, 63, 64, 129] {
            assert!(!b.contains(i));
            b.insert(i);
            assert!(b.contains(i));
        }
        assert_eq!(b.len(), 4);
        b.remove(64);
        assert!(!b.contains(64) && b.contains(63) && b.contains(129));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn equal_sets_are_equal_whatever_the_order_of_insertion() {
        let (mut a, mut b) = (Bitset::new(100), Bitset::new(100));
        a.insert(3);
        a.insert(70);
        b.insert(70);
        b.insert(3);
        assert_eq!(a, b);
        b.remove(3);
        assert_ne!(a, b);
    }
}
