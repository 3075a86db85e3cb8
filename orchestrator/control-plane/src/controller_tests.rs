//! The controllers together against a real store: Deployment → ReplicaSet → Pods,
//! scaling, template changes, cascading deletion and node loss.

use std::time::Duration;

use crate::test_support::*;
use berth_api::conditions::{Condition, condition, is_active};
use berth_api::meta::MetaExt;
use berth_api::objects::{DeploymentSpec, Pod};
use berth_api::owners::controller_of;
use berth_controllers::deployment::TEMPLATE_HASH_LABEL;
use berth_controllers::node_lifecycle::{MESSAGE_UNKNOWN, REASON_UNKNOWN};

fn active(pods: Vec<Pod>) -> Vec<Pod> {
    pods.into_iter().filter(is_active).collect()
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.node_name.as_deref().unwrap_or_default()
}

fn image(pod: &Pod) -> &str {
    pod.spec.containers[0].image.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_own_replica_sets_that_own_pods_through_scaling_rollout_and_deletion() {
    let cp = start(settings(Duration::from_secs(60))).await;
    let creations = count_pod_creations(&cp.kv).await;
    // No agent runs the pods here, so none becomes ready: the template change rolls
    // by Recreate (a rolling update waits for readiness; its rules are tested in the
    // deployment controller's own tests).
    let mut web = deployment("web", 3, "img:1", "100m");
    web.spec.strategy = Some(berth_api::objects::DeploymentStrategy {
        type_: Some(berth_api::kinds::deployment::RECREATE.into()),
        ..Default::default()
    });
    let d = cp.registry.create(&web, None).await.unwrap();

    let (rs, first_pods) = eventually("one ReplicaSet with 3 pods", async || {
        let sets = replica_sets(&cp.registry).await;
        let pods = active(pods(&cp.registry).await);
        (sets.len() == 1 && pods.len() == 3).then(|| (sets[0].clone(), pods))
    })
    .await;
    let owner = controller_of(&rs.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", d.metadata.uid())
    );
    let hash = rs.metadata.labels()[TEMPLATE_HASH_LABEL].clone();
    assert_eq!(rs.metadata.name(), format!("web-{hash}"));
    assert_eq!(rs.spec.replicas, Some(3));
    for pod in &first_pods {
        let owner = controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str(), owner.uid.as_str()),
            ("apps/v1", "ReplicaSet", rs.metadata.uid())
        );
        assert!(pod.metadata.name().starts_with(&format!("{}-", rs.metadata.name())));
        assert_eq!(pod.metadata.labels()[TEMPLATE_HASH_LABEL], hash);
        assert_eq!(pod.metadata.namespace(), "default");
    }
    eventually("the deployment's status", async || {
        let d = cp.registry.get::<DeploymentSpec>("default", "web").await.unwrap()?;
        let s = &d.status;
        (s.replicas == Some(3) && s.updated_replicas == Some(3) && s.observed_generation == Some(1)).then_some(())
    })
    .await;
    // A few more passes (resync is 1 s) must not create more than were needed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*creations.borrow(), 3, "exactly three pods were ever created");

    cp.registry
        .modify::<DeploymentSpec>("default", "web", None, |d| {
            d.spec.replicas = Some(1);
            true
        })
        .await
        .unwrap();
    eventually("scaled to 1", async || {
        let sets = replica_sets(&cp.registry).await;
        let pods = active(pods(&cp.registry).await);
        (pods.len() == 1 && sets.len() == 1 && sets[0].spec.replicas == Some(1)).then_some(())
    })
    .await;
    assert_eq!(*creations.borrow(), 3, "scaling down creates nothing");

    // A new template: a new ReplicaSet takes over, the old one stays at 0.
    cp.registry
        .modify::<DeploymentSpec>("default", "web", None, |d| {
            let spec = d.spec.template.spec.as_mut().expect("the template's spec");
            spec.containers[0].image = Some("img:2".into());
            true
        })
        .await
        .unwrap();
    let new_hash = eventually("the rollout", async || {
        let sets = replica_sets(&cp.registry).await;
        let pods = active(pods(&cp.registry).await);
        let old = sets.iter().find(|rs| rs.metadata.name() == format!("web-{hash}"))?;
        let new = sets.iter().find(|rs| rs.metadata.name() != old.metadata.name())?;
        let done = sets.len() == 2
            && old.spec.replicas == Some(0)
            && new.spec.replicas == Some(1)
            && pods.len() == 1
            && image(&pods[0]) == "img:2"
            && controller_of(&pods[0].metadata).unwrap().uid == new.metadata.uid();
        done.then(|| new.metadata.labels()[TEMPLATE_HASH_LABEL].clone())
    })
    .await;
    assert_ne!(new_hash, hash);

    cp.registry
        .delete::<DeploymentSpec>("default", "web", None, None)
        .await
        .unwrap();
    eventually("the cascade", async || {
        (replica_sets(&cp.registry).await.is_empty() && pods(&cp.registry).await.is_empty()).then_some(())
    })
    .await;
    drop(creations);
    assert_eq!(cp.stop().await, crate::Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_nodes_pods_are_replaced_on_another_node() {
    let cp = start(settings(Duration::from_secs(1))).await;
    let n1_lease = add_node(&cp.kv, "n1", "4").await;
    add_node(&cp.kv, "n2", "4").await;
    cp.registry
        .create(&deployment("web", 2, "img:1", "100m"), None)
        .await
        .unwrap();
    let placed = eventually("two pods bound, one per node (spread)", async || {
        let pods = active(pods(&cp.registry).await);
        let mut nodes: Vec<&str> = pods.iter().map(node_name).collect();
        nodes.sort();
        (nodes == ["n1", "n2"]).then_some(pods)
    })
    .await;
    let on_n1 = placed
        .iter()
        .find(|p| node_name(p) == "n1")
        .unwrap()
        .metadata
        .name()
        .to_string();

    cp.kv.revoke(n1_lease).await.unwrap();
    eventually("n1's pod replaced on n2", async || {
        let pods = active(pods(&cp.registry).await);
        let all_on_n2 = pods.len() == 2 && pods.iter().all(|p| node_name(p) == "n2");
        (all_on_n2 && pods.iter().all(|p| p.metadata.name() != on_n1)).then_some(())
    })
    .await;
    let n1 = node(&cp.registry, "n1").await;
    let ready = condition(n1.status.conditions.as_deref().unwrap_or_default(), "Ready").unwrap();
    assert_eq!(
        (ready.status(), ready.reason(), ready.message()),
        ("False", REASON_UNKNOWN, MESSAGE_UNKNOWN)
    );
    let n2 = node(&cp.registry, "n2").await;
    assert_eq!(
        condition(n2.status.conditions.as_deref().unwrap_or_default(), "Ready")
            .unwrap()
            .status,
        "True",
        "n2 is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_follows_each_change_pods_born_orphans_and_pods_whose_owner_goes() {
    let cp = start(settings(Duration::from_secs(60))).await;
    cp.registry
        .create(&deployment("web", 2, "img:1", "100m"), None)
        .await
        .unwrap();
    let web = eventually("web's two pods", async || {
        let pods = active(pods(&cp.registry).await);
        (pods.len() == 2).then_some(pods)
    })
    .await;
    // Passes made with nothing to collect: the next ones look at what changes.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // A pod whose owner never existed is collected when it appears.
    let owned_by = |name: &str, uid: &str| {
        Pod::new(
            berth_api::meta::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), name.to_string())].into()),
                owner_references: Some(vec![berth_api::meta::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "gone".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]),
                ..Default::default()
            },
            berth_api::objects::PodSpec {
                containers: vec![berth_api::objects::Container {
                    name: "app".into(),
                    image: Some("img:1".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
    };
    cp.registry
        .create(&owned_by("stray", "no-such-uid"), None)
        .await
        .unwrap();
    eventually("the stray pod collected", async || {
        let pods = pods(&cp.registry).await;
        (!pods.iter().any(|p| p.metadata.name() == "stray")).then_some(())
    })
    .await;
    // Pods of a set that goes (it was there when they were last looked at) are.
    let set = replica_sets(&cp.registry).await.remove(0);
    let mut kept = owned_by("kept", set.metadata.uid());
    kept.metadata.owner_references_mut()[0].name = set.metadata.name().to_string();
    // Owned, not controlled: the set's controller leaves it alone.
    kept.metadata.owner_references_mut()[0].controller = None;
    cp.registry.create(&kept, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let names: Vec<String> = pods(&cp.registry)
        .await
        .iter()
        .map(|p| p.metadata.name().to_string())
        .collect();
    assert!(names.contains(&"kept".to_string()), "an owned pod stays: {names:?}");
    for pod in &web {
        assert!(names.contains(&pod.metadata.name().to_string()), "{names:?}");
    }
    cp.registry
        .delete::<DeploymentSpec>("default", "web", None, None)
        .await
        .unwrap();
    eventually("the set's pods, kept among them, collected", async || {
        pods(&cp.registry).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(cp.stop().await, crate::Exit::Stopped);
}
