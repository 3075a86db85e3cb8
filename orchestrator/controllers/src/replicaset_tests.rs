//! The ReplicaSet controller's pure parts.

use super::*;
use berth_api::conditions::Condition;
use berth_api::objects::{PodCondition, ReplicaSetSpec};
use berth_api::time::{from_system_time, parse_rfc3339};

/// A fixed now, within whole seconds of the times the tests write.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn rs(replicas: i32) -> ReplicaSet {
    let mut rs = Resource::new(
        ObjectMeta {
            name: Some("web-abc".into()),
            namespace: Some("default".into()),
            uid: Some("rs-uid".into()),
            generation: Some(2),
            ..Default::default()
        },
        ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        },
    );
    rs.spec
        .template
        .get_or_insert_default()
        .metadata
        .get_or_insert_default()
        .labels_mut()
        .insert("app".into(), "web".into());
    rs
}

fn pod(name: &str, node: &str, phase: &str, ready: bool, created: &str) -> Pod {
    let mut pod = new_pod(&rs(1), "x");
    pod.metadata.name = Some(name.into());
    pod.metadata.creation_timestamp = parse_rfc3339(created).map(from_system_time);
    pod.spec.node_name = (!node.is_empty()).then(|| node.into());
    pod.status.phase = Some(phase.into());
    if ready {
        pod.status
            .conditions
            .get_or_insert_default()
            .push(PodCondition::new("Ready", "True", "", ""));
    }
    pod
}

#[test]
fn a_refused_create_sets_replica_failure_until_a_pass_creates_what_it_needs() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    let mut status = ReplicaSetStatus::default();
    set_replica_failure(&mut status, Some("pods \"web-x\" is forbidden: exceeded quota: q"), now);
    let condition = status.conditions.as_ref().unwrap()[0].clone();
    assert_eq!(
        (
            condition.type_.as_str(),
            condition.status.as_str(),
            condition.reason.as_deref()
        ),
        (REPLICA_FAILURE, "True", Some(FAILED_CREATE))
    );
    assert_eq!(
        condition.message.as_deref(),
        Some("pods \"web-x\" is forbidden: exceeded quota: q")
    );
    // Later refusals keep the condition as it was (its time too).
    let later = now + Duration::from_secs(60);
    set_replica_failure(
        &mut status,
        Some("pods \"web-y\" is forbidden: exceeded quota: q"),
        later,
    );
    assert_eq!(status.conditions.as_ref().unwrap()[0], condition);
    set_replica_failure(&mut status, None, later);
    assert_eq!(status.conditions, None);
}

#[test]
fn new_pods_carry_the_template_and_a_controller_reference() {
    let pod = new_pod(&rs(1), "b2x4z");
    assert_eq!(pod.metadata.name(), "web-abc-b2x4z");
    assert_eq!(pod.metadata.namespace(), "default");
    assert_eq!(pod.metadata.labels()["app"], "web");
    let owner = &pod.metadata.owner_references()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("apps/v1", "ReplicaSet", "rs-uid", Some(true))
    );
    assert!(is_controlled_by(&pod.metadata, "rs-uid"));
    assert_eq!(pod.status.phase.as_deref(), Some("Pending"));
    assert_eq!(pod.status.qos_class.as_deref(), Some("BestEffort"));
}

#[test]
fn extras_go_unscheduled_then_pending_then_unready_then_newest() {
    let t1 = "2026-01-01T00:00:01Z";
    let t2 = "2026-01-01T00:00:02Z";
    let old_ready = pod("old-ready", "n1", "Running", true, t1);
    let new_ready = pod("new-ready", "n1", "Running", true, t2);
    let unready = pod("unready", "n1", "Running", false, t1);
    let pending = pod("pending", "n2", "Pending", false, t1);
    let unscheduled = pod("unscheduled", "", "Pending", false, t1);
    let all = [&old_ready, &new_ready, &unready, &pending, &unscheduled];
    let names = |n: usize| -> Vec<String> {
        pods_to_delete(&all, n)
            .iter()
            .map(|p| p.metadata.name().to_string())
            .collect()
    };
    assert_eq!(
        names(5),
        ["unscheduled", "pending", "unready", "new-ready", "old-ready"]
    );
    assert_eq!(names(1), ["unscheduled"]);
}

#[test]
fn a_replica_set_creates_what_is_missing_counting_pending_creates() {
    let plan = reconcile(&rs(3), &[], 0, &BTreeSet::new(), now());
    assert_eq!(plan.create, 3);
    let plan = reconcile(&rs(3), &[], 2, &BTreeSet::new(), now());
    assert_eq!(plan.create, 1, "two creates the cache does not show yet count");
    let plan = reconcile(&rs(3), &[], 3, &BTreeSet::new(), now());
    assert_eq!(plan.create, 0);
    assert!(plan.delete.is_empty());
}

#[test]
fn a_replica_set_deletes_extras_and_ended_pods_but_not_twice() {
    let t = "2026-01-01T00:00:01Z";
    let a = pod("a", "n1", "Running", true, t);
    let b = pod("b", "n1", "Running", false, t);
    let c = pod("c", "", "Pending", false, t);
    let failed = pod("failed", "n1", "Failed", false, t);
    let owned = [&a, &b, &c, &failed];
    let plan = reconcile(&rs(1), &owned, 0, &BTreeSet::new(), now());
    let deleted: Vec<&str> = plan.delete.iter().map(|p| p.metadata.name()).collect();
    assert_eq!(deleted, ["failed", "c", "b"]);
    assert_eq!(plan.create, 0, "the failed pod does not count, nor need replacing here");
    let status = plan.status.unwrap();
    assert_eq!(
        (status.replicas, status.ready_replicas, status.observed_generation),
        (3, Some(1), Some(2))
    );

    // The same pass again before the cache caught up deletes nothing more.
    let pending: BTreeSet<String> = [&failed, &c, &b].iter().map(|p| p.key()).collect();
    let plan = reconcile(&rs(1), &owned, 0, &pending, now());
    assert!(plan.delete.is_empty(), "{:?}", plan.delete);
    assert_eq!(plan.create, 0);

    // A failed pod is replaced.
    let plan = reconcile(&rs(2), &[&a, &failed], 0, &BTreeSet::new(), now());
    assert_eq!((plan.create, plan.delete.len()), (1, 1));
}

#[test]
fn a_ready_pod_is_available_after_min_ready_seconds_and_the_pass_looks_again_then() {
    let ready_since = |name: &str, seconds_ago: u64| {
        let mut p = pod(name, "n1", "Running", true, "");
        let conditions = p.status.conditions.as_mut().unwrap();
        conditions[0].last_transition_time = Some(from_system_time(now() - Duration::from_secs(seconds_ago)));
        p
    };
    let (old, recent, unready) = (
        ready_since("old", 60),
        ready_since("recent", 4),
        pod("unready", "n1", "Running", false, ""),
    );
    let mut set = rs(3);
    set.spec
        .template
        .as_mut()
        .unwrap()
        .metadata
        .as_mut()
        .unwrap()
        .labels_mut()
        .insert("tier".into(), "front".into());
    let mut labelled = unready.clone();
    labelled.metadata.labels_mut().insert("tier".into(), "front".into());
    let owned = [&old, &recent, &labelled];
    let status = reconcile(&set, &owned, 0, &BTreeSet::new(), now()).status.unwrap();
    assert_eq!(
        (
            status.ready_replicas,
            status.available_replicas,
            status.fully_labeled_replicas
        ),
        (Some(2), Some(2), Some(1)),
        "without minReadySeconds every ready pod is available; one pod has every template label"
    );

    set.spec.min_ready_seconds = Some(10);
    let plan = reconcile(&set, &owned, 0, &BTreeSet::new(), now());
    let status = plan.status.unwrap();
    assert_eq!((status.ready_replicas, status.available_replicas), (Some(2), Some(1)));
    assert_eq!(
        plan.requeue,
        Some(Duration::from_secs(7)),
        "ready for 4 of 10 seconds: look again just after the other 6"
    );
    let later = now() + Duration::from_secs(7);
    let plan = reconcile(&set, &owned, 0, &BTreeSet::new(), later);
    assert_eq!(plan.status.unwrap().available_replicas, Some(2));
    assert_eq!(plan.requeue, None);

    let mut no_time = ready_since("no-time", 0);
    no_time.status.conditions.as_mut().unwrap()[0].last_transition_time = None;
    let plan = reconcile(&set, &[&no_time], 0, &BTreeSet::new(), later);
    assert_eq!(
        plan.status.unwrap().available_replicas,
        Some(0),
        "a ready condition without a transition time never counts as available for long enough"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_pod_cache_does_not_make_a_replica_set_create_twice() {
    use berth_controller_runtime::Caches;
    use berth_controller_runtime::informer::{Heartbeats, Informer};
    let t = berth_client::testing::store().await;
    let fence = berth_client::leadership::claim(&t.kv, 1, 1, "test").await.unwrap();
    let registry = t.registry();
    registry.create(&rs(3), None).await.unwrap();
    let ctx = Context {
        registry: registry.clone(),
        caches: Caches {
            // Never shows the pods this controller creates.
            pods: Informer::stalled(t.kv.clone()),
            nodes: Informer::start(t.kv.clone()),
            replica_sets: Informer::start(t.kv.clone()),
            deployments: Informer::start(t.kv.clone()),
            stateful_sets: Informer::start(t.kv.clone()),
            services: Informer::start(t.kv.clone()),
            heartbeats: Heartbeats::start(t.kv.clone()),
        },
        fence,
        events: Default::default(),
        admission: Default::default(),
    };
    ctx.caches.wait_synced().await;
    let expectations = std::sync::Mutex::new(Expectations::default());
    for _ in 0..3 {
        pass(&ctx, &expectations).await.unwrap();
    }
    let (pods, _) = registry.list::<PodSpec>(None).await.unwrap();
    assert_eq!(
        pods.len(),
        3,
        "three passes over a cache without the pods created three pods in all"
    );
}

#[test]
fn expectations_last_until_the_cache_reaches_them() {
    let mut e = Expectations::default();
    let live: BTreeSet<&str> = ["rs-uid"].into();
    e.created("rs-uid", "/registry/pods/default/p1".into(), 10);
    e.deleted("rs-uid", "/registry/pods/default/old".into());
    let old = pod("old", "n1", "Running", true, "");
    let mut old = old;
    old.metadata.name = Some("old".into());
    let behind = Snapshot::from_objects([old.clone()], 9);
    e.observe(&behind, &live);
    assert_eq!(e.pending_creates("rs-uid"), 1);
    assert_eq!(e.pending_deletes("rs-uid").len(), 1);
    let caught_up = Snapshot::from_objects(Vec::<Pod>::new(), 10);
    e.observe(&caught_up, &live);
    assert_eq!(e.pending_creates("rs-uid"), 0);
    assert!(e.pending_deletes("rs-uid").is_empty());

    e.created("gone-uid", "/registry/pods/default/p2".into(), 99);
    e.observe(&caught_up, &live);
    assert_eq!(
        e.pending_creates("gone-uid"),
        0,
        "a deleted ReplicaSet's expectations go"
    );
}
