//! The StatefulSet controller with the garbage collector against a real store: under
//! the Delete retention policies a claim goes with the pod scaled away and with the
//! set, and the set's pods and ControllerRevisions go with it.

use std::time::Duration;

use crate::test_support::*;
use berth_api::meta::MetaExt;
use berth_api::objects::{StatefulSet, StatefulSetSpec};
use berth_api::validation::parse_value;
use berth_client::kv::Kv;

async fn names_under(kv: &Kv, prefix: &str) -> Vec<String> {
    let (records, _) = kv.list(prefix).await.unwrap();
    records
        .iter()
        .map(|r| r.key.trim_start_matches(prefix).to_string())
        .collect()
}

async fn claims(kv: &Kv) -> Vec<String> {
    names_under(kv, "/registry/persistentvolumeclaims/default/").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_go_with_scaled_away_pods_and_with_the_set_under_delete_policies() {
    let cp = start(settings(Duration::from_secs(60))).await;
    // Parallel: no agent runs these pods, so none would become ready.
    let value = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"serviceName": "web", "replicas": 3, "podManagementPolicy": "Parallel",
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}});
    let set = parse_value(value).unwrap().object.downcast::<StatefulSet>().unwrap();
    cp.registry.create(&set, None).await.unwrap();
    let pod_names = async || -> Vec<String> {
        pods(&cp.registry)
            .await
            .iter()
            .map(|p| p.metadata.name().to_string())
            .collect()
    };
    eventually("three pods, three claims and a revision", async || {
        let revisions = names_under(&cp.kv, "/registry/controllerrevisions/default/").await;
        (pod_names().await == ["web-0", "web-1", "web-2"]
            && claims(&cp.kv).await == ["www-web-0", "www-web-1", "www-web-2"]
            && revisions.len() == 1)
            .then_some(())
    })
    .await;

    cp.registry
        .modify::<StatefulSetSpec>("default", "web", None, |set| {
            set.spec.replicas = Some(1);
            true
        })
        .await
        .unwrap();
    eventually("web-1 and web-2 gone, with their claims", async || {
        (pod_names().await == ["web-0"] && claims(&cp.kv).await == ["www-web-0"]).then_some(())
    })
    .await;

    cp.registry
        .delete::<StatefulSetSpec>("default", "web", None, None)
        .await
        .unwrap();
    eventually("the pods, claims and revisions gone with the set", async || {
        let revisions = names_under(&cp.kv, "/registry/controllerrevisions/default/").await;
        (pod_names().await.is_empty() && claims(&cp.kv).await.is_empty() && revisions.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_owners_follow_a_changed_retention_policy() {
    let cp = start(settings(Duration::from_secs(60))).await;
    let value = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"serviceName": "db", "replicas": 2, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}});
    let set = parse_value(value).unwrap().object.downcast::<StatefulSet>().unwrap();
    let set = cp.registry.create(&set, None).await.unwrap();
    let owners = async || -> Vec<Vec<String>> {
        let (records, _) = cp.kv.list("/registry/persistentvolumeclaims/default/").await.unwrap();
        records
            .iter()
            .map(|r| {
                let claim: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
                claim["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| o["uid"].as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    eventually("two claims without owners (Retain)", async || {
        let owners = owners().await;
        (owners.len() == 2 && owners.iter().all(Vec::is_empty)).then_some(())
    })
    .await;

    cp.registry
        .modify::<StatefulSetSpec>("default", "db", None, |set| {
            let policy = set
                .spec
                .persistent_volume_claim_retention_policy
                .get_or_insert_default();
            policy.when_deleted = Some("Delete".into());
            true
        })
        .await
        .unwrap();
    let uid = set.metadata.uid().to_string();
    eventually("both claims owned by the set", async || {
        (owners().await == [vec![uid.clone()], vec![uid.clone()]]).then_some(())
    })
    .await;
    cp.registry
        .delete::<StatefulSetSpec>("default", "db", None, None)
        .await
        .unwrap();
    eventually("the claims gone with the set", async || {
        claims(&cp.kv).await.is_empty().then_some(())
    })
    .await;
}
