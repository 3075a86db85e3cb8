//! The store's in-process test clusters take ports from `berth_store::testing`, the
//! process tests from `berth_testkit` (which cannot depend on the store); both reserve
//! them in one place, so a port one hands out the other never does.

use std::collections::BTreeSet;

/// Far more ports than the range below the ephemeral one could hand out twice by
/// chance without noticing (about 22 000 ports: some 15 collisions expected).
const EACH: usize = 600;

#[test]
fn the_stores_and_the_testkits_free_ports_never_collide() {
    let from_store: BTreeSet<u16> = (0..EACH).map(|_| berth_store::testing::free_port()).collect();
    let from_testkit: BTreeSet<u16> = (0..EACH).map(|_| berth_testkit::free_port()).collect();
    assert_eq!(from_store.len(), EACH);
    assert_eq!(from_testkit.len(), EACH);
    let shared: Vec<&u16> = from_store.intersection(&from_testkit).collect();
    assert!(shared.is_empty(), "handed out by both: {shared:?}");
}
