//! The scheduler in the leader's loops against a real store: placement up to each
//! node's allocatable, the explanation of a pod that fits nowhere, and placement once
//! room appears.

use std::time::Duration;

use berth_api::conditions::{Condition, condition, is_active};
use berth_api::kinds::event::{EVENT, Event};
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, PodSpec};

use crate::test_support::*;

fn node_name(pod: &Pod) -> &str {
    pod.spec.node_name.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_fill_nodes_up_to_their_allocatable_and_the_rest_wait_with_a_reason() {
    let cp = start(settings(Duration::from_secs(60))).await;
    add_node(&cp.kv, "n1", "1").await;
    add_node(&cp.kv, "n2", "1").await;
    cp.registry
        .create(&deployment("web", 4, "img:1", "400m"), None)
        .await
        .unwrap();
    eventually("four pods bound two per node", async || {
        let pods: Vec<Pod> = pods(&cp.registry).await.into_iter().filter(is_active).collect();
        let on = |n: &str| pods.iter().filter(|p| node_name(p) == n).count();
        (pods.len() == 4 && on("n1") == 2 && on("n2") == 2).then_some(())
    })
    .await;

    cp.registry
        .modify::<berth_api::objects::DeploymentSpec>("default", "web", None, |d| {
            d.spec.replicas = Some(5);
            true
        })
        .await
        .unwrap();
    let waiting = eventually("the fifth pod explained", async || {
        let pods: Vec<Pod> = pods(&cp.registry).await.into_iter().filter(is_active).collect();
        let unbound: Vec<&Pod> = pods.iter().filter(|p| node_name(p).is_empty()).collect();
        let [waiting] = unbound[..] else { return None };
        let c = condition(waiting.status.conditions.as_deref()?, "PodScheduled")?;
        (pods.len() == 5 && c.status() == "False").then(|| waiting.clone())
    })
    .await;
    let c = condition(waiting.status.conditions.as_deref().unwrap(), "PodScheduled").unwrap();
    assert_eq!(c.reason(), "Unschedulable");
    assert_eq!(c.message(), "0/2 nodes are available: 2 Insufficient cpu.");
    assert_eq!(waiting.status.phase.as_deref(), Some("Pending"));
    let pods: Vec<Pod> = pods(&cp.registry).await.into_iter().filter(is_active).collect();
    for n in ["n1", "n2"] {
        assert_eq!(
            pods.iter().filter(|p| node_name(p) == n).count(),
            2,
            "{n} is not over-committed"
        );
    }

    // Room appears: the waiting pod is placed without any other change to it.
    add_node(&cp.kv, "n3", "1").await;
    eventually("the fifth pod bound to the new node", async || {
        let pod = cp
            .registry
            .get::<PodSpec>("default", waiting.metadata.name())
            .await
            .unwrap()?;
        (node_name(&pod) == "n3").then_some(())
    })
    .await;

    // The scheduler told the story in events about the pod.
    let about = |reason: &'static str| {
        let cp = &cp;
        let name = waiting.metadata.name().to_string();
        async move {
            let (records, _) = cp.kv.list(&EVENT.prefix(Some("default"))).await.unwrap();
            records
                .iter()
                .map(|r| serde_json::from_slice::<Event>(&r.value).unwrap())
                .find(|e| e.involved_object.name.as_deref() == Some(&name) && e.reason.as_deref() == Some(reason))
        }
    };
    let failed = eventually("a FailedScheduling event", async || about("FailedScheduling").await).await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(
        failed.message.as_deref(),
        Some("0/2 nodes are available: 2 Insufficient cpu.")
    );
    let scheduled = eventually("a Scheduled event", async || about("Scheduled").await).await;
    assert_eq!(
        scheduled.message,
        Some(format!(
            "Successfully assigned default/{} to n3",
            waiting.metadata.name()
        ))
    );
    assert_eq!(
        scheduled.source.unwrap().component.as_deref(),
        Some("default-scheduler")
    );
}
