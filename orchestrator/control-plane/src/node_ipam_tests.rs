//! Node IPAM against a real store: every registered node gets its own pod CIDR, and
//! a new leader (the loops restarted) hands out no block twice.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::test_support::*;
use berth_api::objects::NodeSpec;

async fn pod_cidrs(cp: &ControlPlane, names: &[&str]) -> Option<Vec<String>> {
    let mut cidrs = Vec::new();
    for name in names {
        let n = node(&cp.registry, name).await;
        let cidr = n.spec.pod_cidr.clone()?;
        assert_eq!(n.spec.pod_cidrs, Some(vec![cidr.clone()]), "podCIDRs matches podCIDR");
        cidrs.push(cidr);
    }
    Some(cidrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_gets_its_own_pod_cidr_and_a_new_leader_keeps_them_apart() {
    let cp = start(settings(Duration::from_secs(60))).await;
    add_node(&cp.kv, "n1", "1").await;
    add_node(&cp.kv, "n2", "1").await;
    let first = eventually("both nodes have a pod CIDR", async || {
        pod_cidrs(&cp, &["n1", "n2"]).await
    })
    .await;
    assert_eq!(first, ["10.244.0.0/24", "10.244.1.0/24"]);

    // The agent's status writes keep the spec (write_node only touches labels and
    // status): a status refresh must not take the block away.
    cp.registry
        .modify::<NodeSpec>("", "n1", None, |n| {
            n.status.node_info = None;
            true
        })
        .await
        .unwrap();
    assert_eq!(
        node(&cp.registry, "n1").await.spec.pod_cidr.as_deref(),
        Some("10.244.0.0/24")
    );

    // The loops stop and start again, as on a new leader: what they know comes from
    // the Nodes alone.
    let mut cp = cp;
    cp.lead_again(2, settings(Duration::from_secs(60))).await;
    add_node(&cp.kv, "n0", "1").await;
    let all = eventually("the new node has a pod CIDR", async || {
        pod_cidrs(&cp, &["n0", "n1", "n2"]).await
    })
    .await;
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 3, "distinct blocks: {all:?}");
    assert_eq!(all[0], "10.244.2.0/24");
}
