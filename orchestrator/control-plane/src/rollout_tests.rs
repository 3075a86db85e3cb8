//! Rollouts against a real store with every loop running: revisions across template
//! changes and back, the revision history limit, pausing, the conditions kubectl
//! waits on, the progress deadline and minReadySeconds. No agent runs here, so the
//! tests report the pods ready themselves, as agents would.

use std::time::{Duration, SystemTime};

use crate::test_support::*;
use berth_api::conditions::{condition, is_active};
use berth_api::meta::MetaExt;
use berth_api::objects::{Deployment, DeploymentCondition, DeploymentSpec, ReplicaSet};
use berth_api::time::to_system_time;
use berth_client::registry::Registry;
use berth_controllers::deployment::TEMPLATE_HASH_LABEL;
use berth_controllers::deployment::revision::{
    CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
};
use berth_controllers::deployment::status::is_complete;

fn image_of(rs: &ReplicaSet) -> &str {
    let spec = rs.spec.template.as_ref().and_then(|t| t.spec.as_ref());
    spec.and_then(|s| s.containers[0].image.as_deref()).unwrap_or_default()
}

fn annotation<'a>(meta: &'a berth_api::meta::ObjectMeta, key: &str) -> &'a str {
    meta.annotations().get(key).map(String::as_str).unwrap_or_default()
}

fn deployment_condition<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    condition(d.status.conditions.as_deref().unwrap_or_default(), type_)
}

fn reason_of<'a>(d: &'a Deployment, type_: &str) -> (&'a str, &'a str) {
    deployment_condition(d, type_).map_or(("", ""), |c| {
        (c.status.as_str(), c.reason.as_deref().unwrap_or_default())
    })
}

/// (image, revision, replicas) of every ReplicaSet, by revision.
async fn history(registry: &Registry) -> Vec<(String, String, i32)> {
    let mut history: Vec<(String, String, i32)> = replica_sets(registry)
        .await
        .iter()
        .map(|rs| {
            (
                image_of(rs).to_string(),
                annotation(&rs.metadata, REVISION_ANNOTATION).to_string(),
                rs.spec.replicas.unwrap_or(1),
            )
        })
        .collect();
    history.sort_by_key(|(_, revision, _)| revision.parse::<i64>().unwrap_or_default());
    history
}

fn expected(entries: &[(&str, &str, i32)]) -> Vec<(String, String, i32)> {
    entries
        .iter()
        .map(|(image, revision, replicas)| (image.to_string(), revision.to_string(), *replicas))
        .collect()
}

/// Reports the pods ready until the rollout of `revision` is complete, as
/// `kubectl rollout status` sees it, and `Available`.
async fn rolled_out(registry: &Registry, revision: &str) -> Deployment {
    eventually(&format!("revision {revision} rolled out"), async || {
        make_pods_ready(registry).await;
        let d = deployment_named(registry, "web").await;
        let done = annotation(&d.metadata, REVISION_ANNOTATION) == revision
            && is_complete(&d, &d.status)
            && reason_of(&d, "Available") == ("True", "MinimumReplicasAvailable")
            && reason_of(&d, "Progressing") == ("True", "NewReplicaSetAvailable");
        done.then_some(d)
    })
    .await
}

async fn edit(registry: &Registry, change: impl Fn(&mut Deployment)) {
    registry
        .modify::<DeploymentSpec>("default", "web", None, |d| {
            change(d);
            true
        })
        .await
        .unwrap();
}

fn set_image(image: &'static str) -> impl Fn(&mut Deployment) {
    move |d| {
        d.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        d.metadata
            .annotations_mut()
            .insert(CHANGE_CAUSE_ANNOTATION.into(), format!("image {image}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_number_templates_and_a_rollback_reuses_the_first_replica_set() {
    let cp = start(settings(Duration::from_secs(60))).await;
    add_node(&cp.kv, "n1", "8").await;
    let mut web = deployment("web", 2, "img:1", "100m");
    web.metadata
        .annotations_mut()
        .insert(CHANGE_CAUSE_ANNOTATION.into(), "image img:1".into());
    cp.registry.create(&web, None).await.unwrap();
    let d = rolled_out(&cp.registry, "1").await;
    let sets = replica_sets(&cp.registry).await;
    let first = sets[0].clone();
    assert_eq!(sets.len(), 1);
    assert_eq!(annotation(&first.metadata, CHANGE_CAUSE_ANNOTATION), "image img:1");
    let progressing = deployment_condition(&d, "Progressing").unwrap();
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"{}\" has successfully progressed.", first.metadata.name()).as_str())
    );
    assert_eq!(
        deployment_condition(&d, "Available").unwrap().message.as_deref(),
        Some("Deployment has minimum availability.")
    );
    let status = &d.status;
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (Some(2), Some(2), Some(2), Some(2), Some(0))
    );

    edit(&cp.registry, set_image("img:2")).await;
    rolled_out(&cp.registry, "2").await;
    edit(&cp.registry, set_image("img:3")).await;
    rolled_out(&cp.registry, "3").await;
    assert_eq!(
        history(&cp.registry).await,
        expected(&[("img:1", "1", 0), ("img:2", "2", 0), ("img:3", "3", 2)])
    );
    let running = pods(&cp.registry).await;
    assert!(
        running
            .iter()
            .filter(|p| is_active(p))
            .all(|p| p.spec.containers[0].image.as_deref() == Some("img:3")),
        "only the new template runs"
    );

    // What `kubectl rollout undo --to-revision=1` writes: revision 1's template,
    // without its hash label, and its ReplicaSet's annotations.
    edit(&cp.registry, |d| {
        let mut template = first.spec.template.clone().unwrap();
        template
            .metadata
            .as_mut()
            .unwrap()
            .labels_mut()
            .remove(TEMPLATE_HASH_LABEL);
        d.spec.template = template;
        d.metadata
            .annotations_mut()
            .insert(CHANGE_CAUSE_ANNOTATION.into(), "image img:1".into());
    })
    .await;
    rolled_out(&cp.registry, "4").await;
    assert_eq!(
        history(&cp.registry).await,
        expected(&[("img:2", "2", 0), ("img:3", "3", 0), ("img:1", "4", 2)])
    );
    let back = replica_sets(&cp.registry)
        .await
        .into_iter()
        .find(|rs| image_of(rs) == "img:1")
        .unwrap();
    assert_eq!(back.metadata.uid, first.metadata.uid, "the first ReplicaSet, reused");
    assert_eq!(annotation(&back.metadata, REVISION_HISTORY_ANNOTATION), "1");
    assert_eq!(cp.stop().await, crate::Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_scales_without_rolling_out_and_old_revisions_beyond_the_limit_go() {
    let cp = start(settings(Duration::from_secs(60))).await;
    add_node(&cp.kv, "n1", "8").await;
    let mut web = deployment("web", 1, "img:1", "100m");
    web.spec.revision_history_limit = Some(1);
    cp.registry.create(&web, None).await.unwrap();
    rolled_out(&cp.registry, "1").await;
    for (image, revision) in [("img:2", "2"), ("img:3", "3")] {
        edit(&cp.registry, set_image(image)).await;
        rolled_out(&cp.registry, revision).await;
    }
    eventually("one old revision kept", async || {
        let history = history(&cp.registry).await;
        (history == expected(&[("img:2", "2", 0), ("img:3", "3", 1)])).then_some(())
    })
    .await;

    edit(&cp.registry, |d| d.spec.paused = Some(true)).await;
    eventually("Progressing: DeploymentPaused", async || {
        let d = deployment_named(&cp.registry, "web").await;
        (reason_of(&d, "Progressing") == ("Unknown", "DeploymentPaused")).then_some(())
    })
    .await;
    edit(&cp.registry, set_image("img:4")).await;
    edit(&cp.registry, |d| d.spec.replicas = Some(3)).await;
    let d = eventually("the scale observed", async || {
        let d = deployment_named(&cp.registry, "web").await;
        (d.status.observed_generation == d.metadata.generation && d.status.replicas == Some(3)).then_some(d)
    })
    .await;
    // Scaled, the new template not rolled out. While the template waits, the running
    // ReplicaSet is not the new one, so (as in Kubernetes) it counts against the
    // history limit of 1 and revision 2 goes.
    let paused_history = eventually("revision 2 beyond the limit", async || {
        let history = history(&cp.registry).await;
        (history.len() == 1).then_some(history)
    })
    .await;
    assert_eq!(paused_history, expected(&[("img:3", "3", 3)]));
    assert_eq!(d.status.updated_replicas, Some(0));
    assert_eq!(annotation(&d.metadata, REVISION_ANNOTATION), "3");

    edit(&cp.registry, |d| d.spec.paused = None).await;
    rolled_out(&cp.registry, "4").await;
    eventually("the history within its limit again", async || {
        let history = history(&cp.registry).await;
        (history == expected(&[("img:3", "3", 0), ("img:4", "4", 3)])).then_some(())
    })
    .await;
    assert_eq!(cp.stop().await, crate::Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_whose_pods_never_get_ready_exceeds_its_progress_deadline() {
    let cp = start(settings(Duration::from_secs(60))).await;
    let mut web = deployment("web", 2, "img:1", "100m");
    web.spec.progress_deadline_seconds = Some(2);
    cp.registry.create(&web, None).await.unwrap();
    let d = eventually("ProgressDeadlineExceeded", async || {
        let d = deployment_named(&cp.registry, "web").await;
        (reason_of(&d, "Progressing") == ("False", "ProgressDeadlineExceeded")).then_some(d)
    })
    .await;
    let rs = &replica_sets(&cp.registry).await[0];
    assert_eq!(
        deployment_condition(&d, "Progressing").unwrap().message.as_deref(),
        Some(format!("ReplicaSet \"{}\" has timed out progressing.", rs.metadata.name()).as_str())
    );
    assert_eq!(reason_of(&d, "Available"), ("False", "MinimumReplicasUnavailable"));
    assert_eq!(d.status.unavailable_replicas, Some(2));
    assert_eq!(cp.stop().await, crate::Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_pods_count_as_available_only_after_min_ready_seconds() {
    let cp = start(settings(Duration::from_secs(60))).await;
    add_node(&cp.kv, "n1", "8").await;
    let mut web = deployment("web", 2, "img:1", "100m");
    web.spec.min_ready_seconds = Some(2);
    cp.registry.create(&web, None).await.unwrap();
    let rs = eventually("the ReplicaSet's pods available", async || {
        make_pods_ready(&cp.registry).await;
        let sets = replica_sets(&cp.registry).await;
        let rs = sets.first()?;
        (rs.status.available_replicas == Some(2)).then(|| rs.clone())
    })
    .await;
    let seen_at = SystemTime::now();
    assert_eq!(rs.spec.min_ready_seconds, Some(2), "copied from the Deployment");
    for pod in pods(&cp.registry).await {
        let conditions = pod.status.conditions.unwrap_or_default();
        let ready = condition(&conditions, "Ready").unwrap();
        let ready_at = to_system_time(ready.last_transition_time.as_ref().unwrap());
        assert!(
            seen_at >= ready_at + Duration::from_secs(2),
            "{} counted as available before it was ready for 2 s",
            pod.metadata.name()
        );
    }
    rolled_out(&cp.registry, "1").await;
    assert_eq!(cp.stop().await, crate::Exit::Stopped);
}
