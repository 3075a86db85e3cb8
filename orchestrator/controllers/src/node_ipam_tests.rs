use super::*;
use berth_api::meta::ObjectMeta;
use berth_api::objects::{NodeSpec, Resource};

fn node(name: &str, pod_cidr: Option<&str>) -> Node {
    let mut node = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.spec.pod_cidr = pod_cidr.map(String::from);
    node
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn small(cluster: &str, mask: u8) -> NodeIpamSettings {
    NodeIpamSettings {
        cluster_cidr: cidr(cluster),
        node_cidr_mask_size: mask,
    }
}

#[test]
fn nodes_without_a_block_get_the_lowest_free_ones_in_name_order() {
    let nodes = [node("c", None), node("a", Some("10.244.0.0/24")), node("b", None)];
    let allocation = allocate(&nodes, [], &NodeIpamSettings::default());
    assert_eq!(
        allocation.assign,
        [
            ("b".to_string(), cidr("10.244.1.0/24")),
            ("c".to_string(), cidr("10.244.2.0/24"))
        ]
    );
    assert!(allocation.exhausted.is_empty());
}

#[test]
fn a_block_in_use_or_assumed_is_never_handed_out_again() {
    // podCIDRs (the list) counts as well as podCIDR; a freed block (node 1 gone) is
    // reused; an assumed block (written, not yet in the cache) is skipped.
    let mut listed = node("listed", None);
    listed.spec.pod_cidrs = Some(vec!["10.244.2.0/24".into()]);
    let nodes = [
        node("zero", Some("10.244.0.0/24")),
        listed,
        node("new1", None),
        node("new2", None),
    ];
    let allocation = allocate(
        &nodes,
        [("gone-from-cache".to_string(), cidr("10.244.1.0/24"))],
        &NodeIpamSettings::default(),
    );
    assert_eq!(
        allocation.assign,
        [
            ("new1".to_string(), cidr("10.244.3.0/24")),
            ("new2".to_string(), cidr("10.244.4.0/24"))
        ]
    );
}

#[test]
fn the_same_cache_after_a_restart_gives_the_same_answer_and_never_a_duplicate() {
    // A new leader knows nothing but the cache: the blocks already written are in it.
    let settings = NodeIpamSettings::default();
    let mut nodes: Vec<Node> = (0..5).map(|i| node(&format!("n{i}"), None)).collect();
    let first = allocate(&nodes, [], &settings);
    for (name, block) in &first.assign {
        let n = nodes.iter_mut().find(|n| n.metadata.name() == name).unwrap();
        *n = with_pod_cidr(n, *block);
    }
    nodes.push(node("late", None));
    let second = allocate(&nodes, [], &settings);
    assert_eq!(second.assign, [("late".to_string(), cidr("10.244.5.0/24"))]);
    let mut all: Vec<Ipv4Cidr> = nodes.iter().flat_map(node_cidrs).collect();
    all.extend(second.assign.iter().map(|(_, b)| *b));
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "every block is given once: {all:?}");
}

#[test]
fn a_full_cluster_cidr_leaves_the_rest_waiting_and_a_foreign_block_overlapping_counts() {
    // A /23 holds two /24s; a hand-set /25 inside the first one blocks all of it.
    let nodes = [
        node("a", Some("10.0.0.128/25")),
        node("b", None),
        node("c", None),
        node("d", Some("garbage")),
    ];
    let allocation = allocate(&nodes, [], &small("10.0.0.0/23", 24));
    assert_eq!(allocation.assign, [("b".to_string(), cidr("10.0.1.0/24"))]);
    assert_eq!(allocation.exhausted, ["c", "d"], "an unparsable block is no block");
}

#[test]
fn a_deleting_node_gets_nothing_and_the_written_node_carries_both_fields() {
    let mut going = node("going", None);
    going.metadata.deletion_timestamp = Some(berth_api::time::now());
    assert_eq!(
        allocate([&going], [], &NodeIpamSettings::default()),
        Allocation::default()
    );
    let written = with_pod_cidr(&node("x", None), cidr("10.244.9.0/24"));
    assert_eq!(written.spec.pod_cidr.as_deref(), Some("10.244.9.0/24"));
    assert_eq!(written.spec.pod_cidrs, Some(vec!["10.244.9.0/24".to_string()]));
}

#[test]
fn assumed_blocks_last_until_the_cache_reaches_their_write() {
    let assumed = Assumed::default();
    assumed.insert("n1", cidr("10.244.1.0/24"), 10);
    assert_eq!(assumed.current(9), [("n1".to_string(), cidr("10.244.1.0/24"))]);
    assert!(assumed.current(10).is_empty());
}

#[test]
fn a_stale_cache_neither_gives_a_written_node_a_second_block_nor_skips_one() {
    // n1 got 10.244.0.0/24 but the cache still shows it without a block when n2
    // appears: n2 gets the next block, not the one after it, and n1 nothing.
    let nodes = [node("n1", None), node("n2", None)];
    let allocation = allocate(
        &nodes,
        [("n1".to_string(), cidr("10.244.0.0/24"))],
        &NodeIpamSettings::default(),
    );
    assert_eq!(allocation.assign, [("n2".to_string(), cidr("10.244.1.0/24"))]);
}

#[test]
fn mask_sizes_the_cluster_cidr_cannot_hold_are_refused() {
    assert!(NodeIpamSettings::default().validate().is_ok());
    assert!(small("10.244.0.0/16", 8).validate().is_err());
    assert!(small("10.244.0.0/16", 31).validate().is_err());
}
