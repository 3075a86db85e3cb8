//! Quotas with the controllers: a Deployment past its namespace's pod quota stops
//! at the limit, its ReplicaSet says why (ReplicaFailure/FailedCreate with the
//! quota's message, and an Event; the Deployment shares the condition), the quota's
//! controller keeps the usage, and a Deployment scaled back within the quota clears
//! the condition.

use std::time::Duration;

use serde_json::json;

use crate::test_support::*;
use berth_api::conditions::is_active;
use berth_api::meta::MetaExt;
use berth_api::objects::{DeploymentSpec, ResourceQuotaSpec};
use berth_controllers::replicaset::{FAILED_CREATE, REPLICA_FAILURE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_past_its_pod_quota_stops_at_the_limit_and_its_replica_set_says_why() {
    let cp = start(settings(Duration::from_secs(60))).await;
    let quota: berth_api::objects::ResourceQuota = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "pods-quota", "namespace": "default"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}
    }))
    .unwrap();
    cp.registry.create(&quota, None).await.unwrap();
    eventually("the quota's controller fills in its status", async || {
        let q = cp
            .registry
            .get::<ResourceQuotaSpec>("default", "pods-quota")
            .await
            .unwrap()?;
        (serde_json::to_value(&q.status).unwrap()
            == json!({"hard": {"pods": "2", "requests.cpu": "1"}, "used": {"pods": "0", "requests.cpu": "0"}}))
        .then_some(())
    })
    .await;

    cp.registry
        .create(&deployment("web", 3, "img:1", "100m"), None)
        .await
        .unwrap();
    let rs = eventually("the ReplicaSet's ReplicaFailure condition", async || {
        let sets = replica_sets(&cp.registry).await;
        let rs = sets.first()?.clone();
        let failure = rs
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE)?
            .clone();
        Some((rs, failure))
    })
    .await;
    let (rs, failure) = rs;
    assert_eq!(failure.status, "True");
    assert_eq!(failure.reason.as_deref(), Some(FAILED_CREATE));
    let message = failure.message.unwrap_or_default();
    assert!(
        message.starts_with(&format!("pods \"{}-", rs.metadata.name())),
        "{message}"
    );
    assert!(
        message
            .ends_with("\" is forbidden: exceeded quota: pods-quota, requested: pods=1, used: pods=2, limited: pods=2"),
        "{message}"
    );
    let active_pods = pods(&cp.registry).await.into_iter().filter(is_active).count();
    assert_eq!(active_pods, 2, "the Deployment stops at the quota");
    let events = cp.kv.list("/registry/events/default/").await.unwrap().0;
    assert!(
        events.iter().any(|e| {
            let event: serde_json::Value = serde_json::from_slice(&e.value).unwrap();
            event["reason"] == FAILED_CREATE
                && event["type"] == "Warning"
                && event["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Error creating: pods \"")
        }),
        "a FailedCreate event"
    );
    let deployment_failure = eventually("the Deployment's ReplicaFailure condition", async || {
        let d = deployment_named(&cp.registry, "web").await;
        d.status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .cloned()
    })
    .await;
    assert_eq!(deployment_failure.reason.as_deref(), Some(FAILED_CREATE));
    assert_eq!(deployment_failure.message.as_deref(), Some(message.as_str()));
    eventually("the quota's usage", async || {
        let q = cp
            .registry
            .get::<ResourceQuotaSpec>("default", "pods-quota")
            .await
            .unwrap()?;
        (serde_json::to_value(&q.status.used).unwrap() == json!({"pods": "2", "requests.cpu": "200m"})).then_some(())
    })
    .await;

    cp.registry
        .modify::<DeploymentSpec>("default", "web", None, |d| {
            d.spec.replicas = Some(2);
            true
        })
        .await
        .unwrap();
    eventually("the condition goes once the set fits", async || {
        let sets = replica_sets(&cp.registry).await;
        let rs = sets.first()?;
        (!rs.status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == REPLICA_FAILURE))
        .then_some(())
    })
    .await;
}
